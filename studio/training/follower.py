"""The app's view of a run in its own process: ``RunProcess`` reads the run folder (``events.jsonl``,
``process.json``, ``child.log``) and signals the process; nothing else crosses between the app and the run.

It has the job's shape the app reads (``run_dir``, ``events``, ``alive``, ``status()``, ``stop()``, ``wait()``,
``result``), so the Train tab follows a child it started, or one a previous app started (``follow_live``).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from studio import runs
from studio.events import TERMINAL, Eval, Event, EventLog, Failed, Log, Note, Started, event_from_dict
from studio.training.state import JobStatus

CHILD_LOG = "child.log"
"""In a run folder: the training process's stdout and stderr (its last lines explain a death at start)."""
LAST_LINES = 12
"""Lines of ``child.log`` shown when the training process dies before training starts."""


class TailLog(EventLog):
    """A read-only :class:`EventLog` that follows an ``events.jsonl`` another process appends to: each read takes
    the complete lines written since the last one (a half-written last line waits for its end)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(None)
        self.source = Path(path)
        self._offset = 0
        self._reading = threading.Lock()

    def refresh(self) -> None:
        import json

        with self._reading:
            try:
                with self.source.open("rb") as fh:
                    fh.seek(self._offset)
                    chunk = fh.read()
            except OSError:
                return
            end = chunk.rfind(b"\n") + 1
            if not end:
                return
            self._offset += end
            new = []
            for line in chunk[:end].decode("utf-8", errors="replace").splitlines():
                if line.strip():
                    try:
                        new.append(event_from_dict(json.loads(line)))
                    except ValueError:
                        continue  # a line cut by a crash
            with self._cond:
                self._events.extend(new)
                if new:
                    self._cond.notify_all()

    def since(self, cursor: int = 0) -> tuple[list[Event], int]:
        self.refresh()
        return super().since(cursor)

    def wait(self, cursor: int, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh()
            if len(self) > cursor:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def last(self, cls: Any = Event) -> Event | None:
        self.refresh()
        return super().last(cls)


class RunProcess:
    """A run training in another process, seen through its folder. ``popen`` when this app started it (the app
    reaps it); otherwise the pid and start time of ``process.json`` say whether it still runs."""

    def __init__(self, run_dir: str | Path, *, popen: Any = None, cfg: Any = None) -> None:
        from studio.liveness import read_process

        self.run_dir = Path(run_dir)
        self.popen = popen
        self._cfg = cfg
        self.record = read_process(self.run_dir) or ({"pid": popen.pid} if popen is not None else {})
        self.events = TailLog(self.run_dir / runs.EVENTS)
        existing, _ = self.events.since(0)
        # this process's events: those after the launch (a resumed run keeps its earlier ones), or, following a
        # live run, those from its last start
        self._cursor_start = len(existing) if popen is not None else \
            next((i for i in range(len(existing) - 1, -1, -1) if isinstance(existing[i], Started)), 0)
        self._stops = 0
        self._ended = threading.Event()
        self.exit_code: int | None = None
        self._watcher = threading.Thread(target=self._watch, name=f"follow-{self.run_dir.name}", daemon=True)
        self._watcher.start()

    # ---------------------------------------------------------------- what the app reads
    @property
    def pid(self) -> int | None:
        return self.record.get("pid")

    @property
    def cfg(self) -> Any:
        if self._cfg is None:
            from studio.config import load_config

            self._cfg = load_config(self.run_dir / runs.CONFIG)
        return self._cfg

    def _mine(self) -> list[Event]:
        return self.events.since(self._cursor_start)[0]

    def _last(self, cls: Any) -> Any:
        return next((e for e in reversed(self._mine()) if isinstance(e, cls)), None)

    @property
    def device(self) -> str:
        started = self._last(Started)
        return started.device if started else "cpu"

    @property
    def alive(self) -> bool:
        return not self._ended.is_set()

    @property
    def result(self) -> Event | None:
        """The terminal event (Finished, Stopped or Failed) of this process, once there is one."""
        return self._last(TERMINAL)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the process to end (and its folder to be complete); True when it has ended."""
        return self._ended.wait(timeout)

    def status(self) -> JobStatus:
        """Phase and progress, from the events in the folder; elapsed time stops at the run's end."""
        events = self._mine()
        started = next((e for e in reversed(events) if isinstance(e, Started)), None)
        log = next((e for e in reversed(events) if isinstance(e, Log)), None)
        end = next((e for e in reversed(events) if isinstance(e, TERMINAL)), None)
        note = next((e for e in reversed(events) if isinstance(e, Note)), None)
        if end is not None:
            state = type(end).__name__.lower()
        elif not self.alive:
            state = "interrupted"
        elif self._stops:
            state = "stopping"
        else:
            state = "running" if started else "preparing"
        step = getattr(end, "step", None) or (log.step if log else started.start_step if started else 0)
        began = float(self.record.get("start_time") or time.time())
        now = time.time()
        phase = _phase_now(events) if state == "running" else None
        if phase is not None:  # after the last step: the phase's name, its ETA counting down from its start
            message = phase.message.split("...")[0]  # its ETA is shown beside it
            eta = phase.data.get("eta_s")
            eta = max(0.0, float(eta) - (now - phase.time)) if eta is not None else None
        else:
            message = getattr(end, "message", "") or ("" if started or note is None else note.message) or \
                ("" if started else "starting the training process")
            eta = log.eta_s if log and state == "running" else None
        ended = end.time if end is not None else (events[-1].time if events and not self.alive else None)
        return JobStatus(state=state, run_dir=str(self.run_dir), step=step or 0,
                         total_steps=started.total_steps if started else 0, loss=log.loss if log else None,
                         eta_s=eta, elapsed_s=round(max(0.0, (ended or now) - began), 1), message=message)

    # ---------------------------------------------------------------- control
    def stop(self) -> None:
        """The first call asks the run to stop after its current step (SIGTERM: it saves and marks itself
        stopped); a second one aborts it (a second SIGTERM)."""
        if not self.alive:
            return
        self._stops += 1
        for pid in self._targets():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _targets(self) -> list[int]:
        """``studio train`` itself; under torchrun its worker processes (the agent would turn one signal into two)."""
        pid = self.pid
        if not pid:
            return []
        if int(self.record.get("processes", 1)) <= 1:
            return [pid]
        import psutil

        try:
            return [c.pid for c in psutil.Process(pid).children()] or [pid]
        except psutil.Error:
            return [pid]

    # ---------------------------------------------------------------- the end
    def _watch(self) -> None:
        from studio.liveness import record_alive

        if self.popen is not None:
            self.exit_code = self.popen.wait()
        else:
            while record_alive(self.record):
                time.sleep(0.5)
        try:
            self._finish()
        finally:
            self._ended.set()

    def _finish(self) -> None:
        """A process that ended without its terminal event: before training it failed (its last lines say why);
        after, it was interrupted (a kill): resumable from its last checkpoint."""
        if self._last(TERMINAL) is not None:
            return
        code = f" (exit code {self.exit_code})" if self.exit_code is not None else ""
        log = EventLog(self.run_dir / runs.EVENTS)
        if self._last(Started) is None:
            lines = last_lines(self.run_dir / CHILD_LOG)
            log.append(Failed(message=f"the training process ended before training started{code}",
                              suggestion="its last lines:\n" + "\n".join(lines) if lines else
                              f"no output; see {self.run_dir / CHILD_LOG}"))
        else:
            ckpt = runs.last_checkpoint(self.run_dir)
            log.append(Note(level="warning", message=f"the training process ended without saving{code}: the run "
                            f"is interrupted; " + (f"resume it from {ckpt.name}" if ckpt else "no checkpoint yet")))
        self.events.refresh()


def _phase_now(events: list[Event]) -> Note | None:
    """The phase note (the final evaluation...) the run is in: the last one, when no start, step or evaluation came
    after it (the phases before the start are shown by the preparing state's message)."""
    for e in reversed(events):
        if isinstance(e, Note) and e.data.get("kind") == "phase":
            return e
        if isinstance(e, (Log, Eval, Started)):
            return None
    return None


def last_lines(path: Path, n: int = LAST_LINES) -> list[str]:
    """The last ``n`` non-empty lines of a log file (progress bars' carriage returns split lines)."""
    try:
        text = path.read_bytes()[-16384:].decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [ln.rstrip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-n:]


def follow_live(runs_dir: str | Path) -> RunProcess | None:
    """The live run of a runs folder (started by an earlier app, or another one), to follow; None when none."""
    from studio.liveness import live_runs

    live = live_runs(runs_dir)
    return RunProcess(live[0]) if live else None
