"""SayCan's language score: the log-likelihood of each candidate skill's text after a prompt, under a causal LM.

``LMScorer`` takes any Hugging Face causal LM and its tokenizer (SmolLM2-135M-Instruct for the planner,
a tiny random Llama in the tests). The fixed part of the prompt (the few-shot examples) is run once and its
KV cache kept. A ``Session`` (one episode) starts from a copy of that cache and grows as the episode's lines
are appended (``extend``), so a decision runs only the tokens added since the last one; ``score`` runs all
candidates at once, as one right-padded batch on a copy of the session's cache (the padding comes after
each candidate's tokens, so a causal model never lets it change their scores).

A candidate's score is the sum of its tokens' log-probabilities. Prompt and candidate are tokenized apart,
so a candidate should start at a word boundary (``" pick up the red cube."`` after ``"1."``).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

SMOLLM2 = "smollm2-135m"


def load_language_model(name: str = SMOLLM2, cache_dir: str = "~/.cache/vla-stack"):
    """(model, tokenizer): SmolLM2-135M-Instruct as the stack ships it offline (``vla.model.backbone``), or
    a local Hugging Face causal-LM folder. Nothing is downloaded."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vla.model.backbone import smollm2_folder

    folder = smollm2_folder(cache_dir) if name == SMOLLM2 else Path(name).expanduser()
    if not (folder / "config.json").is_file():
        raise ValueError(f"language model {name!r}: use {SMOLLM2!r} or a local Hugging Face model folder")
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    return model.eval(), AutoTokenizer.from_pretrained(folder, local_files_only=True)


class PromptTooLong(ValueError):
    """The prompt and a candidate do not fit in the model's context."""


class LMScorer:
    def __init__(self, model, tokenizer, prefix: str = ""):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.context = int(model.config.max_position_embeddings)
        # The body and the head apart: a batch needs the vocabulary's logits only where a token is scored.
        self.body, self.head = model.get_decoder(), model.get_output_embeddings()
        params = inspect.signature(self.body.forward).parameters
        # transformers 5.x names the cache argument ``cache``; 4.x only knows ``past_key_values``.
        self._cache_key = "cache" if "cache" in params else "past_key_values"
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.prefix_tokens = 0
        self._start = Session(self)
        self._start.extend(prefix, special=True)
        self.prefix_tokens = self._start.tokens

    def session(self) -> Session:
        """A new episode's context: the fixed prompt, ready to be extended."""
        return self._start.copy()

    def score(self, text: str, candidates: Sequence[str]) -> np.ndarray:
        """The candidates' log-likelihoods after the fixed prompt + ``text`` (a one-off session)."""
        return self.session().extend(text).score(candidates)

    def ids(self, text: str, special: bool = False) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def forward(self, ids: torch.Tensor, cache):
        """Hidden states (B, T, H) and the grown cache of running ``ids`` (B, T) after ``cache`` (None: none)."""
        with torch.inference_mode():
            out = self.body(ids, use_cache=True, **({} if cache is None else {self._cache_key: cache}))
        return out.last_hidden_state, out["cache"] if "cache" in out else out["past_key_values"]

    def logprobs(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, V) next-token log-probabilities from hidden states (N, H)."""
        with torch.inference_mode():
            return self.head(hidden).float().log_softmax(-1)


class Session:
    """One growing prompt: ``extend`` appends text, ``score`` rates continuations without appending."""

    def __init__(self, scorer: LMScorer):
        self.scorer = scorer
        self.tokens = 0
        self._cache = None
        self._next: torch.Tensor | None = None  # (V,) log-probabilities of the token after the context

    def copy(self) -> Session:
        twin = Session(self.scorer)
        twin.tokens, twin._cache, twin._next = self.tokens, copy.deepcopy(self._cache), self._next
        return twin

    def extend(self, text: str, special: bool = False) -> Session:
        ids = self.scorer.ids(text, special=special or self.tokens == 0)
        if not ids:
            return self
        self._check(len(ids), 0)
        hidden, self._cache = self.scorer.forward(torch.tensor([ids]), self._cache)
        self._next = self.scorer.logprobs(hidden[0, -1:])[0]
        self.tokens += len(ids)
        return self

    def score(self, candidates: Sequence[str], tail: str = "") -> np.ndarray:
        """float64 (len(candidates),): each candidate's log-likelihood after the context; with ``tail``, the
        log-likelihood of ``tail`` after the context and the candidate (the noisy-channel direction: how
        well each candidate explains the same text).

        ``PromptTooLong`` (a ``ValueError`` naming the lengths) when the context and the longest candidate
        exceed the model's context window."""
        if not candidates:
            raise ValueError("score needs at least one candidate")
        if self._next is None:
            raise ValueError("score needs a context: extend the session with the prompt first")
        ending = self.scorer.ids(tail) if tail else []
        options = [self.scorer.ids(c) + ending for c in candidates]
        if any(len(option) == len(ending) for option in options):
            raise ValueError(f"every candidate must hold at least one token, got {list(candidates)}")
        longest = max(len(option) for option in options)
        self._check(0, longest)
        batch = torch.full((len(options), longest), self.scorer.pad_id)
        for row, option in enumerate(options):
            batch[row, : len(option)] = torch.tensor(option)
        cache = copy.deepcopy(self._cache)
        cache.batch_repeat_interleave(len(options))
        hidden, _ = self.scorer.forward(batch, cache)
        # Token i of a row is predicted at position i - 1 (token 0 by the context's last position); only
        # the tail's tokens are scored when there is a tail.
        first = [len(option) - len(ending) if ending else 0 for option in options]
        scored = [
            (row, i - 1, option[i])  # (row, predicting position, token)
            for row, option in enumerate(options)
            for i in range(max(first[row], 1), len(option))
        ]
        rows, places, tokens = (
            (list(column) for column in zip(*scored, strict=True)) if scored else ([], [], [])
        )
        picked = self.scorer.logprobs(hidden[rows, places])[torch.arange(len(tokens)), tokens]
        scores = np.zeros(len(options))
        np.add.at(scores, rows, picked.double().numpy())
        for row, option in enumerate(options):
            if first[row] == 0:
                scores[row] += float(self._next[option[0]])
        return scores

    def _check(self, added: int, candidate: int) -> None:
        total = self.tokens + added + candidate
        if total > self.scorer.context:
            raise PromptTooLong(
                f"planner prompt too long: {self.tokens + added} prompt tokens ({self.scorer.prefix_tokens} "
                f"fixed) + {candidate} candidate tokens = {total}, more than the model's context of "
                f"{self.scorer.context} tokens"
            )
