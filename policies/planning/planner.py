"""SayCan's choice of the next skill: how useful the language model finds it, times how feasible it is.

SayCan multiplies p(skill | instruction, steps so far) by the skill's affordance. The language term is
estimated here in the noisy-channel direction (Bayes' rule with a uniform prior over the candidates): the
log-likelihood of the instruction after the steps so far and the candidate (``prompt`` puts the instruction
last). Measured on SmolLM2-135M, the direct direction (the candidate's text after the instruction) follows
the worked examples' wording and the order objects were listed in, not the instruction; the channel
direction scores one and the same text for every candidate, and an instruction's colour and object words
are likelier after a step that names them. docs/planner.md has the numbers.

Candidates whose affordance is 0 get no language score at all (their product is 0); ``done`` is a
candidate like the skills, with the affordance the caller gives it. Before the first choice, ``ungrounded`` checks that every colour and kind of
object the instruction names is in the scene: an instruction naming something absent has nothing to do,
and the planner says so instead of choosing skills.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from policies.planning.prompt import instruction_line, scene_line, step, step_line
from policies.planning.scorer import LMScorer, Session
from sim.objects import COLORS
from sim.tasks.base import Thing

KINDS = ("cube", "cylinder", "block", "bin", "target", "button", "drawer")


@dataclass(frozen=True)
class Decision:
    text: str  # the chosen skill's text, or DONE
    scores: dict[str, float]  # every feasible candidate's score: language log-likelihood + log affordance
    latency_s: float  # wall time of the choice
    cpu_s: float  # CPU time of the choice, every thread of this process together


def ungrounded(instruction: str, things: Sequence[Thing]) -> str | None:
    """Why ``instruction`` has nothing to do in a scene of ``things`` (a colour or a kind of object it
    names that nothing in the scene has), or None."""
    words = {_singular(word) for word in re.findall(r"[a-z]+", instruction.lower())}
    for color in sorted(words & set(COLORS)):
        if all(t.color != color for t in things):
            return f"nothing to do: the instruction names {color}, and nothing in the scene is {color}"
    for kind in sorted(words & set(KINDS)):
        if all(t.kind != kind for t in things):
            return f"nothing to do: the instruction names a {kind}, and the scene has none"
    return None


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and word[:-1] in KINDS else word


class SayCanPlanner:
    def __init__(self, scorer: LMScorer):
        self.scorer = scorer

    def start(self, instruction: str, scene: str, task=None) -> Episode:
        """The prompt of a new episode (``scene``: the initial scene's description; ``task`` unused)."""
        return Episode(self.scorer.session().extend(scene_line(scene)), instruction)

    def decide(
        self, episode: Episode, candidates: Sequence[str], affordances: Sequence[float], state=None
    ) -> Decision:
        """The next step among ``candidates`` (skill texts and ``DONE``), each with its affordance; at least
        one must be feasible. ``state`` (the scene as the loop believes it) is not read: the prompt says what
        the planner knows."""
        started, cpu = time.perf_counter(), time.process_time()
        affordances = np.asarray(affordances, dtype=float)
        if len(affordances) != len(candidates):
            raise ValueError(f"{len(candidates)} candidates but {len(affordances)} affordances")
        if not (affordances > 0).any():
            raise ValueError(f"no candidate is feasible: {list(candidates)}")
        options = [c for c, a in zip(candidates, affordances, strict=True) if a > 0]
        weights = affordances[affordances > 0]
        texts = [step(episode.steps, option) for option in options]
        combined = episode.session.score(texts, tail=instruction_line(episode.instruction)) + np.log(weights)
        scores = {option: float(score) for option, score in zip(options, combined, strict=True)}
        best = options[int(np.argmax(combined))]
        return Decision(best, scores, time.perf_counter() - started, time.process_time() - cpu)


class Episode:
    """An episode's prompt: its session (the scene, then a line per step run) and its instruction."""

    def __init__(self, session: Session, instruction: str):
        self.session = session
        self.instruction = instruction
        self.steps = 0

    def record(self, skill: str, success: bool, scene: str) -> None:
        """Append a step line: the skill run, whether it succeeded and the scene after it."""
        self.session.extend(step_line(self.steps, skill, success, scene))
        self.steps += 1
