"""Phases after the last step and the end of a run, as the app and the CLI see them (issue 23.1, 23.4): the final
evaluation is named with its own ETA, elapsed time stops at the run's end, the memory note after a reused process."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from studio import runs
from studio.events import EventLog, Failed, Log, Note, Started
from studio.liveness import PROCESS, start_time

GB = 1024 ** 3


def _record(run_dir: Path, pid: int, began: float) -> None:
    import json

    (run_dir / PROCESS).write_text(json.dumps({"pid": pid, "start_time": began, "processes": 1}))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_failed_child_run_stops_counting_its_elapsed_time(tmp_path):
    """The app follows its runs through their folder: a run that failed 47 s in still reads 47 s minutes later."""
    from studio.training.follower import RunProcess

    began = time.time() - 300
    _record(tmp_path, _dead_pid(), began)
    log = EventLog(tmp_path / runs.EVENTS)
    log.append(Started(run_dir=str(tmp_path), model="m", total_steps=10, time=began + 5))
    log.append(Log(step=3, loss=2.0, total_steps=10, time=began + 40))
    log.append(Failed(message="the loss became NaN", time=began + 47))
    job = RunProcess(tmp_path)
    assert job.wait(10)
    st = job.status()
    assert st.state == "failed" and st.elapsed_s == 47.0


def test_the_final_evaluation_of_a_child_run_is_named_with_its_own_eta(tmp_path):
    """After the last step the status names the evaluation and counts its estimated time down (not ETA 00:00)."""
    from studio.training.follower import RunProcess
    from studio.ui.train_tab import TrainView, follow, status_line

    from conftest import tiny_config_dict

    from studio.config import RunConfig

    RunConfig.from_dict(tiny_config_dict(tmp_path / "runs")).save(tmp_path / runs.CONFIG)
    pid = os.getpid()
    _record(tmp_path, pid, start_time(pid))  # a live process: this one
    now = time.time()
    log = EventLog(tmp_path / runs.EVENTS)
    log.append(Started(run_dir=str(tmp_path), model="m", total_steps=4, time=now - 60))
    log.append(Log(step=4, loss=2.0, total_steps=4, eta_s=0.0, time=now - 11))
    log.append(Note(message="evaluating 8 held-out rows after the last step... (about 01:30)", time=now - 10,
                    data={"kind": "phase", "phase": "evaluating", "rows": 8, "eta_s": 90.0}))
    job = RunProcess(tmp_path)
    st = job.status()
    assert st.state == "running" and st.message == "evaluating 8 held-out rows after the last step"
    assert 0 < st.eta_s <= 80
    studio = SimpleNamespace(job=job)
    view, _ = follow(studio, TrainView())
    _, text, _ = status_line(studio, view)
    assert "evaluating 8 held-out rows" in text and "ETA 00:00" not in text and "ETA 01:" in text


def test_the_eta_at_the_last_step_counts_the_final_evaluation(tmp_path):
    """The callback adds the end-of-run evaluation: its cost in steps at the step rate, or the last measured one."""
    from studio.training.callbacks import callback_class
    from studio.training.state import RunState

    run = RunState(run_dir=tmp_path, model_name="m", main=False, final_eval_steps=lambda max_steps: 2.0)
    emitted: list = []
    cb = callback_class()(run, emitted.append)
    args = SimpleNamespace(world_size=1, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                           save_steps=0, save_strategy="no")
    state = SimpleNamespace(global_step=0, max_steps=2, epoch=0.0)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    cb.on_train_begin(args, state, control)
    state.global_step = 2
    cb.t_begin -= 10  # two steps took ten seconds: the final evaluation's two steps' worth, about ten more
    cb.on_log(args, state, control, logs={"loss": 2.5})
    last = emitted[-1]
    assert isinstance(last, Log) and last.step == 2 and 9 < last.eta_s <= 10.1
    assert run.final_eval_s == pytest.approx(last.eta_s, abs=0.01)
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 2.4, "eval_runtime": 12.5})
    cb.on_log(args, state, control, logs={"loss": 2.4})
    assert emitted[-1].eta_s == 12.5 and run.final_eval_s == 12.5
    # the phase's own countdown in the in-process status
    run.tell("evaluating 8 held-out rows after the last step", 12.5)
    assert run.status().message.startswith("evaluating") and 0 < run.status().eta_s <= 12.5


def test_the_final_evaluation_counts_the_task_accuracy_answers(tmp_path):
    """With ``eval_accuracy_rows``: the cost model adds the answers' decoding passes, and a measured evaluation adds
    the seconds spent answering (measured after ``eval_runtime``)."""
    from studio.training.callbacks import callback_class
    from studio.training.eval_during import EvalPlan, final_eval_steps
    from studio.training.state import RunState

    with_answers = EvalPlan(steps=3, reason="", accuracy_rows=4)
    loss_only = EvalPlan(steps=3, reason="")
    kw = dict(eval_rows=6, rows_per_step=2, max_steps=10, answer_passes=96)
    assert final_eval_steps(loss_only, **kw) == pytest.approx(6 / 6)
    assert final_eval_steps(with_answers, **kw) == pytest.approx((6 + 96) / 6)
    assert final_eval_steps(EvalPlan(None, "", accuracy_rows=4), **kw) == pytest.approx(1.0), \
        "an end-only evaluation answers nothing"

    run = RunState(run_dir=tmp_path, model_name="m", main=False, final_eval_steps=lambda max_steps: 2.0)
    emitted: list = []
    cb = callback_class()(run, emitted.append)
    args = SimpleNamespace(world_size=1, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                           save_steps=0, save_strategy="no")
    state = SimpleNamespace(global_step=0, max_steps=4, epoch=0.0)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    cb.on_train_begin(args, state, control)
    state.global_step = 4
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 2.4, "eval_runtime": 2.5,
                                                  "eval_accuracy": 0.5, "eval_accuracy_runtime": 30.0})
    cb.on_log(args, state, control, logs={"loss": 2.4})
    assert emitted[-1].eta_s == 32.5 and run.final_eval_s == 32.5


def test_the_task_metric_times_its_answers_and_counts_its_passes(monkeypatch):
    from studio.inference import batch
    from studio.training import task_metric

    class Rows(list):
        column_names = ["input_ids", "completion_mask"]

    class Tok:
        def decode(self, ids, skip_special_tokens=True):
            return f"#### {len(ids)}"

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [0] * 4}

    rows = Rows({"input_ids": [1, 2, 3, 4], "completion_mask": [0, 0, 1, 1]} for _ in range(10))
    clock = iter([100.0, 107.0])
    monkeypatch.setattr(task_metric, "time", SimpleNamespace(perf_counter=lambda: next(clock)))  # this module only
    monkeypatch.setattr(batch, "generate_texts", lambda model, tok, prompts, params, **kw: ["#### 2"] * len(prompts))
    cb = task_metric.task_metric_callback(rows, Tok(), rows=9)
    assert cb.answer_passes == 2 * 64, "9 rows in batches of 8: two batches of the 64-token floor budget"
    metrics: dict = {}
    model = SimpleNamespace(training=False, eval=lambda: None, train=lambda: None)
    cb.on_evaluate(None, None, None, model=model, metrics=metrics)
    assert metrics["eval_accuracy"] == 1.0 and metrics["eval_accuracy_runtime"] == 7.0


def test_the_memory_note_of_an_already_loaded_process_says_what_it_measured(tmp_path):
    """A process that already held memory grows little: its growth is not the run's memory (issue 23.4)."""
    from studio.training.state import RunState

    estimate = SimpleNamespace(total_gb=3.1, to_dict=dict)
    loaded = RunState(run_dir=tmp_path, model_name="m", device="cpu", estimate=estimate, rss_start=int(4.0 * GB),
                      peak_start=int(4.0 * GB), first_rss=int(0.5 * GB))
    note = loaded.estimate_note(int(4.21 * GB))
    assert "estimate error" not in note.message and note.data["error"] is None
    assert "4.21 GB" in note.message and "already held 4.00 GB" in note.message
    assert note.data["measured_bytes"] == int(4.21 * GB)
    fresh = RunState(run_dir=tmp_path, model_name="m", device="cpu", estimate=estimate, rss_start=int(0.5 * GB),
                     peak_start=int(0.5 * GB), first_rss=int(0.5 * GB))
    note = fresh.estimate_note(int(3.6 * GB))
    assert "measured 3.10 GB (process RSS growth: the RSS peak of 3.60 GB in the memory chart less the 0.50 GB held " \
           "before the run); estimate error +0%" in note.message


def test_studio_train_gives_the_final_evaluation_an_estimated_time(tmp_path, capsys):
    """On the demo model: the phase note carries its estimate, and the eval loss is printed after it."""
    from conftest import tiny_config_dict

    from studio.cli import main
    from studio.config import RunConfig

    path = tmp_path / "run.yaml"
    RunConfig.from_dict(tiny_config_dict(tmp_path / "runs", max_steps=2)).save(path)
    assert main(["train", "--config", str(path), "--set", "data.eval_fraction=0.2"]) == 0
    out, err = capsys.readouterr()
    run_dir = Path(out.strip().splitlines()[-1])
    phase = next(e for e in EventLog.read(run_dir / runs.EVENTS).all()
                 if isinstance(e, Note) and e.data.get("phase") == "evaluating")
    assert phase.data["eta_s"] > 0 and phase.data["rows"] == 8
    assert "evaluating 8 held-out rows after the last step..." in err and "eval loss" in err


def test_studio_train_names_the_phases_before_the_first_step_and_a_resume_prints_only_its_own(tmp_path, capsys):
    """Preparing the data and loading the model are said on stderr (and are notes the app shows for a run in its
    own process); a resume does not print the first run's lines again."""
    from conftest import tiny_config_dict

    from studio.cli import main
    from studio.config import RunConfig

    path = tmp_path / "run.yaml"
    RunConfig.from_dict(tiny_config_dict(tmp_path / "runs", max_steps=2)).save(path)
    assert main(["train", "--config", str(path), "--set", "train.save_steps=2"]) == 0
    out, err = capsys.readouterr()
    run_dir = Path(out.strip().splitlines()[-1])
    assert err.index("preparing the data...") < err.index("loading the model...") < err.index("training studio/")
    notes = [e.data.get("phase") for e in EventLog.read(run_dir / runs.EVENTS).all() if isinstance(e, Note)]
    assert notes[:2] == ["preparing", "loading"]
    assert main(["train", "--resume", str(run_dir), "--set", "train.max_steps=3"]) == 0
    err = capsys.readouterr().err
    assert "steps 2->3" in err and "steps 0->2" not in err and "1/2 |" not in err, err


def test_a_child_run_shows_its_phase_before_the_first_step(tmp_path):
    from conftest import tiny_config_dict

    from studio.config import RunConfig
    from studio.training.follower import RunProcess

    RunConfig.from_dict(tiny_config_dict(tmp_path / "runs")).save(tmp_path / runs.CONFIG)
    pid = os.getpid()
    _record(tmp_path, pid, start_time(pid))
    log = EventLog(tmp_path / runs.EVENTS)
    log.append(Note(message="preparing the data...", data={"kind": "phase", "phase": "preparing"}))
    log.append(Note(message="loading the model...", data={"kind": "phase", "phase": "loading"}))
    job = RunProcess(tmp_path)
    assert (job.status().state, job.status().message) == ("preparing", "loading the model...")
    log.append(Started(run_dir=str(tmp_path), model="m", total_steps=4))
    st = job.status()
    assert st.state == "running" and st.message == ""  # training: no phase left over from before the start
