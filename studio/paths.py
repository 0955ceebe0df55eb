"""Where Studio keeps things on disk."""
from __future__ import annotations

import os
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def cache_root() -> Path:
    """``$STUDIO_CACHE_DIR`` or ``~/.cache/fine-tune-studio``."""
    env = os.environ.get("STUDIO_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fine-tune-studio"


def default_runs_dir() -> Path:
    """``$STUDIO_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get("STUDIO_RUNS_DIR") or "runs")
