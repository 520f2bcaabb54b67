"""``vision.kind: efficientnet_lite0``: the frozen pretrained trunk (vla/model/efficientnet.py) and a small
trainable head over its maps, the only vision that a training step on cached maps pays for.

Head: the stride-16 map (112 channels) -> 1x1 convolution to ``width`` -> two residual blocks, each
FiLM-modulated by the instruction when ``condition_dim`` > 0 (the words pick what the features pick out, as
in the from-scratch ResNet) -> patches (M, h*w, width). The stride-8 map (40 channels) -> a 1x1
convolution to ``FINE_WIDTH`` channels: the "stem" features the instruction keypoints read (colour, edges).

Either pictures go in (inference: the trunk runs) or the trunk's maps do (training on cached maps); the maps
are rounded to float16 on both paths, as the cache stores them, so the head sees the same numbers in
training and at inference.
"""

from __future__ import annotations

import torch
from torch import nn

from vla.model.efficientnet import COARSE_CHANNELS, FINE_CHANNELS, EfficientNetLite0Trunk, TrunkMaps
from vla.model.film import FiLM, modulate
from vla.model.resnet import group_norm

FINE_WIDTH = 64
STRIDE = 16  # the coarse map's stride; the fine map's is half


class _Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.norm1 = group_norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.norm2 = group_norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm2(self.conv2(torch.relu(self.norm1(self.conv1(x))))) + x)


def trunk_maps(trunk: EfficientNetLite0Trunk, x: torch.Tensor) -> TrunkMaps:
    """The trunk's maps of (M, 3, H, W) pictures in [0, 1], in float32 whatever the autocast, rounded to
    float16 as the cache holds them."""
    with torch.autocast(x.device.type, enabled=False):
        maps = trunk(x.float())
    return TrunkMaps(*(m.half().float() for m in maps))


class LiteBackbone(nn.Module):
    """(M, 3, H, W) in [0, 1], or precomputed ``TrunkMaps`` -> (M, h*w, width) patches (and the fine
    features, (M, (2h)*(2w), FINE_WIDTH), with ``with_stem``)."""

    def __init__(self, width: int, image_size: tuple[int, int], condition_dim: int = 0, pretrained=True):
        super().__init__()
        self.trunk = EfficientNetLite0Trunk(pretrained)
        self.reduce = nn.Sequential(
            nn.Conv2d(COARSE_CHANNELS, width, 1, bias=False), group_norm(width), nn.ReLU()
        )
        self.blocks = nn.ModuleList([_Block(width), _Block(width)])
        self.film = FiLM(condition_dim, [width, width]) if condition_dim else None
        self.fine = nn.Sequential(
            nn.Conv2d(FINE_CHANNELS, FINE_WIDTH, 1, bias=False), group_norm(FINE_WIDTH), nn.ReLU()
        )
        side = [-(-s // STRIDE) for s in image_size]  # "same" padding: ceil at every stride-2 layer
        self.grid = (side[0], side[1])
        self.num_patches = side[0] * side[1]
        self.out_dim = width
        self.stem_grid = (-(-image_size[0] // (STRIDE // 2)), -(-image_size[1] // (STRIDE // 2)))
        self.stem_dim = FINE_WIDTH

    def forward(
        self,
        x: torch.Tensor | None,
        condition: torch.Tensor | None = None,
        with_stem: bool = False,
        maps: TrunkMaps | None = None,
    ):
        if (condition is None) != (self.film is None):
            raise ValueError("a FiLM-conditioned encoder needs the instruction vector, and only it takes one")
        maps = maps if maps is not None else trunk_maps(self.trunk, x)
        features = self.reduce(maps.coarse)
        pairs = self.film(condition) if self.film is not None else [None] * len(self.blocks)
        for block, pair in zip(self.blocks, pairs, strict=True):
            features = block(features)
            if pair is not None:
                features = modulate(features, pair)
        features = features.flatten(2).transpose(1, 2)  # (M, h*w, width)
        if not with_stem:
            return features
        return features, self.fine(maps.fine).flatten(2).transpose(1, 2)  # (M, 4*h*w, FINE_WIDTH)
