"""docs/architecture.md is the map of studio/: it names every module, names nothing that is gone, and no module
is over 400 lines."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "docs" / "architecture.md"
MAX_LINES = 400
PATH = re.compile(r"`(studio/[\w/.-]*)`")


def _modules() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "studio").rglob("*.py")
            if p.name != "__init__.py" and "__pycache__" not in p.parts}


def _packages() -> set[str]:
    return {p.parent.relative_to(ROOT).as_posix() + "/" for p in (ROOT / "studio").rglob("__init__.py")
            if p.parent != ROOT / "studio"}


def _named() -> set[str]:
    return {m for m in PATH.findall(MAP.read_text(encoding="utf-8")) if m.endswith((".py", "/"))}


def test_the_map_names_every_module_and_package():
    missing = sorted((_modules() | _packages()) - _named())
    assert not missing, f"docs/architecture.md does not mention {missing}"


def test_the_map_names_nothing_that_is_gone():
    gone = sorted(p for p in _named() if not (ROOT / p).exists() or (p.endswith("/") and not (ROOT / p).is_dir()))
    assert not gone, f"docs/architecture.md names {gone}, which the tree does not have"


def test_no_studio_module_is_over_400_lines():
    lines = {m: len((ROOT / m).read_text(encoding="utf-8").splitlines()) for m in sorted(_modules())}
    long = {m: n for m, n in lines.items() if n > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines (split them): {long}"
