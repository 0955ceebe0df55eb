"""Run directories: unique names, the run list (newest first, statuses), load_run, checkpoints."""
from __future__ import annotations

import json
import os
import time

import pytest

from studio import runs
from studio.config import RunConfig
from studio.errors import TrainingError
from studio.events import EventLog, Failed, Finished, Log, Started, Stopped


def _run(tmp_path, name, *events, pid=None):
    cfg = RunConfig.from_dict({"train": {"run_name": name}})
    d = runs.create_run_dir(cfg, tmp_path)
    log = EventLog(d / runs.EVENTS)
    for e in events:
        log.append(e)
    if pid is not None:
        runs.write_environment(d, {"pid": pid})
    return d


def test_create_run_dir_unique_and_rerunnable(tmp_path):
    cfg = RunConfig.from_dict({"train": {"run_name": "my run/1"}})
    a, b = runs.create_run_dir(cfg, tmp_path), runs.create_run_dir(cfg, tmp_path)
    assert a.name == "my-run-1" and b.name == "my-run-1-2"
    assert (a / runs.CHECKPOINTS).is_dir()
    from studio.config import load_config

    assert load_config(a / runs.CONFIG).to_dict() == cfg.to_dict()
    auto = runs.new_run_name(RunConfig())
    assert auto.endswith("-demo-tiny") and auto[:8].isdigit()


def test_list_runs_newest_first_with_status_and_loss(tmp_path):
    start = Started(run_dir="x", model="studio/demo-tiny", total_steps=4)
    done = _run(tmp_path, "done", start, Log(step=4, loss=1.5), Finished(step=4, adapter_path="a"))
    stopped = _run(tmp_path, "stopped", start, Log(step=2, loss=2.0), Stopped(step=2))
    failed = _run(tmp_path, "failed", start, Failed(message="out of memory while training"))
    running = _run(tmp_path, "running", start, Log(step=1, loss=3.0), pid=os.getpid())
    dead = _run(tmp_path, "dead", start, pid=2 ** 22 + 12345)
    for i, d in enumerate([done, stopped, failed, running, dead]):
        t = time.time() - 100 + i
        os.utime(d / runs.CONFIG, (t, t))
    (tmp_path / "not-a-run").mkdir()
    listed = runs.list_runs(tmp_path)
    assert [r.name for r in listed] == ["dead", "running", "failed", "stopped", "done"]
    by = {r.name: r for r in listed}
    assert by["done"].status == "finished" and by["done"].final_loss == 1.5 and by["done"].step == 4
    assert by["stopped"].status == "stopped" and by["stopped"].step == 2
    assert by["failed"].status == "failed" and "out of memory" in by["failed"].message
    assert by["running"].status == "running"
    assert by["dead"].status == "interrupted"
    assert by["done"].model == "studio/demo-tiny" and by["done"].losses() == [(4, 1.5)]
    assert by["done"].config.train.run_name == "done"
    assert runs.list_runs(tmp_path / "missing") == []


def test_load_run_and_checkpoints(tmp_path):
    d = _run(tmp_path, "r")
    assert runs.load_run(d).status == "new" and runs.load_run(d).adapter_path is None
    for step in (10, 2, 5):
        (d / runs.CHECKPOINTS / f"checkpoint-{step}").mkdir()
    (d / runs.CHECKPOINTS / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (d / runs.CHECKPOINTS / "checkpoint-5" / "trainer_state.json").write_text("{}")
    assert [p.name for p in runs.checkpoints(d)] == ["checkpoint-2", "checkpoint-5", "checkpoint-10"]
    assert runs.last_checkpoint(d).name == "checkpoint-5"  # 10 is incomplete
    (d / "adapter").mkdir()
    (d / "adapter" / "adapter_config.json").write_text("{}")
    assert runs.load_run(d).adapter_path == d / "adapter"
    with pytest.raises(TrainingError, match="not a run directory"):
        runs.load_run(tmp_path)


def test_environment_info_and_rank(monkeypatch, tmp_path):
    from studio.environment import environment_info

    info = environment_info("cpu")
    assert info["packages"]["transformers"] and info["device"] == "cpu" and "python" in info
    monkeypatch.setenv("RANK", "1")
    assert not runs.is_main_process()
    runs.write_environment(tmp_path, {"x": 1})
    assert not (tmp_path / runs.ENVIRONMENT).exists()  # only rank 0 writes
    monkeypatch.setenv("RANK", "0")
    runs.write_environment(tmp_path, {"x": 1})
    assert json.loads((tmp_path / runs.ENVIRONMENT).read_text()) == {"x": 1}


def test_run_view_is_typed_and_tolerates_a_torn_line(tmp_path):
    from studio.events import Eval, Probe

    d = _run(tmp_path, "v", Started(run_dir="x", model="m", total_steps=10), Log(step=2, loss=2.0),
             Eval(step=2, eval_loss=2.5), Probe(step=2, prompt="p", answer="a"), Log(step=4, loss=float("nan")),
             Log(step=5, loss=1.5))
    with (d / runs.EVENTS).open("a") as fh:
        fh.write('{"type": "log", "step": 6, "lo')  # a run still writing
    (d / runs.EVAL_RESULTS).write_text(json.dumps({"tuned": {"accuracy": 0.5}}))
    view = runs.load_run(d)
    assert [type(e).__name__ for e in view.events] == ["Started", "Log", "Eval", "Probe", "Log", "Log"]
    assert view.losses() == [(2, 2.0), (5, 1.5)] and view.eval_losses() == [(2, 2.5)]
    assert view.of(Probe)[0].answer == "a" and view.last(Log).step == 5
    assert (view.step, view.total_steps, view.progress, view.final_loss) == (5, 10, 0.5, 1.5)
    assert view.eval_results == {"tuned": {"accuracy": 0.5}} and view.adapter_config == {}
    assert view.status == "interrupted" and view.model == "m"
