"""docs/architecture.md is the map of studio/: it names every module, names nothing that is gone, and no module
is over 400 lines. The import graph (imports at any depth, functions included) has no circles and no arrow back
up the layers."""
from __future__ import annotations

import re
from pathlib import Path

from import_graph import a_path, cycles, graph

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


# ------------------------------------------------------------------------------------------------ import graph
FOUNDATION = {"studio.errors", "studio.paths", "studio.formatting", "studio.imports", "studio.config",
              "studio.config_fields", "studio.config_values", "studio.config_grpo", "studio.templates",
              "studio.diskspace", "studio.events", "studio.runs", "studio.liveness", "studio.environment",
              "studio.signals", "studio.demo", "studio.damage"}
"""Top-level modules every layer builds on: they import only each other (never a package such as modeling)."""
LAYER_RULES = [
    # (who, must not import, why)
    ("studio.config", ("studio.hub", "studio.speed", "studio.modeling", "studio.ui", "studio.training",
                       "studio.inference", "studio.data", "studio.bench", "studio.commands", "studio.session"),
     "the config is the bottom layer: move what it needs down (studio/config_values.py)"),
    ("studio.modeling", ("studio.speed", "studio.training", "studio.inference", "studio.hub", "studio.ui",
                         "studio.bench", "studio.commands", "studio.session"),
     "modeling sits under the speed plan and the engine"),
]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def circle_problems(root: Path, package: str) -> list[str]:
    """One line per import circle of ``package`` under ``root`` (imports inside functions count)."""
    edges = graph(root, package)
    return [f"import circle: {' -> '.join(a_path(edges, c))} (all of {c})" for c in cycles(edges)]


def layer_problems(root: Path = ROOT) -> list[str]:
    edges = graph(root, "studio")
    out = []
    for src, targets in sorted(edges.items()):
        for dst in sorted(targets):
            if src in FOUNDATION and dst not in FOUNDATION and dst != "studio":
                out.append(f"{src} imports {dst}: foundation modules import only each other")
            for who, banned, why in LAYER_RULES:
                if _within(src, who) and any(_within(dst, b) for b in banned):
                    out.append(f"{src} imports {dst}: {why}")
            if _within(dst, "studio.commands") and not (src == "studio.cli" or _within(src, "studio.commands")):
                out.append(f"{src} imports {dst}: only the CLI imports the commands (move the helper down)")
            if _within(dst, "studio.ui") and not any(_within(src, p) for p in ("studio.ui", "studio.commands",
                                                                               "studio.cli")):
                out.append(f"{src} imports {dst}: only the UI, the commands and the CLI import studio.ui")
    return out


def test_no_import_circles_anywhere_in_studio():
    problems = circle_problems(ROOT, "studio")
    assert not problems, "\n".join(problems)


def test_no_import_goes_back_up_the_layers():
    problems = layer_problems()
    assert not problems, "\n".join(problems)


def test_the_checker_finds_a_circle_made_inside_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import os\n\n\ndef helper():\n    return os.sep\n")
    (pkg / "sub" / "b.py").write_text("def late():\n    if True:\n        from ..a import helper\n    return helper()\n")
    assert circle_problems(tmp_path, "pkg") == []
    (pkg / "a.py").write_text("import os\n\n\ndef helper():\n    from pkg.sub import b  # the circle\n"
                              "    return os.sep, b\n")
    problems = circle_problems(tmp_path, "pkg")
    assert problems == ["import circle: pkg.a -> pkg.sub.b -> pkg.a (all of ['pkg.a', 'pkg.sub.b'])"], problems
