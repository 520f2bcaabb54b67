"""Connectors: vision features (B, N, P, C) -> tokens in the LLM's embedding space (B, N * T, D).

- ``mlp`` (LLaVA-1.5): Linear(C, D) -> GELU -> Linear(D, D) on every patch, so T = P tokens per camera.
- ``resampler`` (Flamingo's perceiver resampler / BLIP-2's Q-Former idea): ``num_queries`` learned queries
  cross-attend one camera's patches through ``depth`` layers, so T = ``num_queries`` whatever P is. This caps
  the LLM's sequence length when the encoder yields many patches (a 224 px SigLIP: 196 per camera).
- ``keypoints`` (spatial softmax, Levine et al. 2016; robomimic's image encoders): ``keypoints`` learned
  feature maps each become their expected (x, y) in the image, and an MLP maps these positions to
  ``num_queries`` tokens per camera. Reaching a thing needs where it is; patch tokens only carry that
  implicitly, and from scratch on little data a network learns it far more slowly.
  ``instruction_keypoints`` adds maps whose 1x1 filter is made from the instruction (a linear map of the
  language features, vla/model/language.py), over the ResNet stem's stride-4 features, where colour is
  still nearly the pixels': each is a dot product of an instruction query with every cell, so "the red
  cube" can light up the red cube directly, a one-step (bilinear) path from the words to where the named
  object is. FiLM through the whole encoder, or these queries on the last stage's features, learned it far
  more slowly (docs/benchmarks.md, "Following the instruction").

Cameras are mapped independently with the same weights; the vision encoder's camera embedding already tells
them apart. Tokens come out camera after camera, in the encoder's camera order.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vla.model.config import ConnectorConfig


class Connector(nn.Module):
    """Base: checks the (B, N, P, C) input, maps each camera's (P, C) to (T, D), concatenates the cameras."""

    def __init__(self, in_dim: int, out_dim: int, num_patches: int, tokens_per_camera: int):
        super().__init__()
        self.in_dim, self.out_dim, self.num_patches = in_dim, out_dim, num_patches
        self.tokens_per_camera = tokens_per_camera

    conditioned = False  # whether map_camera reads the instruction features

    def map_camera(self, features: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError  # (M, P, C), condition (M, F) -> (M, T, D)

    def forward(
        self,
        features: torch.Tensor,
        condition: torch.Tensor | None = None,
        stem: torch.Tensor | None = None,
        words: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """features (B, N, P, C); for a conditioned connector ``condition`` (B, F), the instruction
        features, ``stem`` (B, N, Ps, Cs), the vision encoder's early features, and with instruction words
        ``words`` (the word states (B, L, E), their mask (B, L))."""
        if features.dim() != 4 or features.shape[2:] != (self.num_patches, self.in_dim):
            raise ValueError(
                f"connector expects features (B, N, {self.num_patches}, {self.in_dim}), "
                f"got {tuple(features.shape)}"
            )
        if (condition is not None) != self.conditioned:
            raise ValueError("an instruction-conditioned connector needs the instruction features, only it")
        batch, cameras = features.shape[:2]
        if condition is not None:
            condition = condition.repeat_interleave(cameras, dim=0)  # (B*N, F)
            stem = stem.flatten(0, 1)  # (B*N, Ps, Cs)
            if words is not None:
                words = tuple(w.repeat_interleave(cameras, dim=0) for w in words)  # (B*N, L, E), (B*N, L)
            tokens = self.map_camera(features.flatten(0, 1), condition, stem, words)
        else:
            tokens = self.map_camera(features.flatten(0, 1))  # (B*N, T, D)
        return tokens.reshape(batch, cameras * self.tokens_per_camera, self.out_dim)  # (B, N*T, D)


class MLPConnector(Connector):
    """LLaVA-1.5's projector: one token per patch."""

    def __init__(self, in_dim: int, out_dim: int, num_patches: int):
        super().__init__(in_dim, out_dim, num_patches, tokens_per_camera=num_patches)
        self.mlp = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def map_camera(self, features: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(features)  # (M, P, D)


class _ResamplerLayer(nn.Module):
    """Queries attend to [patches; queries] (Flamingo), then a pre-norm feed-forward block."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_queries = nn.LayerNorm(dim)
        self.norm_patches = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, queries: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        q = self.norm_queries(queries)  # (M, T, D)
        keys = torch.cat([self.norm_patches(patches), q], dim=1)  # (M, P + T, D)
        queries = queries + self.attention(q, keys, keys, need_weights=False)[0]
        return queries + self.ff(self.norm_ff(queries))


class ResamplerConnector(Connector):
    """Perceiver resampler: ``num_queries`` tokens per camera, working at the LLM's width D."""

    def __init__(self, in_dim: int, out_dim: int, num_patches: int, num_queries: int, depth: int, heads: int):
        if out_dim % heads:
            raise ValueError(
                f"resampler: LLM hidden size {out_dim} must be divisible by connector.heads {heads}"
            )
        super().__init__(in_dim, out_dim, num_patches, tokens_per_camera=num_queries)
        self.project = nn.Linear(in_dim, out_dim)
        # Attention is order-blind: the learned patch position says where in the image a feature is.
        self.position = nn.Parameter(torch.randn(1, num_patches, out_dim) * 0.02)
        self.queries = nn.Parameter(torch.randn(1, num_queries, out_dim) * 0.02)
        self.layers = nn.ModuleList(_ResamplerLayer(out_dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(out_dim)

    def map_camera(self, features: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        patches = self.project(features) + self.position  # (M, P, D)
        queries = self.queries.expand(features.shape[0], -1, -1)  # (M, T, D)
        for layer in self.layers:
            queries = layer(queries, patches)
        return self.norm(queries)  # (M, T, D)


class KeypointConnector(Connector):
    """Spatial softmax over the (h, w) feature ``grid``, then an MLP from keypoint positions to tokens.

    The encoder's camera embedding is constant over a camera's patches, so the softmax cancels it: here the
    cameras are told apart by their tokens' place in the sequence only.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        grid: tuple[int, int],
        keypoints: int,
        tokens: int,
        instruction_keypoints: int = 0,
        condition_dim: int = 0,
        stem: tuple[tuple[int, int], int] | None = None,  # the stem's grid (h, w) and channels
        word_dim: int = 0,  # the sentence encoder's word states' width, for instruction words; 0: none
    ):
        super().__init__(in_dim, out_dim, grid[0] * grid[1], tokens_per_camera=tokens)
        self.maps = nn.Linear(in_dim, keypoints)  # a 1x1 convolution: one attention map per keypoint
        self.conditioned = instruction_keypoints > 0
        self.instruction_keypoints = instruction_keypoints
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.register_buffer("positions", _grid_positions(grid), persistent=False)
        if (
            self.conditioned
        ):  # the instruction's 1x1 filters over the stem: (F,) -> (instruction_keypoints, Cs)
            stem_grid, self.stem_dim = stem
            self.queries = nn.Linear(condition_dim, instruction_keypoints * self.stem_dim)
            self.register_buffer("stem_positions", _grid_positions(stem_grid), persistent=False)
            keypoints += instruction_keypoints
        self.word_queries = None
        # Per instruction keypoint: a query over the words, and a map of what it read to a filter.
        if word_dim:
            k = instruction_keypoints
            self.word_queries = nn.Parameter(torch.randn(k, word_dim) / math.sqrt(word_dim))
            self.word_filters = nn.Parameter(
                torch.randn(k, word_dim, self.stem_dim) / math.sqrt(word_dim) * 0.1
            )
        self.mlp = nn.Sequential(
            nn.Linear(2 * keypoints, out_dim), nn.GELU(), nn.Linear(out_dim, tokens * out_dim)
        )

    def map_camera(self, features: torch.Tensor, condition=None, stem=None, words=None) -> torch.Tensor:
        temperature = self.log_temperature.exp()
        weights = (self.maps(features) / temperature).softmax(dim=1)  # (M, P, K) over P
        points = weights.transpose(1, 2) @ self.positions  # (M, K, 2): expected x, y in [-1, 1]
        if condition is not None:
            queries = self.queries(condition).view(len(stem), self.instruction_keypoints, self.stem_dim)
            if self.word_queries is not None:
                queries = queries + self._word_filters(*words)
            named = stem @ queries.transpose(1, 2) / math.sqrt(self.stem_dim)  # (M, Ps, K_instruction)
            named = (named / temperature).softmax(dim=1).transpose(1, 2) @ self.stem_positions
            points = torch.cat([points, named], dim=1)
        return self.mlp(points.flatten(1)).view(-1, self.tokens_per_camera, self.out_dim)  # (M, T, D)

    def _word_filters(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """words (M, L, E), mask (M, L) -> (M, K_instruction, Cs): each keypoint's filter from the words it
        attends to."""
        scores = words.float() @ self.word_queries.t() / math.sqrt(words.shape[-1])  # (M, L, K)
        scores = scores.masked_fill(~mask[..., None], float("-inf")).softmax(dim=1)
        read = scores.transpose(1, 2) @ words.float()  # (M, K, E)
        return torch.einsum("mke,kec->mkc", read, self.word_filters)


def _grid_positions(grid: tuple[int, int]) -> torch.Tensor:
    """(h*w, 2) x, y in [-1, 1] of a feature grid's cells, row-major like the patches."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, grid[0]), torch.linspace(-1, 1, grid[1]), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


def build_connector(
    cfg: ConnectorConfig,
    in_dim: int,
    out_dim: int,
    num_patches: int,
    grid: tuple[int, int] | None = None,
    condition_dim: int = 0,
    stem: tuple[tuple[int, int], int] | None = None,
    word_dim: int = 0,
) -> Connector:
    """The connector ``cfg`` describes, from ``in_dim`` vision channels to the LLM's ``out_dim``.

    ``grid`` (h, w) lays the ``num_patches`` out row-major; only ``keypoints`` needs it.
    """
    if not isinstance(cfg, ConnectorConfig):
        raise ValueError(f"build_connector needs a ConnectorConfig, got {type(cfg).__name__}")
    for name, value in (("in_dim", in_dim), ("out_dim", out_dim), ("num_patches", num_patches)):
        if int(value) < 1:
            raise ValueError(f"build_connector: {name} must be >= 1, got {value}")
    if cfg.kind == "mlp":
        return MLPConnector(in_dim, out_dim, num_patches)
    if cfg.kind == "resampler":
        return ResamplerConnector(in_dim, out_dim, num_patches, cfg.num_queries, cfg.depth, cfg.heads)
    if cfg.kind == "keypoints":
        if grid is None or len(grid) != 2 or int(grid[0]) * int(grid[1]) != num_patches:
            raise ValueError(
                f"connector 'keypoints' needs the feature grid (h, w) of the {num_patches} patches, got {grid}"
            )
        if num_patches < 2:
            raise ValueError(
                "connector 'keypoints' needs a feature grid of at least 2 patches (a larger image_size), "
                f"got {tuple(grid)}"
            )
        if cfg.instruction_keypoints and not condition_dim:
            raise ValueError("connector.instruction_keypoints needs model.language.encoder (the instruction)")
        if cfg.instruction_keypoints and stem is None:
            raise ValueError(
                "connector.instruction_keypoints reads the stem features of vision.kind 'resnet18' or 'efficientnet_lite0'"
            )
        return KeypointConnector(
            in_dim,
            out_dim,
            (int(grid[0]), int(grid[1])),
            cfg.keypoints,
            cfg.num_queries,
            cfg.instruction_keypoints,
            condition_dim,
            stem,
            word_dim if cfg.instruction_words else 0,
        )
    raise ValueError(f"connector.kind must be 'mlp', 'resampler' or 'keypoints', got {cfg.kind!r}")
