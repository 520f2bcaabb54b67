"""One closed-loop episode of a policy in a simulator environment.

The policy interface (``policies.base.Policy``) is the stack's everywhere (scripted experts, learned VLAs,
served models): ``reset()`` at an episode's start and ``infer(obs) -> {"actions": (K, 7)}``, a chunk of K
actions that is executed in order here before the policy is asked again (``vla-eval`` chooses how chunks
are executed: ``policies.chunking``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import Policy
from sim.contract import ACTION_DIM, LABEL_ACTIONS


@dataclass
class StepRecord:
    """What a demonstration keeps of an episode: each observation and the action taken from it."""

    images: dict[str, np.ndarray]  # camera -> uint8 (T, H, W, 3)
    state: np.ndarray  # float32 (T, S)
    actions: np.ndarray  # float32 (T, A): the env's action size


@dataclass
class EpisodeResult:
    task: str
    seed: int
    instruction: str
    success: bool
    length: int  # control steps taken
    frames: np.ndarray | None = None  # uint8 (length + 1, H, W, 3) from env.render(), first after reset
    steps: StepRecord | None = None  # with record_steps=True
    extra: dict | None = None  # facts of an evaluation's instruction mode (policies.evaluation.instruction)


class _StepRecorder:
    def __init__(self):
        self.images: dict[str, list[np.ndarray]] = {}
        self.state: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []

    def add(self, obs: dict, action: np.ndarray) -> None:
        for camera, image in obs["images"].items():
            self.images.setdefault(camera, []).append(image)
        self.state.append(obs["state"])
        self.actions.append(np.asarray(action, np.float32))

    def result(self) -> StepRecord:
        return StepRecord(
            images={camera: np.stack(frames) for camera, frames in self.images.items()},
            state=np.stack(self.state).astype(np.float32),
            actions=np.stack(self.actions),
        )


def action_chunk(output, dim: int = ACTION_DIM) -> np.ndarray:
    """The (K, dim) action chunk of a policy's ``infer`` output, or ``ValueError`` saying what is wrong."""
    if not isinstance(output, dict) or "actions" not in output:
        got = sorted(output) if isinstance(output, dict) else type(output).__name__
        raise ValueError(f"policy.infer must return a dict with an 'actions' entry, got {got}")
    actions = np.asarray(output["actions"])
    if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] != dim:
        raise ValueError(f"policy returned actions of shape {actions.shape}; expected (K, {dim}) with K >= 1")
    return actions


def label_chunk(output: dict, actions: np.ndarray) -> np.ndarray:
    """The actions a demonstration records for the executed ``actions``: the policy's ``LABEL_ACTIONS``
    (an expert's intended actions under injected noise) when it gives them, else ``actions`` themselves."""
    labels = output.get(LABEL_ACTIONS)
    if labels is None:
        return actions
    labels = np.asarray(labels)
    if labels.shape != actions.shape:
        raise ValueError(
            f"policy returned {LABEL_ACTIONS} of shape {labels.shape} for actions {actions.shape}"
        )
    return labels


def run_episode(
    env,
    policy: Policy,
    seed: int,
    record_video: bool = False,
    record_steps: bool = False,
    executed_labels: bool = False,
    options: dict | None = None,
) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and run ``policy`` until the episode terminates or is truncated.

    ``record_video`` keeps ``env.render()`` frames; ``record_steps`` keeps every observation with the
    action to learn from it (a demonstration): the policy's ``LABEL_ACTIONS`` if it gives them, or the
    executed action with ``executed_labels`` (or when it gives none). ``options`` go to ``env.reset``
    (e.g. ``{"goal": ...}``).
    """
    obs, info = env.reset(seed=seed, options=options)
    policy.reset()
    frames = [env.render()] if record_video else None
    recorder = _StepRecorder() if record_steps else None
    steps, done = 0, False
    while not done:
        output = policy.infer(obs)
        actions = action_chunk(output, env.action_space.shape[0])  # 7 in sim, 4 in Meta-World
        labels = actions if executed_labels else label_chunk(output, actions)
        for action, label in zip(actions, labels, strict=True):
            if recorder is not None:
                recorder.add(obs, label)
            obs, _, terminated, truncated, info = env.step(action)
            steps += 1
            if record_video:
                frames.append(env.render())
            done = terminated or truncated
            if done:
                break
    return EpisodeResult(
        task=info["task"],
        seed=seed,
        instruction=info["instruction"],
        success=bool(info["success"]),
        length=steps,
        frames=np.stack(frames) if record_video else None,
        steps=recorder.result() if recorder is not None else None,
    )
