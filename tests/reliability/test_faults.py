"""Injected faults while training: signals and kill -9 of the CLI and of the app, full disks, read-only folders,
damaged events and checkpoints, two starts at once, a reloaded page, chat during training, Stop during a load.

After each: the run folder, config.yaml, events.jsonl and the last complete checkpoint are intact and
``studio train --resume`` continues the step count.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from checks import log_steps, one_clear_line, resume_continues, run_intact
from conftest import tiny_config_dict

from studio import runs
from studio.cli import main
from studio.config import RunConfig
from studio.events import EventLog, Failed, Note, Stopped

ROOT = Path(__file__).resolve().parents[2]
LONG = 5000
"""max_steps of a run that a fault ends (it never gets there)."""


def _config(tmp: Path, **train) -> Path:
    path = tmp / "run.yaml"
    RunConfig.from_dict(tiny_config_dict(tmp / "runs", **train)).save(path)
    return path


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _wait_for(predicate, timeout: float = 180, proc: subprocess.Popen | None = None, what: str = ""):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended early ({proc.returncode}) waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _line(path: Path, prefix: str):
    def find():
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return next((ln[len(prefix):].strip() for ln in text.splitlines() if ln.startswith(prefix)), None)
    return find


def _checkpoint_at_least(run_dir: Path, step: int):
    def ok():
        last = runs.last_checkpoint(run_dir) if run_dir.is_dir() else None
        return last is not None and int(last.name.split("-")[-1]) >= step
    return ok


def _assert_stopped_and_saved(run_dir: Path) -> int:
    events = EventLog.read(run_dir / runs.EVENTS).all()
    stopped = events[-1]
    assert isinstance(stopped, Stopped), events[-3:]
    assert (run_dir / runs.ADAPTER / "adapter_model.safetensors").is_file()
    assert run_intact(run_dir) == stopped.step  # the checkpoint of the step it stopped at
    return stopped.step


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_cli_stops_gracefully_on_a_signal(sig, tmp_path, capsys):
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "train", "--config", str(_config(tmp_path)),
                                 "--set", f"train.max_steps={LONG}", "--set", "train.save_steps=2"],
                                cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=err, text=True)
        run_dir = Path(_wait_for(_line(err_path, "run directory:"), proc=proc, what="the run directory"))
        _wait_for(_checkpoint_at_least(run_dir, 2), proc=proc, what="a checkpoint")
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    text = err_path.read_text()
    assert proc.returncode == 128 + sig, text[-2000:]
    assert "Traceback" not in text
    assert f"{sig.name}: stopping after the current step" in text and "resume with: studio train --resume" in text
    step = _assert_stopped_and_saved(run_dir)
    resume_continues(run_dir, capsys, step + 2)


@pytest.mark.slow
def test_cli_killed_with_sigkill_keeps_the_last_complete_checkpoint(tmp_path, capsys):
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "train", "--config", str(_config(tmp_path)),
                             "--set", f"train.max_steps={LONG}", "--set", "train.save_steps=2", "--quiet"],
                            cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs_dir = tmp_path / "runs"
    run_dir = Path(_wait_for(lambda: next(iter(runs_dir.glob("*/config.yaml")), None), proc=proc,
                             what="the run")).parent
    _wait_for(_checkpoint_at_least(run_dir, 4), proc=proc, what="two checkpoints")
    proc.kill()
    proc.wait(30)
    assert runs.load_run(run_dir).status == "interrupted"
    resume_continues(run_dir, capsys, run_intact(run_dir) + 2)


# ------------------------------------------------------------------------------------------------ the app
def _app(tmp_path: Path, max_steps: int = LONG) -> tuple[subprocess.Popen, Path, Path]:
    out_path = tmp_path / "app.txt"
    fh = out_path.open("w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "reliability" / "app_run.py"),
                             str(_config(tmp_path, max_steps=max_steps, save_steps=2)), str(tmp_path / "runs")],
                            cwd=ROOT, env=_env(), stdout=fh, stderr=subprocess.STDOUT, text=True)
    run_dir = Path(_wait_for(_line(out_path, "RUN "), proc=proc, what="the app's run"))
    _wait_for(_checkpoint_at_least(run_dir, 2), proc=proc, what="a checkpoint")
    return proc, run_dir, out_path


@pytest.mark.slow
def test_app_exits_on_sigterm_the_run_goes_on_and_a_new_app_stops_it_gracefully(tmp_path, capsys):
    from studio.session import Studio
    from studio.training.follower import RunProcess

    proc, run_dir, out_path = _app(tmp_path)
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    text = out_path.read_text()
    assert proc.returncode == 128 + signal.SIGTERM, text[-2000:]
    assert f"the run {run_dir} goes on in its own process" in text and "Traceback" not in text
    assert runs.load_run(run_dir).status == "running"  # its own process: the app's exit did not end it
    studio = Studio(runs_dir=tmp_path / "runs")  # the app started again finds the live run
    assert isinstance(studio.job, RunProcess) and studio.job.run_dir == run_dir and studio.job.alive
    assert studio.stop_training()  # Stop: SIGTERM to the child, which saves and marks itself stopped
    assert studio.job.wait(120)
    step = _assert_stopped_and_saved(run_dir)
    resume_continues(run_dir, capsys, step + 2)


@pytest.mark.slow
def test_app_killed_with_sigkill_mid_run_then_restarted_follows_the_same_run_to_its_end(tmp_path):
    from studio.events import Finished, Log, Started
    from studio.session import Studio

    steps = 30
    proc, run_dir, _ = _app(tmp_path, max_steps=steps)
    proc.kill()
    proc.wait(30)
    studio = Studio(runs_dir=tmp_path / "runs")
    assert studio.job is not None and studio.job.run_dir == run_dir, "the restarted app found the live run"
    assert studio.job.alive and studio.job.status().state in ("running", "preparing")
    assert studio.job.wait(300), "the run did not finish"
    events = EventLog.read(run_dir / runs.EVENTS).all()
    assert isinstance(next(e for e in events if not isinstance(e, Note)), Started), events[:3]
    assert isinstance(events[-1], Finished), events[-3:]
    assert [e.step for e in events if isinstance(e, Log)] == list(range(1, steps + 1))
    assert (run_dir / runs.ADAPTER / "adapter_model.safetensors").is_file()
    assert runs.load_run(run_dir).status == "finished" and studio.current_job is None


# ------------------------------------------------------------------------------------------------ disks
def _train(config: Path, capsys, *sets: str) -> tuple[int, str, Path]:
    argv = ["train", "--config", str(config), "--quiet"]
    for item in sets:
        argv += ["--set", item]
    rc = main(argv)
    out, err = capsys.readouterr()
    run_dir = next(p.parent for p in sorted((config.parent / "runs").glob("*/config.yaml")))
    return rc, err, run_dir


@pytest.mark.slow
def test_disk_full_during_a_checkpoint_is_named_and_the_previous_one_kept(tmp_path, capsys, monkeypatch):
    import torch

    real_save = torch.save
    calls = {"n": 0}

    def save(obj, f, *a, **k):  # the optimizer state of the second checkpoint hits a full disk
        calls["n"] += 1
        if "checkpoint-4" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    rc, err, run_dir = _train(_config(tmp_path), capsys, "train.max_steps=6", "train.save_steps=2")
    assert rc == 2
    one_clear_line(err, rf"error: the disk is full: no space left writing the checkpoint in {run_dir} \(.* free; "
                        r"the next checkpoint needs about .*B\).*Run kept")
    assert isinstance(EventLog.read(run_dir / runs.EVENTS).all()[-1], Failed)
    assert run_intact(run_dir) == 2
    monkeypatch.setattr(torch, "save", real_save)
    resume_continues(run_dir, capsys, 4)


@pytest.mark.slow
def test_no_room_for_the_next_checkpoint_warns_then_stops_before_writing(tmp_path, capsys, monkeypatch):
    from studio import diskspace
    from studio.training import room

    state = {"free": 10 ** 12}
    monkeypatch.setattr(room, "free_bytes", lambda p: state["free"])
    monkeypatch.setattr(diskspace, "free_bytes", lambda p: state["free"])
    real_check = room.RoomWatch.check

    def check(self, step, next_save):
        if step >= 3:
            state["free"] = 1000  # something else filled the disk
        return real_check(self, step, next_save)

    monkeypatch.setattr(room.RoomWatch, "check", check)
    rc, err, run_dir = _train(_config(tmp_path), capsys, "train.max_steps=6", "train.save_steps=2")
    assert rc == 2
    one_clear_line(err, r"error: the disk is full: 1000 B free in .* and the next checkpoint needs about")
    notes = [e for e in EventLog.read(run_dir / runs.EVENTS).all() if isinstance(e, Note) and e.level == "warning"]
    assert len(notes) == 1 and "the next checkpoint at step 4 needs about" in notes[0].message
    assert not (run_dir / runs.CHECKPOINTS / "checkpoint-4").exists(), "nothing half-written"
    monkeypatch.setattr(room.RoomWatch, "check", real_check)
    state["free"] = 10 ** 12
    resume_continues(run_dir, capsys, 4)


@pytest.mark.slow
def test_disk_full_on_the_events_log_is_one_line(tmp_path, capsys, monkeypatch):
    import pathlib

    real_open = pathlib.Path.open
    written = {"n": 0}

    def open_(self, mode="r", *a, **k):
        if self.name == "events.jsonl" and "a" in mode:
            written["n"] += 1
            if written["n"] > 6:
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_open(self, mode, *a, **k)

    monkeypatch.setattr(pathlib.Path, "open", open_)
    rc, err, run_dir = _train(_config(tmp_path), capsys, "train.max_steps=8", "train.save_steps=2")
    assert rc == 2
    one_clear_line(err, r"error: the disk is full: no space left writing events log in .*Run kept")
    monkeypatch.setattr(pathlib.Path, "open", real_open)
    resume_continues(run_dir, capsys, run_intact(run_dir) + 2)


@pytest.mark.slow
def test_read_only_run_folder_on_resume_is_exit_2(tmp_path, capsys, monkeypatch):
    rc, err, run_dir = _train(_config(tmp_path), capsys, "train.max_steps=2", "train.save_steps=2")
    assert rc == 0, err
    real_save = RunConfig.save

    def read_only(self, path):
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(RunConfig, "save", read_only)  # root ignores chmod: inject what a read-only mount says
    assert main(["train", "--resume", str(run_dir), "--set", "train.max_steps=4"]) == 2
    one_clear_line(capsys.readouterr().err, r"error: can't write the file .*config\.yaml: the folder is read-only")
    monkeypatch.setattr(RunConfig, "save", real_save)
    resume_continues(run_dir, capsys, 4)


# ------------------------------------------------------------------------------------------------ damage
@pytest.mark.slow
def test_damaged_events_and_checkpoint_still_resume(tmp_path, capsys):
    rc, err, run_dir = _train(_config(tmp_path), capsys, "train.max_steps=4", "train.save_steps=2")
    assert rc == 0, err
    events = run_dir / runs.EVENTS
    events.write_bytes(events.read_bytes() + b'{"type": "log", "step": 9, "lo')  # a crash mid-line
    ckpt4 = run_dir / runs.CHECKPOINTS / "checkpoint-4" / "trainer_state.json"
    ckpt4.write_text(ckpt4.read_text()[:40])  # a checkpoint cut while saving
    assert runs.last_checkpoint(run_dir).name == "checkpoint-2"
    resume_continues(run_dir, capsys, 5)
    assert all(json.loads(ln) for ln in events.read_text().splitlines())


# ------------------------------------------------------------------------------------------------ the app, in process
@pytest.fixture
def studio(tmp_path):
    from studio.session import Studio

    s = Studio(runs_dir=tmp_path / "runs")
    yield s
    if s.job is not None:
        s.job.stop()
        s.job.wait(60)


@pytest.mark.slow
def test_two_browsers_start_at_once_one_run_and_one_busy_answer(studio, tiny_cfg, capsys):
    from studio.errors import BusyError
    from studio.ui.train_tab import start

    barrier, answers = threading.Barrier(2), []

    def press():
        barrier.wait()
        try:
            answers.append(start(studio, tiny_cfg(max_steps=LONG, save_steps=2))[1])
        except BusyError as err:
            answers.append(err)

    threads = [threading.Thread(target=press) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    busy = [a for a in answers if isinstance(a, BusyError)]
    assert len(busy) == 1 and len(answers) == 2
    one_clear_line(str(busy[0]), r"a run is in progress: .*runs")
    assert len(list(studio.runs_dir.iterdir())) == 1
    run_dir = Path(next(a for a in answers if isinstance(a, str)))
    _wait_for(_checkpoint_at_least(run_dir, 2), what="a checkpoint")
    studio.stop_training()
    studio.job.wait(60)
    resume_continues(run_dir, capsys, _assert_stopped_and_saved(run_dir) + 2)


@pytest.mark.slow
def test_reload_mid_run_replays_and_chat_during_training_answers(studio, tiny_cfg, capsys):
    from studio.ui.train_tab import TrainView, follow

    first = studio.start_training(tiny_cfg(max_steps=2, save_steps=2))
    first.wait(120)
    job = studio.start_training(tiny_cfg(max_steps=LONG, save_steps=2))
    view, _ = follow(studio, TrainView())
    _wait_for(lambda: log_steps(job.run_dir) and len(log_steps(job.run_dir)) >= 3, what="steps")
    reloaded, _ = follow(studio, TrainView())  # a reloaded page: a fresh view replays from the start
    assert reloaded.series.steps[:len(view.series.steps)] == view.series.steps and reloaded.series.steps
    engine = studio.chat_engine(first.run_dir, device="cpu")  # the playground while the run trains
    from studio.inference.params import GenerationParams

    reply = engine.generate("What is 2 + 2?", params=GenerationParams(max_new_tokens=4))
    assert reply.n_tokens > 0 and reply.finish_reason in ("eos", "length", "stop_string")
    assert job.alive, "chatting must not end the run"
    studio.stop_training()
    job.wait(60)
    resume_continues(job.run_dir, capsys, _assert_stopped_and_saved(job.run_dir) + 2)


@pytest.mark.slow
def test_stop_during_a_slow_chat_load_stops_the_run_within_a_step(studio, tiny_cfg, monkeypatch, capsys):
    from studio.inference import ChatEngine

    loading, release = threading.Event(), threading.Event()

    def slow(run_dir, **kw):
        loading.set()
        release.wait(60)
        raise RuntimeError("never mind")

    monkeypatch.setattr(ChatEngine, "from_run", staticmethod(slow))
    job = studio.start_training(tiny_cfg(max_steps=LONG, save_steps=2))
    _wait_for(_checkpoint_at_least(job.run_dir, 2), what="a checkpoint")
    t = threading.Thread(target=lambda: pytest.raises(Exception, studio.chat_engine, job.run_dir, device="cpu"))
    t.start()
    assert loading.wait(30)
    at_stop = max(log_steps(job.run_dir))
    assert studio.stop_training()
    assert job.wait(60), "the run did not stop while a chat model was loading"
    release.set()
    t.join()
    step = _assert_stopped_and_saved(job.run_dir)
    assert step <= at_stop + 2, (step, at_stop)
    resume_continues(job.run_dir, capsys, step + 2)
