"""The app serves below its runs: a run never waits while the app answers browsers.

On Linux a nice value belongs to a thread, and a new thread or process inherits the value of the thread that makes
it. :func:`serve_below_runs` keeps one thread at the app's starting priority to start runs (:func:`start_run`), then
lowers the calling thread's: every thread the web server makes afterwards (its event loop, the handlers) serves at
the lower priority, while the runs keep the starting one. An unprivileged process can lower a priority but never
raise it back, hence the thread kept aside. Where a nice value belongs to the whole process (macOS, Windows) the app
keeps one priority. The thread is the process's own, like its nice value: not a browser session's state.
"""
from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

LOWEST = 19
"""The nice value the app serves at (in the idle scheduling class where there is one; a run's CPU share does not
count such threads of its session, :class:`studio.speed.cpu_share.YieldingThreads`)."""

_starter: ThreadPoolExecutor | None = None
_made = threading.Lock()


def per_thread() -> bool:
    """Whether nice values are per thread here (Linux), which the split needs."""
    return sys.platform.startswith("linux") and hasattr(os, "setpriority") and hasattr(threading, "get_native_id")


def thread_nice() -> int:
    """The calling thread's nice value."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def lower_this_thread() -> None:
    """The calling thread (and the threads and processes it makes from now on) runs only on CPU time that normal
    threads leave: nice 19 and, where there is one, the idle scheduling class (a nice-19 thread still takes ~1.5 % of
    a core from each busy one and preempts it, and a run's threads wait for each other at every op)."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST)
    if hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:  # a kernel without it: nice 19 alone
            pass


def serve_below_runs() -> bool:
    """Keep a run-starting thread at the calling thread's priority, then lower the calling thread's
    (:func:`lower_this_thread`; threads it makes later inherit it); False where nice values are per process."""
    global _starter
    if not per_thread():
        return False
    with _made:
        if _starter is None:
            _starter = ThreadPoolExecutor(1, thread_name_prefix="studio-run-starter")
            _starter.submit(int).result()  # its one thread exists from now on, at this thread's priority
    lower_this_thread()
    return True


def start_run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` on the run-starting thread (here, where the app keeps one priority), so the process
    it starts inherits the app's starting priority and that thread's signal mask."""
    starter = _starter
    if starter is None:
        return fn(*args, **kwargs)
    return starter.submit(fn, *args, **kwargs).result()


def in_lower_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a new thread that serves below runs (the caller's own priority untouched); its result, or its
    exception raised here."""
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            serve_below_runs()
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=body, name="studio-served-below-runs")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")
