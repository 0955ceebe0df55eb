"""Where Studio keeps things on disk."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

def _assets() -> Path:
    """The checkout's ``assets/``, or where a non-editable install put them (``<prefix>/share/fine-tune-studio``)."""
    import sys

    here = Path(__file__).resolve().parent.parent / "assets"
    installed = Path(sys.prefix) / "share" / "fine-tune-studio" / "assets"
    return here if here.is_dir() or not installed.is_dir() else installed


ASSETS = _assets()


def cache_root() -> Path:
    """``$STUDIO_CACHE_DIR`` or ``~/.cache/fine-tune-studio``."""
    env = os.environ.get("STUDIO_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fine-tune-studio"


def default_runs_dir() -> Path:
    """``$STUDIO_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get("STUDIO_RUNS_DIR") or "runs")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (no locking where fcntl is missing): one build of a cached model."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename still prevents half-built folders
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
