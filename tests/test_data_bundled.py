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


def _preferences_script():
    spec = importlib.util.spec_from_file_location("make_preferences", ROOT / "scripts" / "make_preferences.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_preference_pairs_are_what_make_preferences_writes_byte_for_byte(tmp_path, capsys):
    import json
    import re

    script = _preferences_script()
    script.main(["--out", str(tmp_path)])
    made, bundled = (tmp_path / script.NAME).read_bytes(), (ASSETS / "datasets" / script.NAME).read_bytes()
    assert made == bundled, f"{script.NAME} differs from scripts/make_preferences.py's output: rerun the script"
    rows = [json.loads(line) for line in bundled.decode().splitlines()]
    assert len(rows) == script.ROWS and all(set(r) == {"prompt", "chosen", "rejected"} for r in rows)
    assert all(r["chosen"] != r["rejected"] and r["chosen"].splitlines()[-1].startswith("#### ") for r in rows)
    sft = {json.loads(line)["question"] for line in (ASSETS / "datasets" / "word_problems.jsonl").open()}
    assert not sft & {r["prompt"] for r in rows}  # no held-out pair was an SFT training question
    # a third each: a slip carried into "#### n", no "####" line, a bare number
    slips = [r for r in rows if "####" in r["rejected"]]
    assert slips and all(r["rejected"].splitlines()[-1] != r["chosen"].splitlines()[-1] for r in slips)
    bare = [r for r in rows if re.fullmatch(r"-?[0-9.]+", r["rejected"])]
    assert {len(slips), len(bare)} <= {script.ROWS // 3, script.ROWS // 3 + 1}
