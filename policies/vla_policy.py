"""A trained VLA checkpoint as a ``Policy``: observations in, un-normalized action chunks out.

Pre-processing: each of the model's camera slots reads one observation camera (``camera_map``, identity by
default); images are resized to the model's ``image_size`` exactly as training resized them
(``vla.data.transforms.to_chw``: bilinear, antialiased). ``image_size`` here is the size the policy asks its
environment to render at: the training frames' size before that resize (``ModelConfig.source_image_size``),
so that evaluation frames take the same path to the encoder as training frames. The raw state and the
instruction go in as they are (the model normalizes the state with the statistics it carries).

Post-processing: the model un-normalizes its action tokens with the dataset's q01/q99, so every action lies
in ``action_range`` (the bin centres inside [q01, q99]) by construction; nothing is clipped. Whether that
range fits an environment's action space is checked before the first step (``check_compatible``), so a
policy trained on, say, absolute joint targets is refused by a [-1, 1] environment instead of saturated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from policies.base import ACTIONS, DONE
from sim.contract import OBS_IMAGES, OBS_INSTRUCTION, OBS_STATE
from vla.data.transforms import to_chw
from vla.model.io import resolve_checkpoint
from vla.model.precision import inference_dtype
from vla.model.vla import VLA

RANGE_TOLERANCE = 1e-6  # float32 rounding of bounds that are equal in the data and the environment


class VLAPolicy:
    """``VLAPolicy(checkpoint_dir, camera_map={model camera: observation camera}, device="cpu")``;
    ``decoding``/``chunk_size``, when given, must be the checkpoint's (an error naming both otherwise);
    ``precision`` (auto, fp32, bf16; vla/model/precision.py), kept in ``.precision``: bf16 casts the LLM's
    weights and runs the rest under bf16 autocast, as bf16 training computes."""

    # An empty instruction is refused (a client that forgot it), except while ``vla-eval instruction=blank``
    # measures what the policy does without one (policies.evaluation.instruction).
    allow_blank_instruction: bool = False

    def __init__(
        self,
        checkpoint_dir,
        camera_map: dict | None = None,
        device: str = "cpu",
        decoding: str | None = None,
        chunk_size: int | None = None,
        precision: str = "fp32",
    ):
        self.checkpoint = resolve_checkpoint(checkpoint_dir)
        model = VLA.load(self.checkpoint, decoding=decoding, chunk_size=chunk_size)
        # The LLM's weights change type; the encoders keep fp32 weights and compute under autocast (infer_batch)
        self.precision = "bf16" if inference_dtype(precision, device) == torch.bfloat16 else "fp32"
        model.llm.to(torch.bfloat16 if self.precision == "bf16" else torch.float32)
        self._init(model, camera_map, device)

    @classmethod
    def from_model(cls, model: VLA, camera_map: dict | None = None, device: str | None = None) -> VLAPolicy:
        """Wrap a VLA already in memory (the trainer's periodic evaluation), without a checkpoint."""
        policy = cls.__new__(cls)
        policy.checkpoint = None
        policy.precision = "bf16" if model.llm.dtype == torch.bfloat16 else "fp32"
        policy._init(model, camera_map, device or str(model.device))
        return policy

    def _init(self, model: VLA, camera_map: dict | None, device: str) -> None:
        self.model = model.to(device)
        self.config = model.config
        self.camera_map = _camera_slots(self.config.cameras, camera_map)  # slot -> observation camera
        self.cameras = tuple(self.camera_map.values())  # the observation cameras it reads, slot order
        self.model_image_size = tuple(self.config.image_size)  # what the encoder sees
        self.image_size = tuple(self.config.source_image_size or self.config.image_size)  # what to render
        tokenizer = model.processor.actions
        half_bin = (tokenizer.q99 - tokenizer.q01) / tokenizer.num_bins / 2
        # (low, high) per action dimension: the outermost bin centres, what decoding can return
        self.action_range = (tokenizer.q01 + half_bin, tokenizer.q99 - half_bin)

    def reset(self) -> None:
        pass  # stateless: chunk execution keeps whatever spans steps

    def infer(self, obs: dict) -> dict:
        return self.infer_batch([obs])[0]

    def infer_batch(self, observations: Sequence[dict]) -> list[dict]:
        batch = self.batch(observations)
        bf16 = self.precision == "bf16"
        with torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=bf16):
            if self.model.done_head is None:
                actions = self.model.predict(batch).astype(np.float32)  # (B, K, D), un-normalized
                return [{ACTIONS: chunk} for chunk in actions]
            actions, done = self.model.predict(batch, with_done=True)  # (B, K, D), (B,)
        return [
            {ACTIONS: chunk.astype(np.float32), DONE: float(p)}
            for chunk, p in zip(actions, done, strict=True)
        ]

    def batch(self, observations: Sequence[dict]) -> dict:
        """The model's input batch: ``{"images": {slot: uint8 (B, 3, H, W)}, "state": (B, S), "instruction"}``."""
        if not observations:
            raise ValueError("infer_batch needs at least one observation")
        images = {
            slot: to_chw(np.stack([_image(obs, camera) for obs in observations]), self.model_image_size)
            for slot, camera in self.camera_map.items()
        }
        state = np.stack([_state(obs, self.config.state_dim) for obs in observations])
        instructions = [_instruction(obs, self.allow_blank_instruction) for obs in observations]
        return {"images": images, "state": torch.from_numpy(state), "instruction": instructions}

    def check_compatible(self, env) -> None:
        """Raise ``ValueError`` naming every way the checkpoint does not fit ``env`` (a gymnasium env, a vector
        env or an evaluation pool), so that a mismatch stops an evaluation before its first step."""
        obs_space = getattr(env, "single_observation_space", None) or env.observation_space
        action_space = getattr(env, "single_action_space", None) or env.action_space
        name = self.checkpoint or "the model"
        problems = []
        if tuple(action_space.shape) != (self.config.action_dim,):
            problems.append(
                f"action dimension: the checkpoint predicts {self.config.action_dim}, the environment takes "
                f"{tuple(action_space.shape)}"
            )
        else:
            problems += _range_problems(self.action_range, action_space)
        state_shape = tuple(obs_space[OBS_STATE].shape)
        if state_shape != (self.config.state_dim,):
            problems.append(
                f"state size: the checkpoint reads {self.config.state_dim}, the environment gives {state_shape}"
            )
        rendered = list(obs_space[OBS_IMAGES].spaces)
        for slot, camera in self.camera_map.items():
            if camera not in rendered:
                problems.append(
                    f"camera: model slot '{slot}' reads observation camera '{camera}', which the environment "
                    f"does not render (it renders {rendered}; map slots with camera_map)"
                )
        if problems:
            raise ValueError(f"checkpoint {name} does not fit the environment: " + "; ".join(problems))


def _range_problems(action_range: tuple[np.ndarray, np.ndarray], action_space) -> list[str]:
    """The action dimensions whose output range leaves the environment's bounds, both ranges named."""
    low, high = action_range
    env_low = np.broadcast_to(np.asarray(action_space.low, np.float64), low.shape)
    env_high = np.broadcast_to(np.asarray(action_space.high, np.float64), high.shape)
    outside = np.flatnonzero((low < env_low - RANGE_TOLERANCE) | (high > env_high + RANGE_TOLERANCE))
    if not len(outside):
        return []
    spans = "; ".join(
        f"dimension {d}: [{low[d]:.4g}, {high[d]:.4g}] vs [{env_low[d]:.4g}, {env_high[d]:.4g}]"
        for d in outside
    )
    return [
        f"action range: the checkpoint's actions (its dataset's q01/q99) leave what the environment accepts "
        f"({spans}); a policy trained in other action units (absolute joint targets, another scale) cannot "
        "drive this environment"
    ]


def _camera_slots(slots: list[str], camera_map: dict | None) -> dict[str, str]:
    camera_map = dict(camera_map or {})
    unknown = [slot for slot in camera_map if slot not in slots]
    if unknown:
        raise ValueError(
            f"camera_map names cameras {unknown} the model does not have; its cameras are {slots} "
            "(camera_map maps a model camera to an observation camera)"
        )
    return {slot: str(camera_map.get(slot, slot)) for slot in slots}


def _image(obs: dict, camera: str) -> np.ndarray:
    images = obs.get(OBS_IMAGES)
    if not isinstance(images, dict) or camera not in images:
        have = sorted(images) if isinstance(images, dict) else "no 'images' dict"
        raise ValueError(f"the observation lacks camera '{camera}' (it has {have})")
    image = np.asarray(images[camera])
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"camera '{camera}' must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return image


def _state(obs: dict, dim: int) -> np.ndarray:
    if OBS_STATE not in obs:
        raise ValueError(f"the observation lacks '{OBS_STATE}'")
    state = np.asarray(obs[OBS_STATE], dtype=np.float32)
    if state.shape != (dim,) or not np.isfinite(state).all():
        raise ValueError(f"'{OBS_STATE}' must be {dim} finite numbers, got shape {state.shape}")
    return state


def _instruction(obs: dict, allow_blank: bool = False) -> str:
    text = obs.get(OBS_INSTRUCTION)
    if isinstance(text, str) and allow_blank:
        return text
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"the observation's '{OBS_INSTRUCTION}' must be a non-empty string, got {text!r}")
    return text
