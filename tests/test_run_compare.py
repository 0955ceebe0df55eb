"""Runs side by side (`studio runs compare --json`, the Runs tab): the settings that differ, losses, scores and time;
rename and delete, never a live run; a missing run named."""
from __future__ import annotations

import json
import os

import pytest

from studio.cli import main
from studio.config import RunConfig
from studio.errors import ConfigError, TrainingError
from studio.run_compare import compare_runs, delete_run, flatten, rename_run


def _run(root, name, *, lr=2e-4, r=16, losses=(2.0, 1.5), eval_loss=1.7, live=False, accuracy=None):
    path = root / name
    path.mkdir(parents=True)
    cfg = RunConfig.from_dict({"train": {"learning_rate": lr, "run_name": name, "output_dir": str(root)},
                               "lora": {"r": r}, "data": {"sources": [{"path": "data/wp.jsonl"}]}})
    cfg.save(path / "config.yaml")
    events = [{"type": "started", "time": 1.0, "model": "studio/demo-tiny", "total_steps": len(losses)}]
    events += [{"type": "log", "time": 2.0 + i, "step": i + 1, "loss": v} for i, v in enumerate(losses)]
    events.append({"type": "eval", "time": 9.0, "step": len(losses), "eval_loss": eval_loss})
    if not live:
        events.append({"type": "finished", "time": 10.0, "step": len(losses), "adapter_path": "x",
                       "train_loss": sum(losses) / len(losses), "runtime_s": 61.0})
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (path / "environment.json").write_text(json.dumps({"pid": os.getpid()}))
    if accuracy is not None:
        (path / "eval_results.json").write_text(json.dumps({"base": {"accuracy": 0.1}, "tuned": {"accuracy": accuracy},
                                                            "rows": 10}))
    return path


def test_flatten_keys_nested_sections_and_source_lists():
    flat = flatten({"data": {"sources": [{"path": "a"}, {"path": "b"}], "seed": 1}, "train": {"lr": 2}})
    assert flat == {"data.sources[0].path": "a", "data.sources[1].path": "b", "data.seed": 1, "train.lr": 2}


def test_compare_shows_what_differs_and_how_each_run_did(tmp_path):
    _run(tmp_path, "a", lr=1e-4, losses=(2.0, 1.0), accuracy=0.5)
    _run(tmp_path, "b", lr=3e-4, r=8, losses=(2.0, 1.4), eval_loss=1.2)
    table = compare_runs(["a", "b"], tmp_path)
    assert table.differing == ["lora.r", "train.learning_rate"]  # run_name and output_dir are not news
    a, b = table.runs
    assert (a.method, a.model, a.data, a.steps, a.train_loss, a.eval_loss) == ("sft", "studio/demo-tiny",
                                                                               "wp.jsonl", 2, 1.5, 1.7)
    assert a.metrics == {"base.accuracy": 0.1, "tuned.accuracy": 0.5} and b.metrics == {}
    assert b.settings == {"lora.r": 8, "train.learning_rate": 3e-4} and a.runtime_s == 61.0
    rows = table.rows()
    assert rows[0][8] == "50.0%" and rows[1][8] == "n/a" and table.headers()[-2:] == table.differing


def test_cli_compare_json_and_a_missing_run(tmp_path, capsys):
    _run(tmp_path, "a")
    _run(tmp_path, "b", lr=1e-3)
    assert main(["runs", "compare", str(tmp_path / "a"), "b", "--runs-dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in out["runs"]] == ["a", "b"] and out["differing"] == ["train.learning_rate"]
    assert main(["runs", "compare", "a", "nope", "--runs-dir", str(tmp_path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        compare_runs([], tmp_path)


def test_rename_and_delete_refuse_a_live_run_and_keep_it(tmp_path):
    live = _run(tmp_path, "live", live=True)
    with pytest.raises(TrainingError, match="training right now"):
        delete_run("live", tmp_path)
    with pytest.raises(TrainingError, match="training right now"):
        rename_run("live", "other", tmp_path)
    assert live.exists()
    done = _run(tmp_path, "done")
    with pytest.raises(ConfigError, match="letters, digits"):
        rename_run(done, "../escape", tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        rename_run(done, "live", tmp_path)
    new = rename_run(done, "better", tmp_path)
    assert new == tmp_path / "better" and not done.exists()
    assert "run_name: better" in (new / "config.yaml").read_text()
    delete_run("better", tmp_path)
    assert not new.exists()


def test_runs_tab_compares_overlays_and_refuses_deleting_unconfirmed(tmp_path):
    from studio.session import Studio
    from studio.ui.app import compose, initial_config

    a, b = _run(tmp_path, "a"), _run(tmp_path, "b", lr=1e-3, losses=(3.0, 2.0, 1.0))
    tab = compose(Studio(runs_dir=tmp_path), initial=initial_config(demo=True)).handles["runs"]
    table, fig, error = tab.on_compare([str(a), str(b)])
    assert error["visible"] is False
    assert table["value"]["headers"][-1] == "train.learning_rate" and len(table["value"]["data"]) == 2
    names = sorted(t.name for t in fig.data)
    assert names == ["a · eval", "a · train", "b · eval", "b · train"]
    assert list(next(t for t in fig.data if t.name == "b · train").y) == [3.0, 2.0, 1.0]
    out = tab.on_delete(str(a), False, [str(a)])
    assert "tick the box" in out[-1]["value"] and a.exists()
    tab.on_delete(str(a), True, [str(a)])
    assert not a.exists()
