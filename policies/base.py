"""The policy interface of the whole stack, free of torch so that whatever runs a policy can import it alone.

A policy answers an observation (``sim.contract``: ``{"images": {camera: uint8 (H, W, 3)}, "state":
float32 (S,), "instruction": str}``) with a chunk of actions::

    policy.reset()                      # at the start of every episode
    out = policy.infer(obs)             # {"actions": float32 (K, D), ...}: K actions, executed in order
                                        # "done": float, optional: the probability that the instruction
                                        # is done once this step's action is applied (a skill's end)

A policy that also has ``infer_batch(list_of_obs) -> list_of_outputs`` declares that it keeps no state
between calls: the observations of a batch come from independent environments, in any mix of episodes.
That is what lets the evaluator run many environments with one forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

ACTIONS = "actions"  # the output key: float32 (K, D), K >= 1
DONE = "done"  # an optional output key: float in [0, 1] (a model with a termination head, model.done_loss)


class Policy(Protocol):
    def reset(self) -> None: ...

    def infer(self, obs: dict) -> dict: ...


@runtime_checkable
class BatchPolicy(Protocol):
    """A stateless policy that answers several environments' observations in one call."""

    def reset(self) -> None: ...

    def infer(self, obs: dict) -> dict: ...

    def infer_batch(self, observations: Sequence[dict]) -> list[dict]: ...


def infer_batch(policy: Policy, observations: Sequence[dict]) -> list[dict]:
    """One output per observation: through ``policy.infer_batch`` when it has one, else one ``infer`` each."""
    if isinstance(policy, BatchPolicy):
        outputs = list(policy.infer_batch(list(observations)))
    else:
        outputs = [policy.infer(obs) for obs in observations]
    if len(outputs) != len(observations):
        raise ValueError(
            f"{type(policy).__name__}.infer_batch returned {len(outputs)} outputs for {len(observations)} "
            "observations"
        )
    return outputs
