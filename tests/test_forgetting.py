"""The forgetting check: items checked on exact strings, the bundled set rebuilt byte for byte, the checkpoint
choice under a drop limit, a demo run scored per checkpoint, the kept checkpoint becoming adapter/, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chat_helpers import chat_runs_dir, ckpt_run, one_thread, wp2_run, wp_run  # noqa: F401
from studio.errors import ConfigError, DataError
from studio.forgetting import (GENERAL_SET, ForgettingReport, Item, Point, check_run, keep_checkpoint, load_items,
                               parse_must_not_break)


def test_items_are_checked_by_number_text_or_pattern():
    assert Item("?", "42", match="number").correct("The answer is 42.")
    assert not Item("?", "42", match="number").correct("It is 24, not 4 2")
    assert Item("?", "0", match="number").correct("0 degrees") and not Item("?", "0", match="number").correct("zero")
    assert Item("?", "Paris", match="contains").correct("It is paris, of course")
    assert not Item("?", "Paris", match="contains").correct("Lyon")
    pattern = r"(?s)\s*YES[.!]?\s*"
    assert Item("?", pattern, match="regex").correct(" YES.\n") and not Item("?", pattern, match="regex").correct("YES sir")


def test_the_bundled_set_is_what_its_script_writes(tmp_path):
    out = tmp_path / "general.jsonl"
    subprocess.run([sys.executable, "scripts/make_general_skills.py", "--out", str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == GENERAL_SET.read_bytes()
    items = load_items()
    assert {i.kind for i in items} == {"arithmetic", "fact", "format"} and len(items) >= 30
    arithmetic = [i for i in items if i.kind == "arithmetic"]
    for item in arithmetic:  # every reference answer is right
        a, word, b = item.prompt.split("What is ")[1].split("?")[0].split()
        assert int(item.answer) == {"plus": int(a) + int(b), "minus": int(a) - int(b), "times": int(a) * int(b)}[word]


def test_must_not_break_lines_and_their_errors(tmp_path):
    items = parse_must_not_break("Who wrote Hamlet? => Shakespeare\n\n2+2 => 4\n")
    assert [(i.prompt, i.answer, i.match) for i in items] == [("Who wrote Hamlet?", "Shakespeare", "contains"),
                                                               ("2+2", "4", "contains")]
    with pytest.raises(ConfigError, match="line 2"):
        parse_must_not_break("a => b\nno arrow here")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "answer": "y", "match": "fuzzy"}\n')
    with pytest.raises(DataError, match="match must be one of"):
        load_items(bad)


def _report(metric="accuracy"):
    base = Point("base", None, 0.8, 8, 10, 0.1)
    pts = [Point("checkpoint-10", 10, 0.8, 8, 10, 0.5), Point("checkpoint-20", 20, 0.6, 6, 10, 0.7),
           Point("checkpoint-30", 30, 0.78, 8, 10, 0.6)]
    return ForgettingReport("r", metric, base, pts)


def test_choose_the_best_task_score_within_the_general_drop():
    report = _report()
    assert [report.drop(p) for p in report.points] == [0.0, 20.0, 2.0]
    assert report.choose(5).name == "checkpoint-30"
    assert report.choose(25).name == "checkpoint-20"
    losses = _report("loss")
    assert losses.choose(5).name == "checkpoint-10"  # lower loss is better
    assert ForgettingReport("r", "accuracy", report.base, [Point("c", 1, 0.1, 1, 10, 0.9)]).choose(5) is None
    assert report.rows()[2][3] == "+20.0"


def test_a_run_is_scored_per_checkpoint_and_the_chosen_one_becomes_adapter(ckpt_run):
    extra = parse_must_not_break("Say hi => hi")
    report = check_run(ckpt_run, extra=extra, task_rows=2, max_new_tokens=4, device="cpu")
    assert [p.name for p in report.points] == ["checkpoint-4", "checkpoint-8", "final adapter"]
    assert [p.step for p in report.points] == [4, 8, None]
    n = len(load_items()) + 1
    assert all(p.general_n == n and len(p.replies) == n for p in [report.base, *report.points])
    assert report.task_metric == "accuracy" and all(p.task is not None for p in report.points)
    assert json.loads(report.save(ckpt_run).read_text())["points"][0]["general_drop_points"] == report.drop(
        report.points[0])
    before = (ckpt_run / "adapter" / "adapter_model.safetensors").read_bytes()
    kept = keep_checkpoint(ckpt_run, report.points[0], "test")
    assert (kept / "adapter_model.safetensors").read_bytes() == (
        ckpt_run / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors").read_bytes() != before
    assert (ckpt_run / "adapter.previous" / "adapter_model.safetensors").read_bytes() == before
    assert "checkpoint-4" in (ckpt_run / "events.jsonl").read_text()
    with pytest.raises(ConfigError, match="not a checkpoint"):
        keep_checkpoint(ckpt_run, report.points[-1], "final")


def test_cli_reports_json_and_refuses_a_bad_prompts_file(ckpt_run, capsys):
    from studio.cli import main

    assert main(["forgetting", "--run", str(ckpt_run), "--task-rows", "1", "--max-new-tokens", "2", "--json",
                 "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["base"]["name"] == "base" and len(out["points"]) == 3 and out["kept"] is None
    assert (ckpt_run / "forgetting.json").exists()
    assert main(["forgetting", "--run", str(ckpt_run), "--must-not-break", str(ckpt_run / "nope.txt")]) == 2
    assert "not found" in capsys.readouterr().err
