"""The bundled datasets are what ``scripts/make_datasets.py`` writes: regenerated into a temp folder, byte for byte."""
from __future__ import annotations

import importlib.util

from studio.paths import ASSETS

ROOT = ASSETS.parent

BUNDLED = ("linear_equations.csv", "word_problems.jsonl", "python_assistant.jsonl", "chat.jsonl")


def _script():
    spec = importlib.util.spec_from_file_location("make_datasets", ROOT / "scripts" / "make_datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_gives_the_bundled_files_byte_for_byte(tmp_path, capsys):
    _script().main(["--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(BUNDLED)
    for name in BUNDLED:
        made, bundled = (tmp_path / name).read_bytes(), (ASSETS / "datasets" / name).read_bytes()
        assert made == bundled, f"{name} differs from scripts/make_datasets.py's output: rerun the script"
    assert "chat.jsonl:" in capsys.readouterr().out
