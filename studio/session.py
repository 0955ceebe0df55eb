"""``Studio``: the one stateful object of the app, shared by every browser session and the CLI.

It holds what is loaded and what runs, behind a lock. Handlers get it explicitly; there are no module-level
mutable globals. One GPU runs one job at a time: a second start gets a clear "busy" answer.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.paths import default_runs_dir


@dataclass
class Studio:
    """Shared app state. Each area (data, training, chat, hub) keeps its own attribute; use ``lock`` to change them."""

    runs_dir: Path = field(default_factory=default_runs_dir)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    job: Any = None
    """The current or last ``TrainingJob`` (studio.training)."""
    chat: Any = None
    """The loaded chat engine (studio.inference), reused across requests."""
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.runs_dir = Path(self.runs_dir)

    # ------------------------------------------------------------------------------------------------ training
    @property
    def current_job(self) -> Any:
        """The running ``TrainingJob``, or None when nothing runs (the last job stays in ``job``)."""
        with self.lock:
            job = self.job
            return job if job is not None and job.alive else None

    def start_training(self, cfg: Any, *, resume: str | Path | None = None, extra_callbacks: Any = ()) -> Any:
        """Start a ``TrainingJob`` in the background; one job at a time for the whole app.

        Raises:
            BusyError: a run is in progress (the message names its run directory).
            TrainingError: ``resume`` has no checkpoint.
        """
        from studio.errors import BusyError
        from studio.training import TrainingJob

        with self.lock:
            if self.job is not None and self.job.alive:
                raise BusyError(f"a run is in progress: {self.job.run_dir}")
            job = TrainingJob(cfg, self.runs_dir, resume=resume, extra_callbacks=extra_callbacks)
            self.job = job.start()
            return job

    def stop_training(self) -> bool:
        """Ask the running job to stop after its current step; False when nothing runs."""
        job = self.current_job
        if job is None:
            return False
        job.stop()
        return True
