"""One way to build a policy from options, for ``vla-eval``, ``vla-serve`` and ``vla-deploy``.

    load_policy("expert")                       # the scripted experts (they run inside the environment)
    load_policy("runs/tiny", device="cuda")     # a checkpoint, a vla-train run directory, its checkpoints/
                                                # or its checkpoints/last (vla.model.io.resolve_checkpoint)
    load_policy(vla)                            # a VLA in memory (the trainer's periodic evaluation)
    load_policy(policy)                         # anything with infer(obs): returned as it is

A policy served by ``vla-serve`` is not loaded but connected to: ``policies.serving.client.PolicyClient``
(``vla-deploy server=host:port`` builds it), so that the core never imports a wing.

Importing this module stays free of torch: the model is imported only when a checkpoint or a VLA is asked for.
"""

from __future__ import annotations

from pathlib import Path

from policies.expert_policy import ExpertPolicy

EXPERT = "expert"  # the policy name of the scripted experts, in every app's options


def load_policy(
    spec,
    *,
    camera_map: dict | None = None,
    device: str | None = None,
    precision: str = "fp32",
    expert_noise: float = 0.0,
):
    """The policy ``spec`` names: ``"expert"``, a checkpoint or run directory (str or Path), a ``VLA`` in
    memory, or a policy object. ``camera_map``: model camera -> observation camera (None: identity);
    ``device``: where a checkpoint is loaded (None: the CPU; an in-memory VLA stays where it is unless given);
    ``precision``: what a checkpoint computes in (``VLAPolicy``); ``expert_noise``: the experts' action noise."""
    if isinstance(spec, str) and spec == EXPERT:
        return ExpertPolicy(expert_noise)
    if isinstance(spec, str | Path):
        from policies.vla_policy import VLAPolicy  # torch and the model: only when a checkpoint is asked for

        return VLAPolicy(spec, camera_map, device or "cpu", precision=precision)
    if hasattr(spec, "infer"):
        return spec
    from policies.vla_policy import VLAPolicy
    from vla.model.vla import VLA

    if isinstance(spec, VLA):
        return VLAPolicy.from_model(spec, camera_map, device)
    raise TypeError(
        f"cannot make a policy of a {type(spec).__name__}: give a checkpoint, {EXPERT!r}, a VLA or a policy"
    )
