"""The app serves below its runs: its threads at nice 19 in the idle class, the runs it starts at its starting
priority, in its session (one scheduling group) but their own process group."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from studio.speed import priority

pytestmark = pytest.mark.skipif(not priority.per_thread(), reason="nice values per thread (Linux)")


@pytest.fixture(autouse=True)
def own_starter(monkeypatch):
    """Each test makes its own run-starting thread (the process keeps one once made)."""
    monkeypatch.setattr(priority, "_starter", None)
    yield
    if priority._starter is not None:
        priority._starter.shutdown(wait=False)


def _class_and_nice() -> tuple[int, int]:
    return os.sched_getscheduler(0), priority.thread_nice()


def test_the_serving_threads_are_lowered_and_the_run_starter_is_not():
    start = _class_and_nice()
    seen: dict = {}

    def serving() -> None:
        seen["self"] = _class_and_nice()
        handler = threading.Thread(target=lambda: seen.setdefault("handler", _class_and_nice()))
        handler.start()
        handler.join()
        seen["starter"] = priority.start_run(_class_and_nice)

    priority.in_lower_thread(serving)
    lowered = (os.SCHED_IDLE if hasattr(os, "SCHED_IDLE") else start[0], priority.LOWEST)
    assert seen["self"] == lowered and seen["handler"] == lowered, "what the server makes inherits the low one"
    assert seen["starter"] == start, "runs start at the app's starting priority"
    assert _class_and_nice() == start, "the caller's own thread is untouched"


def test_an_error_in_the_lowered_thread_reaches_the_caller():
    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        priority.in_lower_thread(fail)


def test_a_run_started_by_a_lowered_app_keeps_the_starting_priority_in_the_apps_session(tmp_path):
    from studio.training.launcher import spawn_child

    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    start_nice = priority.thread_nice()
    child = priority.in_lower_thread(lambda: spawn_child(argv, tmp_path / "child.log", dict(os.environ)))
    try:
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == start_nice
        assert os.sched_getscheduler(child.pid) == os.sched_getscheduler(0)
        assert os.getpgid(child.pid) == child.pid, "its own group: the terminal's Ctrl-C does not reach it"
        assert os.getsid(child.pid) == os.getsid(0), "the app's session: one scheduling group, where nice holds"
    finally:
        child.kill()
        child.wait()


HOG = "import os, sys\n{lower}\nwhile True: pass"
IDLE = "os.setpriority(os.PRIO_PROCESS, 0, 19); os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))"


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="the idle scheduling class")
def test_only_idle_class_threads_of_the_runs_session_are_taken_as_yielding():
    """An idle-class busy loop in the run's session yields it its cores; one at nice 19 alone, or in another
    session (another scheduling group), takes them as any program does."""
    from studio.speed.cpu_share import YieldingThreads

    def yielding(lower: str, **popen) -> tuple[bool, float]:
        """Whether the busy loop's thread is taken as yielding, and the yielding seconds over one second."""
        seen = YieldingThreads()
        hog = subprocess.Popen([sys.executable, "-c", HOG.format(lower=lower)], **popen)
        try:
            time.sleep(0.5)
            first = seen.cpu_s()  # the loop's first sighting adds nothing
            time.sleep(1.0)
            return hog.pid in seen._seen, seen.cpu_s() - first  # its one thread's id is its pid
        finally:
            hog.kill()
            hog.wait()

    taken, seconds = yielding(IDLE)
    assert taken and seconds >= 0.3  # most of a core over the second, on a loaded box too
    assert not yielding("os.nice(19)")[0]
    assert not yielding(IDLE, start_new_session=True)[0]


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE") or len(os.sched_getaffinity(0)) < 2, reason="idle class, 2 cores")
def test_a_run_keeps_its_threads_beside_the_idle_class_app():
    """The run's CPU share (as wired by default) does not give up a thread to a busy loop in the app's class."""
    from studio.speed.cpu_share import CpuShare

    cpus = set(os.sched_getaffinity(0))
    hog = subprocess.Popen([sys.executable, "-c", HOG.format(lower=IDLE)])
    try:
        time.sleep(0.3)
        share = CpuShare(most=len(cpus), cpus=cpus, set_threads=lambda n: None)
        for _ in range(6):
            share.tick()
            time.sleep(0.3)
    finally:
        hog.kill()
        hog.wait()
    assert share.ticks == 6 and share.changes == [], share.changes
