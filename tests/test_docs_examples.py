"""The Python examples of the docs listed here run as written, each block on its own in a fresh namespace,
and what a ``print(...)  # ...`` line prints is in its comment."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["docs/sim.md"]  # docs whose every ```python block is a complete program
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks() -> list:
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for match in BLOCK.finditer(text):
            line = text[: match.start()].count("\n") + 1
            found.append(pytest.param(f"{doc}:{line}", match.group(1), id=f"{doc}:{line}"))
    return found


@pytest.mark.parametrize("where, code", _blocks())
def test_the_docs_python_example_runs(where, code, capsys):
    exec(compile(code, where, "exec"), {})
    comments = [line.partition("#")[2] for line in code.splitlines() if line.startswith("print(")]
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(comments), printed
    for out, comment in zip(printed, comments, strict=True):
        assert out in comment, f"{where} prints {out}; its comment says {comment}"
