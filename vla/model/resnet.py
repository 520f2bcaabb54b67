"""``vision.kind: resnet18``: the ResNet-18 layout with GroupNorm, trained from scratch, optionally with
coordinate channels (CoordConv) and FiLM from the instruction after every residual block."""

from __future__ import annotations

import torch
from torch import nn

from vla.model.film import FiLM, modulate


def group_norm(channels: int) -> nn.GroupNorm:
    # 16 channels per group (the robomimic / diffusion-policy choice for GroupNorm ResNets).
    groups = channels // 16 if channels % 16 == 0 else 1
    return nn.GroupNorm(groups, channels)


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.norm1 = group_norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.norm2 = group_norm(channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), group_norm(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class _MaxPoolToNCHW(nn.MaxPool2d):
    """The stem's 3x3 stride-2 max-pool. The stem runs channels-last (``ResNet18GN.forward``): PyTorch's NCHW
    CPU max-pool is several times slower in bf16 (about 9% of a training step of configs/demo.yaml); after
    the pool, at a quarter of the stem's size, the maps go back to NCHW, where the convolutions after it are
    fastest here. Same values and gradients as the plain stem (docs/benchmarks.md)."""

    def __init__(self):
        super().__init__(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).contiguous()


def _coordinate_maps(x: torch.Tensor) -> torch.Tensor:
    """(M, 2, H, W): every pixel's x and y, from -1 (left, top) to 1 (right, bottom)."""
    count, _, height, width = x.shape
    ys = torch.linspace(-1, 1, height, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, width, device=x.device, dtype=x.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))  # (2, H, W): x, then y
    return grid.expand(count, -1, -1, -1)


class ResNet18GN(nn.Module):
    """ResNet-18 with GroupNorm: (M, 3, H, W) normalized -> (M, P, C), P = ceil(H/32) * ceil(W/32) and
    C = width with all four residual ``stages``; each stage fewer halves the stride and C (a finer grid).

    ``coords`` appends two channels holding each pixel's x and y in [-1, 1] to the input (CoordConv, Liu et
    al. 2018): convolutions are translation-equivariant, so without them the network must infer where a
    thing is from border effects, which takes far more data than a policy that has to reach it can spare."""

    def __init__(
        self,
        width: int,
        image_size: tuple[int, int],
        coords: bool = False,
        stages: int = 4,
        condition_dim: int = 0,
    ):
        super().__init__()
        if width % 8:
            raise ValueError(f"vision.width must be divisible by 8 for resnet18, got {width}")
        widths = [width // 8, width // 4, width // 2, width]
        self.coords = coords
        self.stem = nn.Sequential(
            nn.Conv2d(5 if coords else 3, widths[0], 7, 2, 3, bias=False),
            group_norm(widths[0]),
            nn.ReLU(),
            _MaxPoolToNCHW(),
        )
        blocks, in_channels = [], widths[0]
        for index, channels in enumerate(widths[:stages]):
            stride = 1 if index == 0 else 2
            blocks += [_BasicBlock(in_channels, channels, stride), _BasicBlock(channels, channels, 1)]
            in_channels = channels
        self.stages = nn.Sequential(*blocks)
        # condition_dim > 0: every residual block is FiLM-modulated by a (M, condition_dim) instruction vector
        self.film = FiLM(condition_dim, [b.norm2.num_channels for b in blocks]) if condition_dim else None
        # Every stride-2 layer here (k7 p3, k3 p1, k1 p0) maps a side s to ceil(s / 2): two in the stem,
        # one per stage after the first.
        height, width_px = image_size
        for _ in range(stages + 1):
            height, width_px = (height + 1) // 2, (width_px + 1) // 2
        self.grid = (height, width_px)  # (h, w) of the feature map
        self.num_patches = height * width_px
        self.out_dim = in_channels
        # The stem's output (stride 4): colour and edges still close to the pixels, for instruction keypoints
        self.stem_grid = (-(-image_size[0] // 4), -(-image_size[1] // 4))
        self.stem_dim = widths[0]

    def forward(
        self, x: torch.Tensor, condition: torch.Tensor | None = None, with_stem: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(M, h*w, C) features; with ``with_stem`` also the stem's (M, stem cells, stem_dim)."""
        if self.coords:
            x = torch.cat([x, _coordinate_maps(x)], dim=1)  # (M, 5, H, W)
        if (condition is None) != (self.film is None):
            raise ValueError("a FiLM-conditioned encoder needs the instruction vector, and only it takes one")
        stem = features = self.stem(x.contiguous(memory_format=torch.channels_last))
        pairs = self.film(condition) if self.film is not None else [None] * len(self.stages)
        for block, pair in zip(self.stages, pairs, strict=True):
            features = block(features)
            if pair is not None:
                features = modulate(features, pair)
        features = features.flatten(2).transpose(1, 2)  # (M, h*w, C)
        return (features, stem.flatten(2).transpose(1, 2)) if with_stem else features
