"""What a task is: its objects, how an episode is randomized, its success predicate and an expert's plan.

A task never steps physics or renders; the environment does (``sim.env``). Each task module stays small
(dm_control's suite is the model): a scene, ``reset``, ``success`` and ``plan``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sim.objects import COLORS
from sim.world import World

# Where objects are placed on the table (m, world frame): within the arm's comfortable reach.
REGION_LOW = np.array([0.36, -0.24])
REGION_HIGH = np.array([0.64, 0.24])
# Where a learned policy must time a change from what it sees, the experts show it over frames that differ:
# the last descent onto an object at 0.3 of the controller's maximum (1.5 cm a step, not 5), so the stop at
# the grasp height is not a single frame; and no frame held after a close or a lowering (the fingers close
# within the step): a held frame looks like the one that moves on, so policies trained on four held frames
# for each lift learned to stay there, holding the object on the table (docs/benchmarks.md, r21-r23).
DESCENT_SPEED = 0.3
RELEASE_HOLD = 0  # frames held with the fingers open after a release, before rising


@dataclass(frozen=True)
class Waypoint:
    """A TCP goal for the scripted expert: position, gripper yaw about world z, and gripper command."""

    pos: np.ndarray  # (3,) m
    yaw: float = 0.0  # rad; 0 = fingers close along world y
    gripper: float = -1.0  # -1 open, +1 closed
    tolerance: float = 0.008  # m; the waypoint counts as reached within this distance
    hold: int = 0  # control steps to wait once reached (e.g. for the fingers to close)
    timeout: int = 40  # control steps after which the expert moves on regardless
    speed: float = 1.0  # largest translation action, as a fraction of the controller's maximum


@dataclass(frozen=True)
class Track:
    """A plan step re-evaluated at every control step (closed loop), e.g. to keep pushing an object."""

    waypoint: Callable[[World], Waypoint]


@dataclass(frozen=True)
class Thing:
    """Something in a task's scene that an instruction or a skill can name: a body and how it is called."""

    body: str  # the MuJoCo body
    kind: str  # "cube", "cylinder", "bin", "target", "button" or "drawer"
    color: str = ""  # "" for a fixture named by its kind alone (the bin, the drawer)

    @property
    def name(self) -> str:
        """``"red cube"``, ``"bin"``: the words an instruction uses for it (without "the")."""
        return f"{self.color} {self.kind}" if self.color else self.kind


# A plan step is a fixed waypoint, a function of the world evaluated once when the step starts (so later
# steps can use where objects ended up), or a Track re-evaluated at every control step.
PlanStep = Waypoint | Callable[[World], Waypoint] | Track


class Task(ABC):
    name: ClassVar[str]
    max_steps: ClassVar[int]
    instructions: ClassVar[tuple[str, ...]]  # paraphrase templates, formatted with reset()'s fields
    # Wordings a new user might type, for ``vla-eval instruction=wordings``: new verbs, elliptic references
    # that leave out what the scene makes obvious ("the red one"), other sentence orders, casual phrasing.
    # A policy trained on ``instructions`` alone may take its task from their nouns rather than from the
    # scene; these measure that. Formatted with the goal's fields only (a wording may leave some out where
    # the rest still names exactly one of ``goals()`` in every scene). Never drawn by ``reset``, so never
    # recorded, and not for tuning anything. () for a task without alternatives: none.
    unseen_wordings: ClassVar[tuple[str, ...]] = ()
    # The instruction fields that name the goal among the scene's alternatives (a goal is a dict of them);
    # () for a task whose scene alone decides what to do (the drawers), which has a single goal.
    goal_fields: ClassVar[tuple[str, ...]] = ()
    goal: dict[str, str]  # this episode's goal, set by reset()

    @abstractmethod
    def objects_xml(self) -> str:
        """MJCF bodies this task adds to the tabletop scene."""

    def contact_xml(self) -> str:
        """MJCF <contact> entries (pairs to exclude) this task's objects need; none by default."""
        return ""

    @abstractmethod
    def randomize(self, world: World, rng: np.random.Generator) -> dict[str, str]:
        """Place and colour objects, choose the goal; return the fields of the instruction templates."""

    @abstractmethod
    def success(self, world: World) -> bool: ...

    def pick_body(self) -> str | None:
        """The body this episode's plan grasps first (sim.grasp times the grasp), None for a task without one."""
        return None

    @abstractmethod
    def plan(self, world: World) -> Sequence[PlanStep]:
        """The scripted expert's waypoints for this episode, from privileged simulator state."""

    def things(self) -> list[Thing]:
        """What this episode's scene holds that a skill can act on (valid after ``randomize``), in a fixed
        order; the skills (``sim.skills``) are built from it."""
        return []

    def goals(self) -> list[dict[str, str]]:
        """The goals an instruction can name in this episode's scene (valid after ``randomize``), in a fixed
        order; ``[{}]`` for a task whose scene decides (one goal, nothing to choose)."""
        return [{}]

    def _aim(self, index: int) -> None:
        """Re-target the episode (``success`` and ``plan``) at ``goals()[index]``; tasks with alternatives
        override it."""
        raise NotImplementedError(f"{self.name} has no alternative goals")

    def set_goal(self, goal: dict) -> None:
        """Re-target the current scene at ``goal`` (one of ``goals()``), or ``ValueError`` listing them."""
        goals = self.goals()
        if not self.goal_fields:
            raise ValueError(
                f"{self.name} has no alternative goals (its scene decides what to do), so no goal can be "
                f"chosen; valid goals: {goals}"
            )
        wanted = {str(key): str(value) for key, value in goal.items()} if isinstance(goal, dict) else None
        if wanted not in goals:
            raise ValueError(f"goal {goal!r} is not in this {self.name} scene; valid goals: {goals}")
        self._aim(goals.index(wanted))
        self.goal = wanted

    def reset(
        self,
        world: World,
        rng: np.random.Generator,
        goal: dict | None = None,
        template: str | None = None,
        exclude_templates: Sequence[str] = (),
    ) -> str:
        """Randomize the episode and return its instruction.

        ``goal``: re-target the scene at this goal (``set_goal``) once it is placed; the scene is the one
        the plain reset places, since the rng is consumed identically. ``template``: the instruction's
        template (one of ``instructions``) instead of a drawn one. ``exclude_templates``: templates never
        drawn. The template is drawn (one ``rng.integers``) in every case, so the stream stays the same.
        """
        fields = self.randomize(world, rng)
        self.goal = {key: fields[key] for key in self.goal_fields}
        if goal is not None:
            self.set_goal(goal)
            fields = {**fields, **self.goal}
        allowed = [t for t in self.instructions if t not in exclude_templates]
        drawn = allowed[rng.integers(len(allowed))]
        return (drawn if template is None else template).format(**fields)

    def check_templates(self, templates: Sequence[str]) -> None:
        """``ValueError`` unless every one of ``templates`` is one of this task's instruction templates."""
        unknown = [t for t in templates if t not in self.instructions]
        if unknown:
            raise ValueError(
                f"unknown {self.name} instruction templates {unknown}; its templates: {list(self.instructions)}"
            )


# -- helpers shared by the tasks ------------------------------------------------------------------------
def pick_colors(rng: np.random.Generator, n: int) -> list[str]:
    return [str(c) for c in rng.choice(list(COLORS), size=n, replace=False)]


def sample_positions(
    rng: np.random.Generator,
    n: int,
    min_distance: float,
    low: np.ndarray = REGION_LOW,
    high: np.ndarray = REGION_HIGH,
    avoid: Sequence[tuple[np.ndarray, float]] = (),
) -> list[np.ndarray]:
    """``n`` xy positions at least ``min_distance`` apart and clear of each (centre, radius) in ``avoid``."""
    for _ in range(1000):
        points: list[np.ndarray] = []
        for _ in range(n):
            p = rng.uniform(low, high)
            if all(np.linalg.norm(p - q) >= min_distance for q in points) and all(
                np.linalg.norm(p - c[:2]) >= r for c, r in avoid
            ):
                points.append(p)
        if len(points) == n:
            return points
    raise RuntimeError(f"could not place {n} objects {min_distance} m apart in the region; region too small")


def grasp_yaw(object_yaw: float, symmetry: float | None = np.pi / 2) -> float:
    """The gripper yaw nearest zero that lines the fingers up with an object of the given symmetry (rad);
    ``None``: round about z (a standing cylinder), so any yaw grasps it and the answer is 0. Never the
    round object's own yaw: the cameras cannot see it, so a policy could not learn a wrist turn towards it,
    and a turn of up to 180 degrees walks the wrist into its joint limit."""
    if symmetry is None:
        return 0.0
    return float((object_yaw + symmetry / 2) % symmetry - symmetry / 2)


def pick_and_place(
    world: World, body: str, grasp_z: float, place: Callable[[World], np.ndarray], release_z: float
) -> list[PlanStep]:
    """Waypoints to grasp ``body`` from above and release it at ``place(world)`` + ``release_z``."""
    pos = world.body_pos(body)
    yaw = grasp_yaw(world.body_yaw(body))
    above = np.array([pos[0], pos[1], 0.12])
    grasp = np.array([pos[0], pos[1], grasp_z])

    def over_target(w: World) -> Waypoint:
        xy = place(w)[:2]
        return Waypoint(np.array([*xy, release_z + 0.08]), yaw, 1.0, tolerance=0.015)

    def lower(w: World) -> Waypoint:
        return Waypoint(np.array([*place(w)[:2], release_z]), yaw, 1.0, tolerance=0.01)

    def release(w: World) -> Waypoint:
        return Waypoint(np.array([*place(w)[:2], release_z]), yaw, -1.0, hold=RELEASE_HOLD, tolerance=0.02)

    return [
        Waypoint(above, yaw, -1.0, tolerance=0.02),
        Waypoint(grasp, yaw, -1.0, speed=DESCENT_SPEED),
        Waypoint(grasp, yaw, 1.0),
        Waypoint(above + [0, 0, 0.04], yaw, 1.0, tolerance=0.02),
        over_target,
        lower,
        release,
        lambda w: Waypoint(w.tcp_pos + [0, 0, 0.1], yaw, -1.0, tolerance=0.02),
    ]
