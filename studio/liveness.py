"""``process.json``: the pid and start time of the process a run folder belongs to, checked against the real
process (a pid reused by another program after a reboot or a crash is not the run)."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

PROCESS = "process.json"
"""In a run folder: ``{"pid", "start_time", "processes", "command", "host"}`` of its training process."""


def start_time(pid: int) -> float | None:
    """The process's creation time (seconds since the epoch), or None when no such process runs (or a zombie)."""
    import psutil

    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.Error, ValueError, TypeError):
        return None


def write_process(run_dir: str | Path, pid: int, *, processes: int = 1, command: list[str] | None = None) -> dict:
    """Record ``pid`` (with its start time) as the process training ``run_dir``."""
    record = {"pid": int(pid), "start_time": start_time(pid) or time.time(), "processes": int(processes),
              "command": list(command or []), "host": socket.gethostname()}
    path = Path(run_dir) / PROCESS
    tmp = path.with_name(PROCESS + ".tmp")
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return record


def read_process(run_dir: str | Path) -> dict[str, Any]:
    """The recorded process of a run folder, or {}."""
    try:
        data = json.loads((Path(run_dir) / PROCESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_alive(record: dict[str, Any]) -> bool:
    """The recorded process still runs: same pid, same start time (to the 1/10 s), on this host."""
    if not record.get("pid") or record.get("host", socket.gethostname()) != socket.gethostname():
        return False
    began = start_time(record["pid"])
    return began is not None and abs(began - float(record.get("start_time") or 0)) < 1.0


def live_runs(runs_dir: str | Path) -> list[Path]:
    """Run folders under ``runs_dir`` whose recorded training process is alive, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [p.parent for p in root.glob(f"*/{PROCESS}") if record_alive(read_process(p.parent))]
    return sorted(found, key=lambda p: (p / PROCESS).stat().st_mtime, reverse=True)
