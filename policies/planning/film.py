"""Videos of planner episodes whose caption shows the skill under way.

    env = Filmed(sim.make("StackThree", cameras=()))
    run_plan_episode(env, planner, seed, narrate=env.narrate)
    write_mp4("videos/StackThree.mp4", env.frames, env.fps)

``Filmed`` keeps ``env.render()`` (the agentview at the environment's ``render_size``) after the reset and
after each step, captioned with the latest line ``narrate`` was given: the decision number and the skill's
text (``"2. put the red cube in the bin"``), so a viewer sees which step of the plan each frame belongs to.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from policies.reports.video import caption


class Filmed(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.frames: list[np.ndarray] = []  # (H, W, 3) uint8 each, captioned
        self.line = ""
        self.fps = float(env.metadata.get("render_fps", 10))

    def narrate(self, line: str) -> None:
        """The caption of the frames from now on."""
        self.line = line

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.frames, self.line = [], ""
        self._film()
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self._film()
        return out

    def _film(self) -> None:
        self.frames.append(caption([self.env.render()], self.line)[0])
