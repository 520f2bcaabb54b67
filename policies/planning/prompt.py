"""The planner's prompt: the episode, one line per skill run, then a candidate step, then the instruction.

    Scene: holding: nothing. in the bin: nothing.
    1. pick up the green cube. Success: yes. Scene: holding: the green cube. in the bin: nothing.
    2. put the green cube in the bin. Success: yes. Scene: holding: nothing. in the bin: the green cube.
    3. done.
    Instruction: put all the green objects in the bin.

The instruction comes after the plan: the planner rates each candidate next step by how likely the
language model finds the instruction after the steps so far and that candidate (``planner``). Each step
line carries Inner Monologue's feedback: the success detector's verdict and the scene described after the
step (``sim.skills.describe``). Run open loop, the lines say what the planner expected instead (success,
the scene the skill's ``effect`` predicts), so with no fault the two prompts, and plans, are the same.

There are no worked examples and no header: on SmolLM2-135M every few-shot prefix tried made the choices
worse (docs/planner.md has the measurements), so the prompt is the episode alone.
"""

from __future__ import annotations

DONE = "done"  # the planner's candidate for "the instruction is carried out"


def scene_line(scene: str) -> str:
    return f"Scene: {scene}\n"


def step(index: int, skill: str) -> str:
    """A candidate step: ``"3. pick up the red cube.\\n"``."""
    return f"{index + 1}. {skill}.\n"


def step_line(index: int, skill: str, success: bool, scene: str) -> str:
    """A step that ran: the skill, the detector's verdict and the scene after it."""
    return f"{index + 1}. {skill}. Success: {'yes' if success else 'no'}. Scene: {scene}\n"


def instruction_line(instruction: str) -> str:
    return f"Instruction: {instruction}.\n"
