"""Assertions shared by the reliability cases."""
from __future__ import annotations

import json
import re
from pathlib import Path

from studio import runs


PROGRESS = re.compile(r" · elapsed \d+:\d\d(:\d\d)?$")
"""A phase/progress line of ``studio.commands.phases``."""


def one_clear_line(text: str, pattern: str) -> str:
    """``text`` (what the user saw) is one line matching ``pattern``, without a traceback; returns the line. Progress
    lines a command prints on stderr before it fails (``loading the model · elapsed 00:00``) are not error text."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not PROGRESS.search(ln)]
    assert "Traceback" not in text and 'File "' not in text, text
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    assert re.search(pattern, lines[0], re.I), f"{pattern!r} not in {lines[0]!r}"
    return lines[0]


def run_intact(run_dir: Path) -> int:
    """config.yaml loads, every events.jsonl line parses, the last complete checkpoint is whole; returns its step."""
    from studio.config import load_config

    run_dir = Path(run_dir)
    load_config(run_dir / runs.CONFIG)
    raw = (run_dir / runs.EVENTS).read_bytes().decode("utf-8")
    lines = raw.splitlines()
    if lines and not raw.endswith("\n"):
        lines = lines[:-1]  # a last line a crash cut short is tolerated (and repaired by the next append)
    for line in lines:
        if line.strip():
            json.loads(line)
    ckpt = runs.last_checkpoint(run_dir)
    assert ckpt is not None, f"no complete checkpoint in {run_dir}"
    json.loads((ckpt / "trainer_state.json").read_text())
    assert (ckpt / "adapter_model.safetensors").stat().st_size > 0
    return int(ckpt.name.split("-")[-1])


def log_steps(run_dir: Path) -> list[int]:
    from studio.events import EventLog, Log

    return [e.step for e in EventLog.read(Path(run_dir) / runs.EVENTS).all() if isinstance(e, Log)]


def resume_continues(run_dir: Path, capsys, max_steps: int) -> None:
    """``studio train --resume`` starts at the last complete checkpoint's step and reaches ``max_steps``."""
    from studio.cli import main
    from studio.events import EventLog, Finished, Started

    step = run_intact(run_dir)
    rc = main(["train", "--resume", str(run_dir), "--set", f"train.max_steps={max_steps}", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    events = EventLog.read(Path(run_dir) / runs.EVENTS).all()
    starts = [e for e in events if isinstance(e, Started)]
    assert starts[-1].start_step == step, (starts, step)
    assert isinstance(events[-1], Finished) and events[-1].step == max_steps
    after = [s for s in log_steps(run_dir)][-(max_steps - step):]
    assert after == list(range(step + 1, max_steps + 1)), log_steps(run_dir)
    run_intact(run_dir)


def one_error_after_progress(text: str, pattern: str) -> str:
    """Progress lines (``[ 52%] uploading ...``) and then exactly one ``error:`` line matching ``pattern``."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    rest = [ln for ln in lines if not re.match(r"^\[\s*\d+%\]", ln)]
    return one_clear_line("\n".join(rest), pattern)
