"""The VLA network: images, proprioception and an instruction in an LLM's token space; action tokens out.

Sequence, per sample (left padding keeps every sample's action tokens at the same positions)::

    [image tokens, camera by camera][state token]([instruction token])[pad ... pad][prompt tokens][action tokens]

With ``language.encoder`` set, a frozen sentence encoder turns the instruction into one vector that
FiLM-conditions the vision encoder and enters as the instruction token (vla/model/language.py).

Training is cross-entropy on the action tokens only. Inference decodes the K * D action tokens, one at a
time with a KV cache or all in one pass (``decoding``, vla/model/decoding.py), scoring the action ids only
(constrained decoding: every output decodes), then un-normalizes them with the dataset statistics the model
carries.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from vla.data.dataset import GOAL_STATE, INSTRUCTION_DONE, SWITCH_STATE, TRUNK_MAPS
from vla.model.backbone import Backbone, build_backbone
from vla.model.config import ModelConfig
from vla.model.connector import build_connector
from vla.model.decoding import parallel_mask, positions
from vla.model.efficientnet import TrunkMaps
from vla.model.goal import GoalHead, pool_prompt
from vla.model.io import load_vla, save_vla
from vla.model.language import InstructionEncoder
from vla.model.processor import Processor
from vla.model.state import StateEncoder
from vla.model.vision import build_vision_encoder


def _training_attention(device: torch.device):
    """On a CPU, attention through the math kernel: at the recipes' sequence lengths (about 50 positions)
    the CPU flash-attention kernel's backward costs more than the plain matmuls (a 4-5% faster training step
    of configs/demo.yaml, docs/benchmarks.md); elsewhere PyTorch's own choice."""
    if device.type != "cpu":
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class VLA(nn.Module):
    def __init__(
        self, config: ModelConfig, stats: dict, backbone: Backbone | None = None, pretrained: bool = True
    ):
        """``pretrained=False`` builds the architecture only, for a checkpoint's weights to be loaded into."""
        super().__init__()
        self.config = config
        self.stats = stats
        self.backbone = backbone or build_backbone(config.llm, config.num_bins, pretrained=pretrained)
        hidden = self.backbone.hidden_size
        language = config.language
        self.language = InstructionEncoder(language, hidden) if language.enabled else None
        film = self.language.feature_dim if language.enabled and language.film else 0
        self.vision = build_vision_encoder(
            config.vision, tuple(config.image_size), config.cameras, pretrained, condition_dim=film
        )
        features = self.language.feature_dim if self.language is not None else 0
        self.connector = build_connector(
            config.connector,
            self.vision.out_dim,
            hidden,
            self.vision.num_patches,
            self.vision.grid,
            condition_dim=features,
            stem=self.vision.stem,
            word_dim=self.language.text.dim if self.language is not None else 0,
        )
        self.state_encoder = StateEncoder(config.state_dim, hidden, dropout=config.state_dropout)
        self.goal_head = None
        if config.goal_loss > 0:
            tokens = len(config.cameras) * self.connector.tokens_per_camera
            targets = 2 if config.goal_switch else 1  # the end state, and the state at the next switch
            self.goal_head = GoalHead(tokens, hidden, targets * config.state_dim)
        self.done_head = None
        if config.done_loss > 0:  # the image tokens and the state token, with the instruction -> one logit
            self.done_head = GoalHead(len(config.cameras) * self.connector.tokens_per_camera + 1, hidden, 1)
        self.llm = self._adapt_llm(self.backbone.model, config)
        if config.decoding == "parallel":  # one learned placeholder per action token, (K*D, H)
            scale = self.llm.get_input_embeddings().weight.detach().float().std().item()
            self.action_queries = nn.Parameter(torch.randn(config.action_tokens, hidden) * scale)
        self.processor = Processor(config, stats, self.backbone.tokenizer, self.backbone.action_token_ids)
        self.register_buffer("action_ids", torch.as_tensor(self.backbone.action_token_ids), persistent=False)
        tokenizer = self.processor.actions
        self.register_buffer(
            "action_q01", torch.as_tensor(tokenizer.q01, dtype=torch.float32), persistent=False
        )
        self.register_buffer(
            "action_q99", torch.as_tensor(tokenizer.q99, dtype=torch.float32), persistent=False
        )

    @staticmethod
    def _adapt_llm(llm: nn.Module, config: ModelConfig) -> nn.Module:
        if config.lora_rank > 0:
            from peft import LoraConfig, get_peft_model  # imported only when asked for

            lora = LoraConfig(
                r=config.lora_rank, lora_alpha=2 * config.lora_rank, target_modules=LORA_TARGETS
            )
            llm = get_peft_model(llm, lora)
        elif config.freeze_llm:
            llm.requires_grad_(False)
        return llm

    def fit_instructions(self, instructions: list[str]) -> None:
        """Called by vla-train with the training set's instructions: the language features' whitening."""
        if self.language is not None:
            self.language.fit(list(instructions))

    @property
    def device(self) -> torch.device:
        return self.action_ids.device

    def _embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(token_ids)

    def _prefix(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Embeddings (B, P, H) and attention mask (B, P) of images, state, instruction token and prompt;
        and the parts the goal head reads: ``images`` (B, N*T, H) and ``instruction`` (B, H)."""
        images, maps = self._pictures(batch)
        language = self.config.language
        features, instruction = None, None
        if self.language is not None:
            features, instruction = self.language(list(batch["instruction"]), self.device)  # (B, F), (B, H)
        film = features if language.film else None
        if self.connector.conditioned:  # instruction keypoints read the vision's stem features too
            patches, stem = self.vision(images, film, with_stem=True, maps=maps)
            words = None
            if self.config.connector.instruction_words:
                words = self.language.words(list(batch["instruction"]), self.device)
            image_tokens = self.connector(patches, features, stem, words)  # (B, N*T, H)
        else:
            image_tokens = self.connector(self.vision(images, film, maps=maps))
        state_token = self.state_encoder(self.processor.state(batch["state"].to(self.device)))  # (B, 1, H)
        prompt_ids, prompt_mask = self.processor.prompt(batch["instruction"], self.device)
        text = self._embed(prompt_ids)  # (B, L, H)
        dtype = text.dtype
        fixed = [image_tokens.to(dtype), state_token.to(dtype)]
        if instruction is not None and language.token:
            fixed.append(instruction[:, None].to(dtype))
        embeds = torch.cat([*fixed, text], dim=1)
        ones = torch.ones(
            embeds.shape[0], embeds.shape[1] - text.shape[1], dtype=prompt_mask.dtype, device=self.device
        )
        if instruction is None:
            instruction = pool_prompt(text, prompt_mask)
        parts = {"images": image_tokens, "state": state_token, "instruction": instruction}
        return embeds, torch.cat([ones, prompt_mask], dim=1), parts

    def _pictures(self, batch: dict) -> tuple[torch.Tensor | None, TrunkMaps | None]:
        """(images (B, N, 3, H, W) uint8, None), or (None, the trunk's cached maps, each (B, N, C, h, w)) when
        the batch carries them (vla/train/features.py), in the model's camera order."""
        key = TRUNK_MAPS if TRUNK_MAPS in batch else "images"
        missing = [c for c in self.config.cameras if c not in batch[key]]
        if missing:
            raise ValueError(f"batch lacks cameras {missing} in '{key}'; it has {sorted(batch[key])}")
        if key == "images":
            return torch.stack([batch[key][c].to(self.device) for c in self.config.cameras], dim=1), None
        fields = {
            name: torch.stack([batch[key][c][name].to(self.device).float() for c in self.config.cameras], 1)
            for name in TrunkMaps._fields
        }
        return None, TrunkMaps(**fields)

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Cross-entropy on the action tokens; token accuracy and L1 of the de-tokenized argmax actions.
        With ``goal_loss`` the loss adds that weight times the goal head's error (``goal_l1``, normalized)."""
        embeds, mask, parts = self._prefix(batch)
        actions = batch["actions"].to(self.device)
        targets, valid = self.processor.action_targets(actions, batch["action_mask"].to(self.device))
        logits = self._training_logits(embeds, mask, targets)  # (B, K*D, V)
        loss = self._token_loss(logits[valid], targets[valid])
        with torch.no_grad():
            accuracy = (logits.argmax(-1) == targets)[valid].float().mean()
            predicted = self._bins_to_actions(logits[..., self.action_ids].argmax(-1))  # (B, K, D)
            step_valid = batch["action_mask"].to(self.device).bool()
            l1 = (predicted - actions).abs()[step_valid].mean()
        metrics = {"loss": loss, "token_accuracy": accuracy, "l1": l1}
        if self.goal_head is not None:
            goal_mse, metrics["goal_l1"] = self._goal_loss(parts, batch)
            metrics["loss"] = metrics["loss"] + self.config.goal_loss * goal_mse
        if self.done_head is not None:
            if INSTRUCTION_DONE not in batch:
                raise ValueError(f"model.done_loss is on but the batch has no '{INSTRUCTION_DONE}'")
            logit = self._done_logit(parts)  # (B,)
            target = batch[INSTRUCTION_DONE].to(self.device).float()
            metrics["loss"] = metrics["loss"] + self.config.done_loss * F.binary_cross_entropy_with_logits(
                logit, target
            )
            metrics["done_accuracy"] = ((logit > 0) == target.bool()).float().mean().detach()
        return metrics

    def _done_logit(self, parts: dict) -> torch.Tensor:
        """(B,) the termination head's logit: is this frame the last of its instruction?"""
        tokens = torch.cat([parts["images"], parts["state"].to(parts["images"].dtype)], dim=1)
        return self.done_head(tokens, parts["instruction"])[:, 0]

    def _training_logits(
        self, embeds: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Full-vocabulary logits (B, n, V) for the n = K*D target tokens (B, n), after the prefix (B, P, H):
        teacher-forced (autoregressive) or from the placeholders (parallel)."""
        n = targets.shape[1]
        if self.config.decoding == "parallel":
            inputs, attention, position = self._parallel_inputs(embeds, mask)
        else:  # the output after token i predicts token i + 1; the last prefix position predicts token 0
            inputs = torch.cat([embeds, self._embed(targets[:, :-1])], dim=1)
            attention = torch.cat([mask, torch.ones_like(targets[:, :-1])], dim=1)
            position = positions(attention)
        with _training_attention(inputs.device):
            out = self.llm(
                inputs_embeds=inputs,
                attention_mask=attention,
                position_ids=position,
                use_cache=False,
                logits_to_keep=n,  # the LM head only where a loss is taken
            )
        return out.logits.float()

    def _goal_loss(self, parts: dict, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The goal head on the prefix's image tokens and instruction vector."""
        if GOAL_STATE not in batch:
            raise ValueError(
                f"model.goal_loss is {self.config.goal_loss} but the batch has no '{GOAL_STATE}' "
                "(the episode's last state, which VLADataset samples carry)"
            )
        goal = self.processor.state(batch[GOAL_STATE].to(self.device))  # (B, S) normalized
        if self.config.goal_switch:
            if SWITCH_STATE not in batch:
                raise ValueError(f"model.goal_switch is on but the batch has no '{SWITCH_STATE}'")
            switch = self.processor.state(batch[SWITCH_STATE].to(self.device))  # (B, S)
            goal = torch.cat([goal, switch], dim=1)  # (B, 2S)
        return self.goal_head.loss(parts["images"], parts["instruction"], goal)

    def _token_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of (n, V) logits against (n,) action token ids, one-hot or soft (``bin_sigma``).
        The softmax spans the whole vocabulary, so mass on a non-action token is always an error."""
        sigma = self.config.bin_sigma
        if sigma == 0:
            return F.cross_entropy(logits, targets)
        bins = (targets[:, None] == self.action_ids).float().argmax(-1)  # (n,)
        centres = torch.arange(self.config.num_bins, device=logits.device, dtype=torch.float32)
        soft = torch.softmax(-0.5 * ((centres - bins[:, None].float()) / sigma) ** 2, dim=-1)  # (n, bins)
        log_probs = F.log_softmax(logits, dim=-1)[:, self.action_ids]  # (n, bins)
        return -(soft * log_probs).sum(-1).mean()

    def _bins_to_actions(self, bins: torch.Tensor) -> torch.Tensor:
        """(B, K*D) bin indices -> (B, K, D) un-normalized bin centres (torch twin of ActionTokenizer.decode)."""
        centres = (bins.float() + 0.5) / self.config.num_bins * 2 - 1
        centres = centres.view(bins.shape[0], self.config.chunk_size, self.config.action_dim)
        return (centres + 1) / 2 * (self.action_q99 - self.action_q01) + self.action_q01

    @torch.no_grad()
    def predict(self, batch: dict, with_done: bool = False):
        """(B, n, D) float32 actions, the chunk's first n = ``inferred_actions``: greedy, constrained to action
        tokens (``decoding``: one token at a time with a KV cache, or all in one pass). ``with_done``: also
        the termination head's (B,) probabilities, as ``(actions, done)`` (an error without the head)."""
        if with_done and self.done_head is None:
            raise ValueError("this model has no termination head (train it with model.done_loss > 0)")
        was_training = self.training
        self.eval()
        try:
            embeds, mask, parts = self._prefix(batch)
            if self.config.decoding == "parallel":
                bins = self._decode_parallel(embeds, mask)
            else:
                bins = self._decode_autoregressive(embeds, mask)
            done = torch.sigmoid(self._done_logit(parts).float()).cpu().numpy() if with_done else None
        finally:
            self.train(was_training)
        actions = self.processor.decode(self.action_ids[bins].cpu().numpy())
        return (actions, done) if with_done else actions

    def _decode_parallel(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, P, H) prefix -> (B, K*D) bins, from one pass over the prefix and the placeholders."""
        hidden = self._decoder(*self._parallel_inputs(embeds, mask))
        n = self.config.action_tokens
        wanted = self.config.inferred_actions * self.config.action_dim  # the placeholders see each other
        return self._action_scores(hidden.last_hidden_state[:, -n:][:, :wanted]).argmax(-1)

    def _parallel_inputs(self, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The prefix (B, P, H) and its mask (B, P) followed by the n placeholders: inputs (B, P+n, H), the
        4-D attention mask and the position ids (B, P+n), the same in training and at inference."""
        n = self.config.action_tokens
        inputs = torch.cat([embeds, self.action_queries.to(embeds.dtype).expand(len(embeds), -1, -1)], 1)
        full_mask = torch.cat([mask, mask.new_ones(len(mask), n)], dim=1)
        return inputs, parallel_mask(mask, n, inputs.dtype), positions(full_mask)

    def _decode_autoregressive(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, P, H) prefix -> (B, n*D) bins of the first n = ``inferred_actions`` actions, one LLM step per
        token, the prefix's keys and values cached; exact for n < K, since no token sees a later one."""
        position = positions(mask)
        out = self._decoder(embeds, mask, position, use_cache=True)
        bins = []
        count = self.config.inferred_actions * self.config.action_dim
        for step in range(count):
            choice = self._action_scores(out.last_hidden_state[:, -1]).argmax(-1)  # (B,)
            bins.append(choice)
            if step == count - 1:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            position = position[:, -1:] + 1
            token = self._embed(self.action_ids[choice])[:, None]
            out = self._decoder(token, mask, position, use_cache=True, **_cache_argument(out))
        return torch.stack(bins, dim=1)

    def _decoder(self, inputs, attention, position, **kwargs):
        """The LLM without its LM head: hidden states (B, T, H) and, with ``use_cache``, the KV cache."""
        decoder = self.llm.get_decoder()
        return decoder(inputs_embeds=inputs, attention_mask=attention, position_ids=position, **kwargs)

    def _action_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., H) final hidden states -> (..., num_bins) logits of the action ids only: the LM head's rows
        of those ids, so a 49k-token vocabulary costs nothing at inference (the argmax is the same)."""
        head = self.llm.get_output_embeddings()
        scores = hidden @ head.weight[self.action_ids].to(hidden.dtype).T
        if getattr(head, "bias", None) is not None:  # Llama has none; a local model folder may
            scores = scores + head.bias[self.action_ids].to(hidden.dtype)
        return scores

    def save(self, directory) -> None:
        """A self-contained checkpoint: weights, config, statistics and the backbone's config and tokenizer."""
        save_vla(self, directory)

    @classmethod
    def load(cls, directory, decoding: str | None = None, chunk_size: int | None = None) -> VLA:
        """``decoding``/``chunk_size``: what the caller expects; a checkpoint trained otherwise is an error."""
        return load_vla(directory, cls, decoding=decoding, chunk_size=chunk_size)


def _cache_argument(out) -> dict:
    """The KV cache of ``out`` as the keyword argument the installed transformers expects.

    transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name is removed in 5.40); 4.x only knows
    the old one.
    """
    if "cache" in out:
        return {"cache": out["cache"]}
    return {"past_key_values": out["past_key_values"]}
