"""``studio bench poll-load``: N browser sessions (``gradio_client``) poll the Train tab of a live run.

One call trains the same config twice in the served app: once with nobody watching (the baseline) and once while
``clients`` sessions each call the Train tab's ``/poll`` every ``interval`` seconds (what its ``gr.Timer`` does in
a browser); the sessions run in a child process, as browsers are not in the server's process, and the run trains in
its own process, as the app's Start launches it. Prints the poll latency (median, p95), the training step time with
pollers over without as a ratio, and where the CPU went: the run's, the app's per poll served, the pollers' own.
Step times come from the run's own ``Log`` events (``logging_steps=1``), after ``warmup`` steps.

The app serves below its run as ``studio app`` does (:mod:`studio.speed.priority`; ``serve_below=False`` serves at
the run's priority). The sessions stand in for browsers on other machines, so they take only CPU time the run and the
app leave (nice 19, idle class): browsers on the training box itself compete with the run as any program does.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from studio.formatting import plural


@dataclass
class PollLoadResult:
    clients: int
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    alone_step_s: list[float] = field(default_factory=list)
    polled_step_s: list[float] = field(default_factory=list)
    alone_cpu_s: float = 0.0
    """CPU seconds of the run's process (os.times of reaped children), alone and under the pollers."""
    polled_cpu_s: float = 0.0
    app_cpu_s: float = 0.0
    """CPU seconds the app (this process) spent while the pollers polled the run (serving them)."""
    polled_wall_s: float = 0.0
    """Seconds the run trained under the pollers."""
    pollers_cpu_s: float = 0.0
    """CPU seconds of the pollers' process while they polled (the browsers' side, not the app's)."""
    run_nice: int = 0
    """The nice value the runs start at (the app's starting one)."""
    app_nice: int = 0
    """The nice value the app served at (its runs start at the app's starting one)."""

    @property
    def polls_per_s(self) -> float:
        return len(self.latencies_s) / max(self.polled_wall_s, 1e-9)

    @property
    def p95_s(self) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] if ordered else float("nan")

    @property
    def slowdown(self) -> float:
        """Median step time with pollers over without (1.0: the pollers cost the run nothing)."""
        return statistics.median(self.polled_step_s) / statistics.median(self.alone_step_s)

    def summary(self) -> str:
        med = statistics.median(self.latencies_s) if self.latencies_s else float("nan")
        return (f"{self.clients} sessions, {len(self.latencies_s)} polls ({len(self.errors)} failed): poll latency "
                f"median {med * 1e3:.0f} ms, p95 {self.p95_s * 1e3:.0f} ms; step median "
                f"{statistics.median(self.polled_step_s) * 1e3:.1f} ms with pollers vs "
                f"{statistics.median(self.alone_step_s) * 1e3:.1f} ms without: slowdown ratio {self.slowdown:.3f}; "
                f"the run's CPU time {self.polled_cpu_s:.1f} s vs {self.alone_cpu_s:.1f} s (ratio "
                f"{self.polled_cpu_s / max(self.alone_cpu_s, 1e-9):.3f}); {self.polls_per_s:.1f} polls served per s; "
                f"the app's CPU per poll {self.app_cpu_s / max(len(self.latencies_s), 1) * 1e3:.1f} ms "
                f"({self.app_cpu_s / max(self.polled_wall_s, 1e-9):.0%} of a core); the pollers' own CPU per poll "
                f"{self.pollers_cpu_s / max(len(self.latencies_s), 1) * 1e3:.1f} ms "
                f"({self.pollers_cpu_s / max(self.polled_wall_s, 1e-9):.0%} of a core); nice values: the run "
                f"{self.run_nice}, the app {self.app_nice}, the pollers 19 (idle class)")


def _step_times(run_dir: Path, warmup: int) -> list[float]:
    from studio import runs
    from studio.events import EventLog, Log

    logs = [e for e in EventLog.read(Path(run_dir) / runs.EVENTS).all() if isinstance(e, Log)]
    return [(b.time - a.time) / max(b.step - a.step, 1) for a, b in zip(logs, logs[1:]) if a.step >= warmup]


def _poller(url: str, interval: float, stop: threading.Event, latencies: list[float], errors: list[str],
            lock: threading.Lock, ready: threading.Barrier) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    ready.wait()
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            client.predict(api_name="/poll")
            with lock:
                latencies.append(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - counted, and the first few shown
            with lock:
                errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
        left = interval - (time.perf_counter() - t0)
        if left > 0:
            stop.wait(left)


def pollers_main(url: str, clients: int, interval: float) -> None:
    """The browsers, in their own process (as real ones are): prints READY once every session is connected, polls
    until stdin closes, then prints one JSON line ``{"latencies_s": [...], "errors": [...], "cpu_s": ...}`` (its
    own CPU seconds from READY on)."""
    import json
    import sys

    from studio.speed.priority import lower_this_thread

    lower_this_thread()  # they stand in for browsers on other machines: the served app and the run come first
    stop, lock, latencies, errors = threading.Event(), threading.Lock(), [], []
    ready = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=_poller, args=(url, interval, stop, latencies, errors, lock, ready),
                                daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    cpu = time.process_time()
    print("READY", flush=True)
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join(30)
    print(json.dumps({"latencies_s": latencies, "errors": errors, "cpu_s": time.process_time() - cpu}), flush=True)


def poll_load(cfg: Any = None, *, clients: int = 20, steps: int = 150, warmup: int = 5, interval: float = 1.0,
              serve_below: bool = True, report: Callable[[str], None] = print) -> PollLoadResult:
    """Train ``cfg`` alone, then under ``clients`` polling sessions, in one served app; returns the figures.

    ``serve_below``: the app serves below its runs' priority, as ``studio app`` does (see
    :mod:`studio.speed.priority`); False keeps one priority for both."""
    from studio.bench.overhead import default_config
    from studio.speed import priority

    cfg = cfg or default_config(steps)
    measure = lambda: _measure(cfg, clients, warmup, interval, report)  # noqa: E731
    result = priority.in_lower_thread(measure) if serve_below else measure()
    for err in result.errors[:3]:
        report(f"poll failed: {err}")
    report(result.summary())
    return result


def _measure(cfg: Any, clients: int, warmup: int, interval: float, report: Callable[[str], None]) -> PollLoadResult:
    from studio.session import Studio
    from studio.speed import priority
    from studio.ui.app import build_app, initial_config, launch_kwargs

    nice = priority.thread_nice if priority.per_thread() else lambda: os.nice(0)
    result = PollLoadResult(clients=clients, run_nice=priority.start_run(nice), app_nice=nice())
    with tempfile.TemporaryDirectory(prefix="studio-poll-bench-") as tmp:
        studio = Studio(runs_dir=Path(tmp) / "runs")
        blocks = build_app(studio, initial=initial_config(demo=True))
        _, url, _ = blocks.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, show_error=False,
                                  **launch_kwargs())
        try:
            children = os.times().children_user + os.times().children_system
            job = studio.start_training(cfg)
            job.wait()
            result.alone_cpu_s = os.times().children_user + os.times().children_system - children
            result.alone_step_s = _step_times(job.run_dir, warmup)
            report(f"alone: {plural(len(result.alone_step_s), 'step')}, median "
                   f"{statistics.median(result.alone_step_s) * 1e3:.1f} ms")
            child = subprocess.Popen([sys.executable, "-m", "studio.ui.poll_bench", url, str(clients), str(interval)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
            if child.stdout.readline().strip() != "READY":  # every session connected before the run starts
                raise RuntimeError("the polling sessions did not start")
            children, app = os.times().children_user + os.times().children_system, time.process_time()
            began = time.perf_counter()
            job = studio.start_training(cfg)
            job.wait()  # the run's process is reaped here; the pollers' only after communicate
            result.polled_wall_s = time.perf_counter() - began
            result.polled_cpu_s = os.times().children_user + os.times().children_system - children
            result.app_cpu_s = time.process_time() - app
            out, _ = child.communicate("", timeout=120)
            polled = json.loads(out.strip().splitlines()[-1])
            result.latencies_s, result.errors = polled["latencies_s"], polled["errors"]
            result.pollers_cpu_s = polled.get("cpu_s", 0.0)
            result.polled_step_s = _step_times(job.run_dir, warmup)
        finally:
            if studio.current_job is not None:  # the run has its own process: it would outlive this one
                studio.stop_training()
                studio.job.wait(120)
            blocks.close()
    return result


if __name__ == "__main__":
    pollers_main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
