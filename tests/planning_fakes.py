"""The planner tests' stand-ins: a tiny random Llama behind ``LMScorer`` (fast, deterministic, no download)
and a fault that drops the object on the first carry only."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from policies.planning.faults import DropFault
from policies.planning.scorer import LMScorer
from sim.skills.library import PutInBin, PutOn
from vla.model.byte_tokenizer import build_byte_tokenizer


def tiny_scorer(context: int = 512, prefix: str = "") -> LMScorer:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=320,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=64,
        max_position_embeddings=context,
    )
    return LMScorer(LlamaForCausalLM(config), build_byte_tokenizer(), prefix)


class FirstCarryDrops(DropFault):
    """Drops the object on the first carry only."""

    def __init__(self):
        super().__init__(1.0, 0)
        self.carries = 0

    def tamper(self, skill):
        if isinstance(skill, (PutInBin, PutOn)):
            self.carries += 1
            if self.carries == 1:
                return super().tamper(skill)
        return None
