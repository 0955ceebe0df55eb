"""One test per fix class of issue 12, in process and fast (the process-level faults are in test_faults.py)."""
from __future__ import annotations

import errno
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from checks import one_clear_line

from studio.errors import DiskFullError, StorageError


# ------------------------------------------------------------------------------------------------ signals
def test_sigterm_and_sighup_stop_once_then_abort():
    from studio.signals import GracefulStop

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        seen = []
        with GracefulStop(seen.append) as stop:
            os.kill(os.getpid(), sig)
            time.sleep(0.05)
            assert seen == [sig] and stop.exit_code == 128 + sig
            with pytest.raises(KeyboardInterrupt):  # a second signal aborts
                os.kill(os.getpid(), sig)
                time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


# ------------------------------------------------------------------------------------------------ events
def test_a_cut_events_line_is_repaired_before_appending(tmp_path):
    from studio.events import EventLog, Log, Note, repair_tail

    path = tmp_path / "events.jsonl"
    good = json.dumps(Log(step=1, loss=1.0).to_dict())
    path.write_text(good + "\n" + good[:25], encoding="utf-8")  # a crash mid-write
    assert len(EventLog.read(path).all()) == 1  # readers skip the cut line
    log = EventLog.open(path)
    log.append(Note(message="resumed"))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(ln)["type"] for ln in lines] == ["log", "note"]
    assert (tmp_path / "events.jsonl.cut").read_text().strip() == good[:25]
    path.write_text(good, encoding="utf-8")  # complete JSON without its newline: only the newline is added
    assert repair_tail(path) == "newline" and path.read_text() == good + "\n"
    assert repair_tail(path) == ""


def test_a_full_disk_while_writing_an_event_is_named(tmp_path, monkeypatch):
    import pathlib

    from studio.events import EventLog, Note

    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.append(Note(message="one"))
    real_open = pathlib.Path.open

    def full(self, mode="r", *a, **k):
        if self.name == "events.jsonl" and "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_open(self, mode, *a, **k)

    monkeypatch.setattr(pathlib.Path, "open", full)
    with pytest.raises(DiskFullError) as err:
        log.append(Note(message="two"))
    one_clear_line(str(err.value), rf"the disk is full: no space left writing events log in {tmp_path}.*free")
    assert len(log) == 2  # still shown in the app


# ------------------------------------------------------------------------------------------------ disk full
def test_full_disk_detection_and_the_failure_message(tmp_path, tiny_cfg):
    from studio.diskspace import is_disk_full
    from studio.training.failures import explain_failure

    torch_says = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 314624 vs 314516")
    wrapped = RuntimeError("save failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_disk_full(torch_says) and is_disk_full(wrapped) and not is_disk_full(ValueError("x"))
    message, suggestion = explain_failure(torch_says, tiny_cfg(), run_dir=tmp_path, trainable_params=1000)
    one_clear_line(message, rf"the disk is full: no space left writing the checkpoint in {tmp_path} \(.* free; "
                            r"the next checkpoint needs about 1\.0 MB\)")
    assert "resume" in suggestion


def test_room_watch_warns_once_and_refuses_a_save_that_cannot_fit(tmp_path, monkeypatch):
    from studio import diskspace
    from studio.training import room

    events = []
    watch = room.RoomWatch(tmp_path, lambda: 10_000_000, events.append)
    monkeypatch.setattr(room, "free_bytes", lambda p: 50_000)
    assert watch.check(3, 5) and watch.check(4, 5)
    assert len(events) == 1 and events[0].level == "warning"
    one_clear_line(events[0].message, r"disk: 48\.8 KB free .* the next checkpoint at step 5 needs about 115\.4 MB")
    monkeypatch.setattr(diskspace, "free_bytes", lambda p: 50_000)
    with pytest.raises(DiskFullError, match=r"the disk is full: 48\.8 KB free .* needs about 115\.4 MB"):
        watch.before_save()


def test_a_full_disk_under_train_log_is_one_line(tmp_path, capsys):
    import logging

    from studio.diskspace import log_handler

    handler = log_handler(tmp_path / "train.log")

    class Full:
        def write(self, s):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    handler.stream = Full()
    logger = logging.getLogger("studio.test.full")
    logger.addHandler(handler)
    try:
        logger.error("one")
        logger.error("two")
    finally:
        logger.removeHandler(handler)
    one_clear_line(capsys.readouterr().err, r"warning: the disk is full: no space left writing train\.log")


# ------------------------------------------------------------------------------------------------ storage
def test_unwritable_runs_folders_are_typed(tmp_path, tiny_cfg, monkeypatch):
    from studio import runs

    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match=r"file is a file, not a folder"):
        runs.create_run_dir(tiny_cfg(), tmp_path / "file" / "runs")
    monkeypatch.setattr(runs.os, "access", lambda p, mode: False)  # root ignores chmod: inject read-only
    with pytest.raises(StorageError, match=r"read-only or not yours; choose a writable folder"):
        runs.create_run_dir(tiny_cfg(), tmp_path / "ro")


# ------------------------------------------------------------------------------------------------ data
@pytest.mark.parametrize("text, sep", [("a;b\n1;2\n3;4\n", ";"), ("a\tb\n1\t2\n", "\t"), ("a|b\n1|2\n", "|"),
                                       ('a,b\n"x; y",2\n"p; q",3\n', ",")])
def test_csv_delimiter_is_sniffed(tmp_path, text, sep):
    from studio.data.checks import csv_delimiter

    path = tmp_path / "d.csv"
    path.write_text(text, encoding="utf-8")
    assert csv_delimiter(path) == sep


def test_semicolon_csv_trains_two_columns_and_empty_answers_warn(tmp_path, tiny_cfg):
    import dataclasses

    from studio.data import preview
    from studio.modeling.tokenizer import load_tokenizer

    path = tmp_path / "europe.csv"
    rows = [f"{i}x = {2 * i};x = 2" for i in range(1, 9)] + ["5x = 10;", "7x = 14; "]
    path.write_text("Problem;Solution\n" + "\n".join(rows) + "\n", encoding="utf-8")
    cfg = tiny_cfg()
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sources=[
        dataclasses.replace(cfg.data.sources[0], path=str(path))]))
    tok, _ = load_tokenizer(cfg.model)
    pv = preview(cfg, tok, n_rows=1)
    assert pv.columns == ["Problem", "Solution"] and pv.mapping["completion"] == "Solution"
    warning = next(w for w in pv.warnings if "empty answer" in w)
    assert warning.startswith("2 of 10 rows have an empty answer (column 'Solution')")


def test_hub_datasets_are_cached_by_revision(monkeypatch):
    from huggingface_hub import HfApi, constants

    from studio.config import SourceConfig
    from studio.data import cache

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    sha = {"value": "a" * 40}
    monkeypatch.setattr(HfApi, "dataset_info", lambda self, repo, revision=None, timeout=None:
                        type("Info", (), {"sha": sha["value"]})())
    src = SourceConfig(path="owner/set")
    first = cache.source_fingerprint(src)
    sha["value"] = "b" * 40  # the dataset changed on the Hub
    assert cache.source_fingerprint(src)["revision"] == "b" * 40 != first["revision"]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert cache.source_fingerprint(SourceConfig(path="owner/set", revision="v2"))["revision"] == "v2"
    assert cache.source_fingerprint(src)["revision"] == "main"


# ------------------------------------------------------------------------------------------------ Stop
def test_stop_does_not_wait_for_a_chat_model_load(tmp_path, monkeypatch):
    from studio.inference import ChatEngine
    from studio.session import Studio

    class Job:
        alive, stopped, run_dir, device = True, False, tmp_path, "cpu"

        def stop(self):
            self.stopped = True

    loading = threading.Event()

    def slow_load(run_dir, **kw):
        loading.set()
        time.sleep(2.0)
        return type("Engine", (), {"device": "cpu", "close": lambda self: None})()

    monkeypatch.setattr(ChatEngine, "from_run", staticmethod(slow_load))
    studio = Studio(runs_dir=tmp_path)
    studio.job = Job()
    t = threading.Thread(target=studio.chat_engine, args=(tmp_path,), kwargs={"device": "cpu"})
    t.start()
    assert loading.wait(5)
    t0 = time.perf_counter()
    assert studio.stop_training() is True and studio.job.stopped
    assert studio.current_job is studio.job  # the lock is free too
    assert time.perf_counter() - t0 < 1.0, "Stop waited for the load"
    t.join()


def test_the_train_tab_shows_a_disk_warning_while_the_run_is_live(tmp_path):
    from studio.events import EventLog, Note, Started
    from studio.ui.train_tab import TrainView, follow, status_line

    class Job:
        run_dir, alive = tmp_path, True
        events = EventLog()

        def status(self):
            from studio.training.job import JobStatus

            return JobStatus(state="running", run_dir=str(tmp_path), step=3, total_steps=10)

    studio = type("S", (), {"job": Job()})()
    Job.events.append(Started(run_dir=str(tmp_path), model="m", total_steps=10))
    Job.events.append(Note(level="warning", message="disk: 1.0 KB free in X, but the next checkpoint needs 2 MB"))
    view, _ = follow(studio, TrainView())
    _, text, _ = status_line(studio, view)
    assert "⚠️ disk: 1.0 KB free in X, but the next checkpoint needs 2 MB" in text


def test_browsers_following_one_run_share_its_charts():
    """The app's feed reads the run once per period for every browser: one build for many readers, a new build
    only when events arrived, and another app (or another job) gets its own."""
    from studio.events import EventLog, Log, Started
    from studio.ui.chart_feed import ChartFeed

    class Job:
        run_dir, alive, cfg = "r", True, None

        def __init__(self):
            self.events = EventLog(events=[Started(run_dir="r", model="m", total_steps=9), Log(step=1, loss=1.0)])

        def status(self):
            from studio.training.state import JobStatus

            return JobStatus(state="running", run_dir="r", step=1, total_steps=9)

    now = [0.0]
    studio = type("S", (), {"job": Job()})()
    feed = ChartFeed(period=1.0, clock=lambda: now[0])
    a, b = feed.current(studio), feed.current(studio)
    assert a is b and feed.builds == 1  # built once for both browsers
    studio.job.events.append(Log(step=2, loss=0.9))
    assert feed.current(studio) is a, "within the period the snapshot stands"
    now[0] = 1.0
    c = feed.current(studio)
    assert c.version == a.version + 1 and c.loss is not a.loss and c.series.steps == [1, 2] and feed.builds == 2
    assert a.series.steps == [1], "a published snapshot never changes"
    now[0] = 2.0
    assert feed.current(studio).loss is c.loss and feed.builds == 2, "no new events: the same charts"
    studio.job = Job()
    other = feed.current(studio)
    assert other.key != c.key and other.series.steps == [1] and feed.builds == 3  # another job: its own
    assert ChartFeed().current(studio) is not other  # another app: its own feed