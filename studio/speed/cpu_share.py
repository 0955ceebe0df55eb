"""CPU threads that follow the cores other programs leave free.

torch's OpenMP threads wait for each other at the end of every parallel op. When another program (the app serving
browsers, a browser, a second job) takes one of the cores, one training thread is preempted and the others spin
until it runs again, at every op: measured on 2 cores with 20 browser sessions polling the app, a step went from
46 ms to 4 s (the run's CPU time 16x) with 2 threads, and stayed at 57 ms with 1. So a run on the CPU measures,
about four times a second, how much of its cores other processes used (``/proc/stat`` minus its own CPU time) and
trains on the cores left, up to the thread count it started with (``OMP_NUM_THREADS`` or torch's default). The
app's own threads, which serve browsers in the idle scheduling class (:mod:`studio.speed.priority`), are not counted:
the kernel runs them only in the run's gaps (:class:`YieldingThreads`). A niced program still is: a run that kept its
2 threads beside 20 threads at nice 10 (0.8 of a core) measured its steps 4.8x slower.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable

LOG = logging.getLogger(__name__)

WINDOW_S = 0.25
"""Shortest time between two measurements (a step shorter than this is measured over several)."""
USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_cpu_s(cpus: set[int] | None = None, stat: str = "/proc/stat") -> float | None:
    """Seconds the given CPUs (all, when None) have spent busy since boot, or None where there is no ``/proc/stat``."""
    try:
        with open(stat, encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    total = 0
    for line in lines:
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu" or not values:
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in (values + ["0"] * 8)[:8])
        total += user + nice + system + irq + softirq + steal
    return total / USER_HZ


def own_cpu_s() -> float:
    """CPU seconds this process has used (every thread)."""
    t = os.times()
    return t.user + t.system


class YieldingThreads:
    """CPU time of the threads that yield this process its cores: those of its session (one scheduling group on
    Linux) in the idle scheduling class, as the app serving browsers (:mod:`studio.speed.priority`). The kernel runs
    them only on time the run leaves, so they are not counted as taking its cores. Idle-class threads of another
    session do not yield to it (sessions share the CPU as groups) and count as any program.

    :meth:`cpu_s` only grows: each thread adds what it used since the last call (its first sighting adds nothing)."""

    SCHED_IDLE = getattr(os, "SCHED_IDLE", 5)
    """The idle class's number in ``/proc/<pid>/task/<tid>/stat`` (field 41, the policy)."""
    REFRESH_S = 10.0
    """Seconds a process's session is cached (a pid reused by another session is seen within this)."""

    def __init__(self, proc: str = "/proc", clock: Callable[[], float] = time.monotonic) -> None:
        self.proc, self.clock = proc, clock
        self.session = os.getsid(0) if hasattr(os, "getsid") else None
        self.total = 0.0
        self._seen: dict[int, float] = {}
        self._sessions: dict[int, int] = {}
        self._refreshed = -self.REFRESH_S

    @staticmethod
    def _fields(path: str) -> list[str] | None:
        try:
            with open(path, encoding="ascii", errors="replace") as fh:
                data = fh.read()
        except OSError:
            return None
        return data[data.rfind(")") + 2:].split()  # from field 3 (state) on: the name may hold spaces

    def _pids(self) -> list[int]:
        """This session's processes but this one."""
        if self.clock() - self._refreshed > self.REFRESH_S:
            self._sessions, self._refreshed = {}, self.clock()
        me, out = os.getpid(), []
        try:
            names = os.listdir(self.proc)
        except OSError:
            return []
        for name in names:
            if not name.isdigit() or int(name) == me:
                continue
            pid = int(name)
            if pid not in self._sessions:
                fields = self._fields(f"{self.proc}/{name}/stat")
                if fields is None or len(fields) < 4:
                    continue
                self._sessions[pid] = int(fields[3])
            if self._sessions[pid] == self.session:
                out.append(pid)
        return out

    def cpu_s(self) -> float:
        """Seconds the session's idle-class threads have used since this object's first call."""
        if self.session is None or not os.path.isdir(self.proc):
            return 0.0
        seen: dict[int, float] = {}
        for pid in self._pids():
            try:
                tids = os.listdir(f"{self.proc}/{pid}/task")
            except OSError:
                continue
            for name in tids:
                fields = self._fields(f"{self.proc}/{pid}/task/{name}/stat")
                if fields is None or len(fields) < 39 or int(fields[38]) != self.SCHED_IDLE:
                    continue
                tid, used = int(name), (int(fields[11]) + int(fields[12])) / USER_HZ  # utime + stime
                seen[tid] = used
                if tid in self._seen:
                    self.total += max(0.0, used - self._seen[tid])
        self._seen = seen
        return self.total


def threads_for(free_cores: float, current: int, most: int) -> int:
    """Threads to train on when ``free_cores`` cores are left by other programs: drop a thread when less than half
    a core is left for it, add one back when three quarters of a core is free for it (no flapping in between)."""
    down = int(free_cores + 0.5)
    if down < current:
        return max(1, down)
    up = int(free_cores + 0.25)
    return min(most, max(current, up))


@dataclass
class CpuShare:
    """Follows other programs' use of this process's cores and sets torch's thread count to the cores left.

    ``busy``, ``own``, ``clock`` and ``set_threads`` are injectable for tests."""

    most: int
    cpus: set[int] | None = None
    busy: Callable[[], float | None] = None  # type: ignore[assignment]
    own: Callable[[], float] = None  # type: ignore[assignment]
    """CPU seconds not counted as other programs': this process's and its session's idle-class threads'."""
    clock: Callable[[], float] = time.monotonic
    set_threads: Callable[[int], None] = None  # type: ignore[assignment]
    current: int = 0
    ticks: int = 0
    """Calls of :meth:`tick` so far (most return at once, inside the window)."""
    changes: list[tuple[int, int, float]] = field(default_factory=list)
    """Every change made: ``(from, to, other programs' cores)``."""
    _last: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        self.current = self.current or self.most
        if self.busy is None:
            self.busy = lambda: busy_cpu_s(self.cpus)
        if self.own is None:
            yielding = YieldingThreads()
            self.own = lambda: own_cpu_s() + yielding.cpu_s()
        if self.set_threads is None:
            import torch

            self.set_threads = torch.set_num_threads

    @property
    def cores(self) -> int:
        return len(self.cpus) if self.cpus else (os.cpu_count() or 1)

    def tick(self) -> int:
        """Measure (at most every ``WINDOW_S``; a call in between only reads the clock) and set the thread count;
        returns it."""
        self.ticks += 1
        now = self.clock()
        if self._last is not None and now - self._last[0] < WINDOW_S:
            return self.current
        busy, own = self.busy(), self.own()
        if busy is None:
            return self.current
        if self._last is None:
            self._last = (now, busy, own)
            return self.current
        t0, busy0, own0 = self._last
        self._last = (now, busy, own)
        others = max(0.0, ((busy - busy0) - (own - own0)) / (now - t0))
        want = threads_for(self.cores - others, self.current, self.most)
        if want != self.current:
            LOG.info("CPU threads %d -> %d: other programs use %.1f of the %d cores", self.current, want, others,
                     self.cores)
            self.changes.append((self.current, want, round(others, 2)))
            self.set_threads(want)
            self.current = want
        return self.current


class TickEachToken:
    """A logits processor that ticks a :class:`CpuShare` at every generated token (it measures only every
    ``WINDOW_S``): generation, most of a GRPO step, follows the free cores too, not only the step's start."""

    def __init__(self, share: CpuShare) -> None:
        self.share = share

    def __call__(self, input_ids: object, scores: object) -> object:
        self.share.tick()
        return scores


def plan_lines(device: str, processes: int = 1) -> list[str]:
    """The speed plan's line for CPU threads (none off the CPU)."""
    if device != "cpu":
        return []
    import torch

    if processes > 1:
        return [f"CPU threads: {torch.get_num_threads()} per process -- the cores shared between {processes} processes"]
    return [f"CPU threads: up to {torch.get_num_threads()}, fewer while other programs use the cores -- waiting "
            "threads spin at every op when one of them is preempted (a step 70x slower measured)"]


def callbacks(device: str, processes: int = 1) -> list:
    """The run's :func:`callback` on the CPU with one process (N gloo processes split the cores by OMP_NUM_THREADS)."""
    return [callback()] if device == "cpu" and processes == 1 else []


def callback(most: int | None = None) -> object:
    """A ``TrainerCallback`` that ticks a :class:`CpuShare` at each step's start (and each logged step)."""
    import torch
    from transformers import TrainerCallback

    try:
        cpus = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = None
    share = CpuShare(most=most or torch.get_num_threads(), cpus=cpus)

    class CpuShareCallback(TrainerCallback):
        """Trains on the cores other programs leave free (see :mod:`studio.speed.cpu_share`)."""

        def __init__(self) -> None:
            self.share = share

        def on_step_begin(self, args, state, control, **kwargs):
            self.share.tick()

        def on_substep_end(self, args, state, control, **kwargs):
            self.share.tick()

    return CpuShareCallback()
