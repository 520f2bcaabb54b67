"""The scripted experts as a ``Policy``, so that ``vla-eval policy=expert`` runs the evaluator's code path.

An expert plans from privileged simulator state, and the simulator lives in the environment's process
(a vectorized environment's worker). So the expert itself runs there: ``policies.evaluation.envs.EvalEnv``
steps it once per control step and adds its action to the observation under ``EXPERT_ACTIONS``; this policy
only reads it back. The expert's noise is seeded by the episode seed, as in ``vla-sim-report`` and
``vla-record``, so an episode is the same in all three.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from policies.base import ACTIONS

EXPERT_ACTIONS = "privileged/expert_actions"  # float32 (1, 7): the scripted expert's next action


class ExpertPolicy:
    cameras: tuple[str, ...] = ()  # observation cameras it reads: none, the expert sees the simulator
    image_size: tuple[int, int] | None = None

    def __init__(self, noise: float = 0.0):
        if not noise >= 0:
            raise ValueError(f"expert noise must be >= 0, got {noise}")
        self.noise = float(noise)

    def reset(self) -> None:
        pass  # the expert's state lives with the environment, reset with it

    def infer(self, obs: dict) -> dict:
        if EXPERT_ACTIONS not in obs:
            raise ValueError(
                f"the observation has no '{EXPERT_ACTIONS}': the scripted expert runs inside the environment; "
                "build it with policies.evaluation.envs.make_eval_env(..., expert_noise=...)"
            )
        return {ACTIONS: np.asarray(obs[EXPERT_ACTIONS], dtype=np.float32)}

    def infer_batch(self, observations: Sequence[dict]) -> list[dict]:
        return [self.infer(obs) for obs in observations]

    def check_compatible(self, env) -> None:
        space = getattr(env, "single_observation_space", None) or env.observation_space
        if EXPERT_ACTIONS not in space.spaces:
            raise ValueError(
                "the environment does not run the scripted expert (its observations lack "
                f"'{EXPERT_ACTIONS}'); build it with "
                "policies.evaluation.envs.make_eval_env(..., expert_noise=...)"
            )
