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
