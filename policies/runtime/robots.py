"""Which robot ``vla-deploy robot=NAME`` opens: a name registered as a plugin, or a ``package.module:Class`` path.

A package adds a robot by declaring an entry point in the ``vla_stack.robots`` group of its pyproject.toml::

    [project.entry-points."vla_stack.robots"]
    my_arm = "my_package.arm:MyArm"

after which ``vla-deploy robot=my_arm`` opens it; ``robot=my_package.arm:MyArm`` does the same without
registering. The class follows ``policies.runtime.robot.Robot`` (``check_robot`` in
``policies.runtime.conformance`` tests that it does) and vla-deploy calls it with ``robot_options`` as keyword
arguments. The two built-ins, ``sim`` and ``franka``, are registered the same way by vla-stack's own
pyproject.toml; ``BUILT_IN`` repeats them for an installation whose metadata predates that (an editable
install made before), and vla-deploy opens them with their own option groups (``task=``, ``franka.*``).
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points

GROUP = "vla_stack.robots"
SIM, FRANKA = "sim", "franka"
BUILT_IN = {
    SIM: "policies.runtime.sim_robot:SimRobot",
    FRANKA: "policies.runtime.franka:FrankaRobot",
}
CLASS_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def registered() -> dict[str, str]:
    """Every robot name and the ``module:Class`` it stands for: the built-ins, then the installed plugins."""
    found = dict(BUILT_IN)
    found.update({point.name: point.value for point in entry_points(group=GROUP)})
    return found


def robot_path(name: str) -> str:
    """The ``module:Class`` of ``name`` (a registered name or a path), or a ``ValueError`` listing the names."""
    known = registered()
    if name in known:
        return known[name]
    if CLASS_PATH.fullmatch(name):
        return name
    raise ValueError(
        f"robot {name!r} is not registered; registered robots: {sorted(known)} (or give a "
        f"package.module:Class path; a package registers one in the {GROUP!r} entry-point group)"
    )


def load_robot_class(name: str) -> type:
    """The class ``name`` stands for, imported; an unimportable module or missing class says which."""
    path = robot_path(name)
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"robot {name!r}: cannot import {module_name!r} ({error})") from error
    robot_class = getattr(module, class_name, None)
    if not callable(robot_class):
        raise ValueError(f"robot {name!r}: module {module_name!r} has no class {class_name!r}")
    return robot_class
