"""Training first: the app serves its viewers at a lower CPU priority than the runs it starts.

A run is its own process, but on a machine with few cores every poll the app answers takes CPU from it. On Linux,
priority (nice) is per thread and inherited by the threads and processes a thread creates. ``yield_to_runs()``
starts one launcher thread at the user's priority, then lowers every other thread of the app (the server, its
workers, and all they create later) by ``STUDIO_APP_NICE`` (default 10; 0 turns it off). ``spawn(fn)`` runs
``fn`` (a ``Popen``) on the launcher thread, so a run starts at the priority the app itself was given. With no
contention a lowered priority costs nothing; under load the run keeps the cores and the viewers wait a little.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
from typing import Any, Callable

DEFAULT_NICE = 10


class _Launcher:
    """One thread that runs submitted callables in order, at the priority it was created with."""

    def __init__(self) -> None:
        self.jobs: queue.Queue = queue.Queue()
        self.tid: int | None = None
        self._tid_known = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="studio-run-launcher", daemon=True)
        self.thread.start()
        self._tid_known.wait(5)

    def _loop(self) -> None:
        self.tid = threading.get_native_id()
        self._tid_known.set()
        while True:
            fn, box, done = self.jobs.get()
            try:
                box.append((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                box.append((False, exc))
            done.set()

    def call(self, fn: Callable[[], Any]) -> Any:
        box: list = []
        done = threading.Event()
        self.jobs.put((fn, box, done))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value


_launcher: _Launcher | None = None
_lock = threading.Lock()


def app_nice() -> int:
    """How much lower the app's threads run than its runs (``STUDIO_APP_NICE``, default 10, 0 = off)."""
    try:
        return max(0, min(19, int(os.environ.get("STUDIO_APP_NICE", DEFAULT_NICE))))
    except ValueError:
        return DEFAULT_NICE


def yield_to_runs() -> int:
    """Start the launcher thread, then lower the priority of every other thread of this process; returns how many
    threads were lowered (0 where this is not Linux, or STUDIO_APP_NICE is 0). Call it once the server runs."""
    global _launcher
    step = app_nice()
    if not sys.platform.startswith("linux") or not step or not hasattr(os, "setpriority"):
        return 0
    with _lock:
        if _launcher is None:
            _launcher = _Launcher()
        keep = _launcher.tid
    lowered = 0
    for name in os.listdir("/proc/self/task"):
        tid = int(name)
        if tid == keep:
            continue
        try:
            now = os.getpriority(os.PRIO_PROCESS, tid)
            if now < os.getpriority(os.PRIO_PROCESS, keep or os.getpid()) + step:
                os.setpriority(os.PRIO_PROCESS, tid, min(19, now + step))
                lowered += 1
        except OSError:  # a thread that ended meanwhile, or a limit we may not raise past
            continue
    return lowered


def spawn(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` (which starts a process) at the app's own priority: on the launcher thread when
    :func:`yield_to_runs` made one, else right here."""
    launcher = _launcher
    if launcher is None or threading.get_native_id() == launcher.tid:
        return fn()
    return launcher.call(fn)
