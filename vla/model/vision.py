"""Vision encoders: uint8 camera images (B, N, 3, H, W) -> patch features (B, N, P, C).

Three kinds (``VisionConfig.kind``):

- ``resnet18`` (vla/model/resnet.py): the ResNet-18 layout with GroupNorm, from scratch; stage widths
  ``width/8 .. width``. Not BatchNorm: robot batches are small and correlated (consecutive frames), so batch
  statistics are unreliable. Patches are the cells of the last feature map (H/32 x W/32).
- ``vit``: ``patch`` x ``patch`` patches, learned position embedding, ``depth`` pre-norm transformer blocks.
- ``hf``: a Hugging Face vision model (SigLIP/DINOv2/CLIP-style) from a local folder, never downloaded;
  features are the patch tokens of its last hidden state (class/register tokens dropped).

Normalization: resnet18 and vit use the ImageNet mean/std (on the 0-1 scale); ``hf`` uses ``image_mean`` and
``image_std`` of the folder's ``preprocessor_config.json`` (SigLIP: 0.5/0.5, DINOv2: ImageNet), so a pretrained
model sees the inputs it was trained on. Each camera slot gets a learned embedding added to its features, so
a shared encoder can still tell the cameras apart. ``frozen`` freezes the image backbone(s) and keeps them in
eval mode; the camera embedding (new, never pretrained) stays trainable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vla.model.augment import random_shift
from vla.model.config import VisionConfig
from vla.model.efficientnet import NAME as LITE0
from vla.model.efficientnet import TrunkMaps
from vla.model.lite_vision import LiteBackbone
from vla.model.resnet import ResNet18GN

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ViT(nn.Module):
    """Vision transformer: (M, 3, H, W) normalized -> (M, P, width), P = (H/patch) * (W/patch)."""

    def __init__(self, width: int, patch: int, depth: int, heads: int, image_size: tuple[int, int]):
        super().__init__()
        height, width_px = image_size
        if height % patch or width_px % patch:
            raise ValueError(f"image_size {tuple(image_size)} must be divisible by vision.patch {patch}")
        if width % heads:
            raise ValueError(f"vision.width {width} must be divisible by vision.heads {heads}")
        self.grid = (height // patch, width_px // patch)
        self.num_patches = self.grid[0] * self.grid[1]
        self.out_dim = width
        self.patch_embedding = nn.Conv2d(3, width, patch, patch)
        self.position = nn.Parameter(torch.zeros(1, self.num_patches, width))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embedding(x).flatten(2).transpose(1, 2) + self.position  # (M, P, C)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ValueError(f"vision.path: {path} is missing ({what})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"vision.path: {path} is not valid JSON: {error}") from error


def hf_folder(path: str | Path) -> Path:
    """``path`` as a local Hugging Face model folder (a directory with a config.json), else a ValueError."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ValueError(f"vision.path: {folder} is not a directory (a local Hugging Face model folder)")
    _read_json(folder / "config.json", "a Hugging Face model folder has a config.json")
    return folder


def hf_image_stats(path: str | Path) -> tuple[list[float], list[float]]:
    """``image_mean``, ``image_std`` (0-1 scale, 3 values each) of a local folder's preprocessor_config.json."""
    file = hf_folder(path) / "preprocessor_config.json"
    preprocessor = _read_json(file, "it holds the image_mean/image_std the model was trained with")
    stats = []
    for key in ("image_mean", "image_std"):
        value = preprocessor.get(key)
        if not isinstance(value, list) or len(value) != 3:
            raise ValueError(f"{file}: '{key}' must be a list of 3 numbers, got {value!r}")
        stats.append([float(v) for v in value])
    if min(stats[1]) <= 0:
        raise ValueError(f"{file}: 'image_std' must be positive, got {stats[1]}")
    return stats[0], stats[1]


def _native_size(folder: Path, config) -> tuple[int, int] | None:
    """The resolution the model was trained at: the processor's crop or resize size, else config.image_size."""
    preprocessor = _read_json(folder / "preprocessor_config.json", "image preprocessing")
    for key in ("crop_size", "size"):
        size = preprocessor.get(key)
        if key == "crop_size" and not preprocessor.get("do_center_crop", False):
            continue
        if isinstance(size, dict) and "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        if isinstance(size, dict) and "shortest_edge" in size:
            return int(size["shortest_edge"]), int(size["shortest_edge"])
    image_size = getattr(config, "image_size", None)
    return (int(image_size), int(image_size)) if isinstance(image_size, int) else None


class HFVisionBackbone(nn.Module):
    """A local Hugging Face vision model: (M, 3, H, W) normalized -> its last hidden state's patch tokens.

    Images are resized (whole, not center-cropped: the edges of a robot's view matter) to the model's native
    resolution. The patch tokens are the last P tokens: DINOv2/CLIP put class and register tokens first,
    SigLIP has none. A SigLIP pooling head is dropped (unused here, and unused parameters break DDP).
    """

    def __init__(self, path: str | Path, image_size: tuple[int, int], pretrained: bool = True):
        super().__init__()
        from transformers import AutoConfig, AutoModel  # heavy import, only for this kind

        folder = hf_folder(path)
        if pretrained:
            model = AutoModel.from_pretrained(folder, local_files_only=True).float()
        else:  # the architecture only: a checkpoint's weights follow
            model = AutoModel.from_config(AutoConfig.from_pretrained(folder, local_files_only=True)).float()
        model = getattr(model, "vision_model", model)  # a SigLIP/CLIP image-text model: its image tower
        for module in model.modules():
            if getattr(module, "use_head", False) and hasattr(module, "head"):
                module.use_head, module.head = False, None
        patch = getattr(model.config, "patch_size", None)
        if not isinstance(patch, int):
            raise ValueError(f"vision.path: {folder}/config.json has no integer patch_size (not a ViT?)")
        self.size = _native_size(folder, model.config) or tuple(image_size)
        if self.size[0] % patch or self.size[1] % patch:
            raise ValueError(f"vision.path: input size {self.size} is not divisible by patch_size {patch}")
        self.model = model
        self.resize = self.size != tuple(image_size)
        self.grid = (self.size[0] // patch, self.size[1] // patch)
        self.num_patches = self.grid[0] * self.grid[1]
        self.out_dim = int(model.config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        hidden = self.model(pixel_values=x).last_hidden_state  # (M, prefix + P, C)
        if hidden.shape[1] < self.num_patches:
            raise ValueError(
                f"vision model returned {hidden.shape[1]} tokens, expected >= {self.num_patches}"
            )
        return hidden[:, -self.num_patches :]  # (M, P, C)


class VisionEncoder(nn.Module):
    """uint8 images (B, N, 3, H, W) -> features (B, N, P, C); ``out_dim`` = C, ``num_patches`` = P, the
    patches row-major over the feature map's ``grid`` (h, w)."""

    def __init__(
        self,
        backbones: Sequence[nn.Module],
        cameras: Sequence[str],
        image_size: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        frozen: bool,
        shift: int = 0,
    ):
        super().__init__()
        self.shift = shift  # random-shift augmentation in pixels, in training mode only
        self.backbones = nn.ModuleList(backbones)  # one (shared) or one per camera
        self.cameras = list(cameras)
        self.image_size = tuple(image_size)
        self.out_dim = int(backbones[0].out_dim)
        self.num_patches = int(backbones[0].num_patches)
        self.grid = tuple(int(v) for v in backbones[0].grid)
        # ((h, w), channels) of the stem features (with_stem: resnet18, efficientnet_lite0), else None
        first = backbones[0]
        self.stem = (first.stem_grid, first.stem_dim) if hasattr(first, "stem_grid") else None
        self.frozen = frozen
        self.camera_embedding = nn.Parameter(torch.randn(len(self.cameras), self.out_dim) * 0.02)  # (N, C)
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        if frozen:
            self.backbones.requires_grad_(False)
            self.backbones.eval()

    def train(self, mode: bool = True) -> VisionEncoder:
        super().train(mode)
        if self.frozen:  # a frozen encoder keeps its eval behaviour (dropout off) even while training
            self.backbones.eval()
        return self

    def _check(self, images: torch.Tensor) -> None:
        expected = (len(self.cameras), 3, *self.image_size)
        if images.dtype != torch.uint8 or images.dim() != 5 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"vision encoder expects uint8 images (B, {', '.join(map(str, expected))}) for cameras "
                f"{self.cameras}, got {images.dtype} {tuple(images.shape)}"
            )

    def _encode(self, backbone: nn.Module, images, condition, with_stem: bool, maps: TrunkMaps | None = None):
        options = {"with_stem": True} if with_stem else {}
        if maps is not None:  # a pretrained trunk's cached maps: the pictures were encoded once, before
            x, options["maps"] = None, maps
        else:
            x = (images.float() / 255.0 - self.mean) / self.std  # (M, 3, H, W)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if condition is None:
                return backbone(x, **options)  # (M, P, C), and the stem's (M, Ps, Cs) if asked
            return backbone(x, condition, **options)

    def forward(
        self,
        images: torch.Tensor | None,
        condition: torch.Tensor | None = None,
        with_stem: bool = False,
        maps: TrunkMaps | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """images (B, N, 3, H, W) uint8 -> (B, N, P, C); ``condition`` (B, E): the instruction features, for
        FiLM encoders; ``with_stem`` (resnet18, efficientnet_lite0): also the stem's features (B, N, Ps, Cs).
        ``maps`` (efficientnet_lite0): the trunk's cached maps, each (B, N, C, h, w), instead of images."""
        if maps is not None:
            batch, cameras = maps.coarse.shape[:2]
        else:
            self._check(images)
            batch, cameras = images.shape[:2]
            if self.training and self.shift:
                images = random_shift(images.flatten(0, 1), self.shift).unflatten(0, (batch, cameras))
        if len(self.backbones) == 1:
            shared = None if condition is None else condition.repeat_interleave(cameras, dim=0)  # (B*N, E)
            flat = None if maps is None else TrunkMaps(*(m.flatten(0, 1) for m in maps))
            pictures = None if images is None else images.flatten(0, 1)
            out = self._encode(self.backbones[0], pictures, shared, with_stem, flat)
            outs = [o.unflatten(0, (batch, cameras)) for o in (out if with_stem else (out,))]
        else:
            per_camera = [
                self._encode(
                    b,
                    None if images is None else images[:, n],
                    condition,
                    with_stem,
                    None if maps is None else TrunkMaps(*(m[:, n] for m in maps)),
                )
                for n, b in enumerate(self.backbones)
            ]
            parts = zip(*per_camera, strict=True) if with_stem else [per_camera]
            outs = [torch.stack(list(part), dim=1) for part in parts]
        features = outs[0].float() + self.camera_embedding[None, :, None, :]  # (B, N, P, C)
        return (features, outs[1].float()) if with_stem else features


def build_vision_encoder(
    cfg: VisionConfig,
    image_size: Sequence[int],
    cameras: Sequence[str],
    pretrained: bool = True,
    condition_dim: int = 0,
) -> VisionEncoder:
    """The encoder ``cfg`` describes for ``cameras`` (slot order) at ``image_size`` (H, W).
    ``condition_dim`` > 0 (resnet18 only): FiLM-conditioned on an instruction vector of that size.

    ``pretrained=False`` (kinds "hf" and "efficientnet_lite0") builds the architecture without reading the
    pretrained weights (hf: from the folder's config.json and preprocessor_config.json), for loading a
    checkpoint that holds them.
    """
    if not isinstance(cfg, VisionConfig):
        raise ValueError(f"build_vision_encoder needs a VisionConfig, got {type(cfg).__name__}")
    if len(image_size) != 2:
        raise ValueError(f"image_size must be (H, W), got {image_size}")
    if not cameras:
        raise ValueError("build_vision_encoder needs at least one camera")
    image_size = (int(image_size[0]), int(image_size[1]))
    count = 1 if cfg.shared else len(cameras)
    if cfg.kind == "resnet18":
        backbones = [
            ResNet18GN(cfg.width, image_size, cfg.coords, cfg.stages, condition_dim) for _ in range(count)
        ]
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif cfg.kind == LITE0:  # the trunk normalizes its [0, 1] input itself
        backbones = [LiteBackbone(cfg.width, image_size, condition_dim, pretrained) for _ in range(count)]
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    elif condition_dim:
        raise ValueError(
            f"FiLM conditioning is built for vision.kind 'resnet18' and {LITE0!r}, got {cfg.kind!r}"
        )
    elif cfg.kind == "vit":
        backbones = [ViT(cfg.width, cfg.patch, cfg.depth, cfg.heads, image_size) for _ in range(count)]
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif cfg.kind == "hf":
        mean, std = hf_image_stats(cfg.path)
        backbones = [HFVisionBackbone(cfg.path, image_size, pretrained) for _ in range(count)]
    else:
        raise ValueError(f"vision.kind must be 'resnet18', 'vit' or 'hf', got {cfg.kind!r}")
    return VisionEncoder(backbones, cameras, image_size, mean, std, cfg.frozen, cfg.random_shift)
