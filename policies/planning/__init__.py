"""planning: a language-model planner over skills with closed-loop feedback (SayCan, Inner Monologue).

It composes: the skills and their executors come from ``sim.skills``, the language model from ``vla``;
``sim`` and ``vla`` never import it. ``scorer`` rates candidate skill texts under a causal LM, ``prompt``
writes the few-shot prompt and the episode's lines, ``planner`` chooses (language score times affordance),
``loop`` runs an episode (plan, execute, feed back), ``faults`` drops held objects, ``evaluate`` is
``vla-plan-eval``. docs/planner.md describes it.
"""
