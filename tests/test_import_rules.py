"""The import rules of the stack, read from the source (every import statement, those inside functions too):

- ``sim`` imports nothing of ours (neither ``vla`` nor ``policies``);
- ``vla`` never imports ``sim`` or ``policies``;
- the core of ``policies`` (its top-level modules) imports no wing;
- a wing of ``policies`` imports another wing only where ``policies.WING_IMPORTS`` declares it;
- no import circle among our modules (a lazy import inside a function closes one as surely as a top one).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from policies import WING_IMPORTS, WINGS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim", "vla", "policies")


def sources() -> dict[str, str]:
    """{module name: source} of every module of our packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path.read_text()
    return found


def imports(name: str, source: str, modules: set[str]) -> set[str]:
    """The modules of ours that ``name`` imports: ``from a import b`` counts as ``a.b`` when that is a
    module (else ``a``), and each name is cut back to the longest prefix that is one of ``modules``."""
    package = name if f"{name}.__init__" in modules else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            )
    ours = set()
    for target in found:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            ours.add(target)
    return ours


def wing(module: str) -> str | None:
    """The wing of ``policies`` a module belongs to, or None (the core, or not in ``policies``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "policies" and parts[1] in WINGS else None


def broken_rules(modules: dict[str, str]) -> list[str]:
    """Every import that breaks a rule of the module docstring, and every import circle, as sentences."""
    names = set(modules) | {f"{name}.__init__" for name in modules if _is_package(name, modules)}
    graph = {name: imports(name, source, names) for name, source in modules.items()}
    broken = []
    for name, targets in graph.items():
        top = name.split(".")[0]
        for target in sorted(targets):
            reason = _broken(name, top, target)
            if reason:
                broken.append(f"{name} imports {target}: {reason}")
    return broken + [f"import circle among {', '.join(group)}" for group in _circles(graph)]


def _is_package(name: str, modules: dict[str, str]) -> bool:
    return any(other.startswith(name + ".") for other in modules)


def _broken(name: str, top: str, target: str) -> str | None:
    target_top = target.split(".")[0]
    if top == "sim" and target_top != "sim":
        return "sim imports nothing of ours"
    if top == "vla" and target_top in ("sim", "policies"):
        return "vla never imports sim or policies"
    if top != "policies" or target_top != "policies":
        return None
    source, destination = wing(name), wing(target)
    if destination is None or destination == source:
        return None
    if source is None:
        return "the core of policies imports no wing"
    if destination not in WING_IMPORTS.get(source, ()):
        return f"the {source} wing may import only {list(WING_IMPORTS.get(source, ()))} of the wings"
    return None


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a circle (Tarjan's strongly
    connected components, iteratively)."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_every_module_keeps_the_import_rules():
    modules = sources()
    assert len(modules) > 100 and {"sim", "vla", "policies", "policies.runtime.deploy"} <= set(modules)
    assert not broken_rules(modules), "\n".join(broken_rules(modules))


@pytest.mark.parametrize(
    ("module", "added", "expected"),
    [
        ("sim.env", "import policies.base", "sim imports nothing of ours"),
        ("sim.world", "from vla.model import io", "sim imports nothing of ours"),
        ("vla.model.io", "from sim.contract import ACTION_DIM", "vla never imports sim or policies"),
        ("vla.train.loop", "from policies import seeds", "vla never imports sim or policies"),
        (
            "policies.loading",
            "from policies.serving.client import PolicyClient",
            "core of policies imports no",
        ),
        ("policies.evaluation.envs", "from policies.recording import worker", "evaluation wing may import"),
        ("policies.serving.server", "from policies.runtime import safety", "serving wing may import only []"),
        ("policies.rollout", "def f():\n    from policies.evaluation import closed_loop", "imports no wing"),
        ("policies.evaluation.instruction", "from policies.evaluation import evaluate", "import circle"),
    ],
)
def test_a_forbidden_import_is_caught(module, added, expected):
    """The rules can fail: each of these imports, added to a real module, is reported."""
    modules = sources()
    modules[module] += "\n" + added + "\n"
    assert any(expected in sentence for sentence in broken_rules(modules)), broken_rules(modules)
