"""policies: the composition layer: the policy interface, rollouts, evaluation, serving, deployment, recording.

The core is the top-level modules and packages outside ``WINGS``: the policy interface (``base``), the
policies (``vla_policy``, ``expert_policy``), building one from options (``loading``, for ``vla-eval``,
``vla-serve`` and ``vla-deploy``), the benchmarks' suites (``suites/``: one adapter per benchmark,
registered in ``suites.SUITES``), chunk execution, rollouts, seeds, process helpers and the apps' command
line (``cli``). It imports ``sim``, ``vla`` and itself, never a wing.

The wings (``WINGS``) import the core, ``vla`` and ``sim``, and another wing only where ``WING_IMPORTS``
declares it: ``evaluation/`` and ``runtime/`` write their reports with ``reports/`` (results documents,
videos, plots, which imports nothing but the core); ``runtime/`` drives ``evaluation/``'s environment
(``SimRobot`` wraps ``EvalEnv``) and speaks ``serving/``'s wire format through its client; ``apps/`` composes
them all; ``planning/`` (a language-model planner over skills) writes its results with ``reports/``.
``tests/test_import_rules.py`` reads every import of ``sim``, ``vla`` and ``policies`` and fails on
one these rules do not allow, and on any import circle.
"""

WINGS = ("evaluation", "recording", "reports", "serving", "runtime", "planning", "apps")
WING_IMPORTS = {  # wing -> the other wings it may import
    "evaluation": ("reports",),
    "recording": (),
    "reports": (),
    "serving": (),
    "runtime": ("evaluation", "reports", "serving"),
    "planning": ("reports",),  # a planner over skills writes its results documents with reports/
    "apps": WINGS,
}
