"""Press the {color} button: three sprung buttons of distinct colours; push the named one down."""

from __future__ import annotations

import numpy as np

from sim import objects
from sim.tasks.base import PlanStep, Task, Thing, Waypoint, pick_colors, sample_positions
from sim.world import World

_BUTTONS = ("button_a", "button_b", "button_c")
PRESSED = -0.008  # m of cap travel that counts as pressed
_PRESS_Z = 0.03  # m, TCP height that pushes the cap to the bottom of its travel


class PressButton(Task):
    name = "PressButton"
    max_steps = 60
    instructions = (
        "press the {color} button",
        "push the {color} button",
        "push down on the {color} button",
        "hit the {color} button",
    )
    # The buttons' colours are distinct, so the colour alone names one (docs/sim.md).
    unseen_wordings = (
        "tap the {color} button",
        "click the {color} button",
        "give the {color} button a press",
        "the {color} button, press it",
        "press the {color} one",
        "the {color} one",
        "{color}, please",
    )
    goal_fields = ("color",)

    def objects_xml(self) -> str:
        return "".join(objects.button(b) for b in _BUTTONS)

    def randomize(self, world: World, rng: np.random.Generator) -> dict[str, str]:
        colors = pick_colors(rng, len(_BUTTONS))
        for button, color, xy in zip(_BUTTONS, colors, sample_positions(rng, 3, 0.11), strict=True):
            world.set_body_pos(f"{button}_base", [*xy, 0.0])
            world.set_rgba(button, objects.COLORS[color])
        index = int(rng.integers(len(_BUTTONS)))
        self.colors, self.target = colors, _BUTTONS[index]
        return {"color": colors[index]}

    def goals(self) -> list[dict[str, str]]:
        return [{"color": color} for color in self.colors]  # in _BUTTONS order

    def _aim(self, index: int) -> None:
        self.target = _BUTTONS[index]

    def things(self) -> list[Thing]:
        return [Thing(b, "button", color) for b, color in zip(_BUTTONS, self.colors, strict=True)]

    def success(self, world: World) -> bool:
        return pressed(world, self.target)

    def plan(self, world: World) -> list[PlanStep]:
        return press_steps(world, self.target)


def pressed(world: World, button: str) -> bool:
    return world.joint_value(button) < PRESSED


def press_steps(world: World, button: str) -> list[PlanStep]:
    """Above the button with the gripper closed, down onto its cap, back up."""
    xy = world.body_pos(button)[:2]
    return [
        Waypoint(np.array([*xy, 0.12]), 0.0, 1.0, tolerance=0.015),
        Waypoint(np.array([*xy, _PRESS_Z]), 0.0, 1.0, hold=2),
        Waypoint(np.array([*xy, 0.12]), 0.0, 1.0),
    ]
