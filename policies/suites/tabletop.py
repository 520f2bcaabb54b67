"""Our tabletop tasks (``sim``) as a suite: the default, owning every name without another suite's prefix."""

from __future__ import annotations

import sim
from policies.suites.base import Suite
from sim import contract


class Tabletop(Suite):
    name = "sim"
    title = "our tasks"
    prefix = ""
    robot_type = "vla_panda_sim"
    fps = sim.EnvConfig().control_hz
    cameras = sim.CAMERAS
    state_names = contract.STATE_NAMES
    action_names = contract.ACTION_NAMES
    episodes_per_task = 50
    seed_draws = "each task draws its own stream from a seed"
    skill_labels = True

    def resolve(self, names: list[str]) -> list[str]:
        return sim.resolve_tasks(names)  # "all", or names of sim.TASKS

    def check_recording(self, config) -> list[str]:
        sim.EnvConfig(image_size=tuple(config.image_size), cameras=tuple(config.cameras))  # validates both
        sim.holdout_templates(config.holdout_templates)  # valid, or an error naming the templates
        return list(config.cameras)

    def make_env(self, task: str, image_size: tuple[int, int], cameras: tuple[str, ...], held: str | None):
        return sim.make(
            task, image_size=image_size, cameras=cameras, exclude_templates=(held,) if held else ()
        )

    def make_expert(self, task: str, env, noise: float, seed):
        return sim.make_expert(env, noise=noise, seed=seed)

    def eval_settings(self, policy, env_options: dict | None, videos: bool) -> sim.EnvConfig:
        """The cameras the policy reads at the size it asks for (a checkpoint: its training frames' size
        before the resize, so both take the same resize), then ``env_options``; ``videos`` changes
        nothing (``render_size`` is the videos' size)."""
        options = {"cameras": tuple(policy.cameras) if hasattr(policy, "cameras") else sim.CAMERAS}
        if getattr(policy, "image_size", None) is not None:
            options["image_size"] = tuple(policy.image_size)
        options.update({key: value for key, value in (env_options or {}).items() if value is not None})
        return sim.EnvConfig(**options)

    def make_eval_env(self, task: str, settings: sim.EnvConfig):
        return sim.make(task, config=settings)


SIM = Tabletop()
