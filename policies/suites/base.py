"""``Suite``: one benchmark's simulator as recording, evaluation and the demo see it (the contract).

A suite owns task names (by a prefix: ``metaworld/``; the default suite, ours, every name without one),
spells out a config's names, checks the options each app gives it (a one-line ``ValueError`` naming the
option, the valid choices and why), builds its environments and scripted experts, and adds what is its
own to a results document. The apps ask ``policies.suites.of(tasks)`` for the suite and call it; they never
ask which suite it is. Adding a benchmark is one subclass, registered in ``policies.suites.SUITES``.

The methods a subclass must write are abstract; the others answer "nothing to refuse, nothing to add",
which is what our tabletop tasks need.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Suite(ABC):
    """The facts (class attributes) and the behaviour of one benchmark. Instances hold no state."""

    name: str  # a short id, as in results
    title: str  # how errors name its tasks: "our tasks", "Meta-World"
    prefix: str  # every task id of this suite starts with it; "" for the default suite
    spelling: str = ""  # how its ids are written, added to the error for a name no suite knows
    # What a dataset's info.json says of the robot its episodes come from.
    robot_type: str
    fps: int  # control steps per second: the recording's frame rate
    cameras: tuple[str, ...]  # every camera it renders
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    episodes_per_task: int  # the evaluation protocol's default
    seed_draws: str  # what an evaluation's episode seed decides, in the report's words
    skill_labels: bool = False  # whether sim.skills names the skills of its recordings

    def owns(self, name: Any) -> bool:
        """Whether a config's task name (a task, a group or ``all``) is this suite's."""
        return isinstance(name, str) and name.startswith(self.prefix)

    @abstractmethod
    def resolve(self, names: list[str]) -> list[str]:
        """Names this suite owns (tasks, groups) -> its task ids, groups spelled out, repeats dropped;
        ``ValueError`` naming the valid choices."""

    def check_installed(self) -> None:
        """``ImportError`` saying how to get the simulator when it is missing here; nothing by default."""
        return None

    def episodes(self, requested: int | None) -> int:
        """An evaluation's episodes per task: ``requested``, or the protocol's when None."""
        return self.episodes_per_task if requested is None else requested

    # -- recording ------------------------------------------------------------------------------------------

    @abstractmethod
    def check_recording(self, config) -> list[str]:
        """The cameras to record with; ``ValueError`` for recording options it cannot honour. ``config``
        has ``image_size``, ``cameras``, ``goals_per_scene`` and ``holdout_templates`` (``RecordConfig``)."""

    @abstractmethod
    def make_env(self, task: str, image_size: tuple[int, int], cameras: tuple[str, ...], held: str | None):
        """``task``'s environment for recording: it renders ``cameras``; ``held``: an instruction template
        never drawn (None: none held out)."""

    @abstractmethod
    def make_expert(self, task: str, env, noise: float, seed):
        """``task``'s scripted expert on ``env``; with ``noise``, it also gives its intended actions."""

    # -- evaluation -----------------------------------------------------------------------------------------

    def check_evaluation(self, modes: list[str], env_options: dict | None, camera_map: dict | None) -> None:
        """``ValueError`` for evaluation options it cannot honour; nothing by default (the evaluator checks
        the instruction modes against the tasks itself)."""
        return None

    def check_instruction_modes(self, modes: list[str], option: str, remedy: str) -> None:
        """``ValueError`` naming ``option`` (with ``remedy``) for instruction modes it cannot run; nothing by
        default."""
        return None

    @abstractmethod
    def eval_settings(self, policy, env_options: dict | None, videos: bool):
        """The evaluation environments' settings (picklable, for spawned workers): what ``policy`` reads,
        then ``env_options``; ``videos``: whether a policy that reads no images renders anyway."""

    @abstractmethod
    def make_eval_env(self, task: str, settings):
        """``task``'s environment for evaluation, from ``eval_settings``'s answer."""

    def describe(self, settings, tasks: list[str]) -> dict:
        """What it adds to a results document's ``protocol`` (keys of its own); nothing by default."""
        return {}

    def summarise(self, entries: dict[str, dict]) -> dict:
        """What it adds to a results document (keys of its own), from the per-task entries."""
        return {}

    def markdown(self, document: dict) -> str:
        """The report's section for what ``summarise`` added, or ``""``."""
        return ""

    # -- the demo ---------------------------------------------------------------------------------------------

    def model_cameras(self, cameras: Any, option: str) -> list[str]:
        """The cameras a model trained on it reads, from ``cameras`` (``option`` names them in the error)."""
        return list(cameras)

    def record_options(self, image_size: Any) -> dict:
        """The recording options it sets itself when it records for a model reading ``image_size``."""
        return {}
