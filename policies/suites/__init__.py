"""The simulators ``vla-record`` records from, ``vla-eval`` evaluates on and ``vla-demo`` runs: one ``Suite``
adapter per benchmark (``base.Suite``, the contract), registered in ``SUITES``: our tabletop tasks
(``tabletop.SIM``, ``sim``) and Meta-World (``metaworld.METAWORLD``, ``sim.metaworld``).

    names = suites.resolve(config.task)   # "all", names or ids -> task names of one suite, or ValueError
    suite = suites.of(names)              # the suite they belong to; the apps then call it
    suite.check_installed(); env = suite.make_env(names[0], (128, 128), suite.cameras, None)

A run draws from one suite: suites differ in robots, state and action sizes and cameras, so their episodes
cannot share a dataset's features nor a checkpoint. Tasks are named as each suite's environments take them
(``PickUp``, ``metaworld/reach-v3``), and so they appear in a dataset's ``vla/sim_task`` column and a
results document's ``tasks``. Resolving names and checking options never import a suite's simulator (Meta-World
lives in its own venv): only building an env does, and ``check_installed`` tells early whether that will work.
"""

from __future__ import annotations

from typing import Any

from policies.suites.base import Suite
from policies.suites.metaworld import METAWORLD
from policies.suites.tabletop import SIM

DEFAULT = SIM  # the suite of every name no other suite's prefix claims
SUITES: tuple[Suite, ...] = (SIM, METAWORLD)
RECORD, EVALUATE = "record", "evaluate"  # what a mix of suites is refused for, in resolve's error
_MIXED = {
    RECORD: "cannot record {named} into one dataset: their robots, state and action sizes and cameras differ; "
    "record each into its own out= directory",
    EVALUATE: "cannot evaluate {named} in one run: their robots, state and action sizes and cameras differ, so "
    "no checkpoint fits both; evaluate each with its own out=",
}

__all__ = ["DEFAULT", "EVALUATE", "METAWORLD", "RECORD", "SIM", "SUITES", "Suite", "of", "resolve"]


def _owner(name: Any) -> Suite:
    return next((suite for suite in SUITES if suite is not DEFAULT and suite.owns(name)), DEFAULT)


def _grouped(names: list) -> dict[Suite, list]:
    """``names`` by the suite that owns them, suites in the order their first name comes."""
    groups: dict[Suite, list] = {}
    for name in names:
        groups.setdefault(_owner(name), []).append(name)
    return groups


def _names(tasks: Any) -> list:
    return [] if tasks is None else [tasks] if isinstance(tasks, str) else list(tasks)


def resolve(tasks: Any, purpose: str = RECORD) -> list[str]:
    """A config's tasks (a name, ``"all"``, an id or a group, or a list of them) -> the task names of one
    suite, groups spelled out; ``ValueError`` naming the valid choices, or, for names of several suites,
    why they cannot go together (``purpose``: ``RECORD`` or ``EVALUATE``)."""
    names = _names(tasks)
    groups = _grouped(names)
    if len(groups) > 1:
        named = " and ".join(f"{suite.title} {owned}" for suite, owned in groups.items())
        raise ValueError(_MIXED[purpose].format(named=named))
    suite = next(iter(groups), DEFAULT)
    try:
        return suite.resolve(names)
    except ValueError as error:
        if suite is not DEFAULT:
            raise
        # A name that fell to the default suite may be another's with its prefix forgotten.
        spellings = "; ".join(other.spelling for other in SUITES if other is not DEFAULT)
        raise ValueError(f"{error}; {spellings}") from None


def of(tasks: Any) -> Suite:
    """The suite of a config's tasks (as ``resolve`` returns them, or a name; None or none: the default);
    ``ValueError`` for tasks of several suites."""
    groups = _grouped(_names(tasks))
    if len(groups) > 1:
        named = " and ".join(f"{suite.title} {owned}" for suite, owned in groups.items())
        raise ValueError(f"tasks of one suite expected, got {named}")
    return next(iter(groups), DEFAULT)
