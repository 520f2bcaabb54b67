"""policies: the composition layer: the policy interface, rollouts, evaluation, reports and recording.

The top-level modules (base, vla_policy, expert_policy, chunking, rollout, seeds, threads, parent_watch) are
the interface and what every wing uses; ``reports/`` (results documents, videos, plots) sits beside them and
imports nothing but them. The wings, ``evaluation/``, ``recording/``, ``serving/`` and ``runtime/``, import
those and not each other, except that ``runtime/`` drives ``evaluation/``'s environment (``SimRobot``), loads
policies with its ``as_policy`` and speaks ``serving/``'s wire format. ``planning/`` (a language-model
planner over ``sim.skills``, ``vla-plan-eval``) imports the core, ``sim`` and ``vla`` only; ``sim`` and
``vla`` never import it. ``apps/`` composes the wings.
"""
