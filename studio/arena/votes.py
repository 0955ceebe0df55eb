"""Arena votes on disk: ``<runs>/arena/votes.jsonl``, one JSON vote per line, appended and never rewritten.

A line damaged by hand is skipped and reported (its number and why); the good lines around it are kept.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import ConfigError

ARENA = "arena"
VOTES = "votes.jsonl"
CHOICES = ("left", "right", "tie", "both_bad")
"""left / right: that side's answer is better; tie: equally good; both_bad: neither is acceptable."""
_WRITE = threading.Lock()


@dataclass(frozen=True)
class Vote:
    """One judged round: the prompt, both answers with the models that wrote them, and the verdict."""

    prompt: str
    left_model: str
    right_model: str
    left_answer: str
    right_answer: str
    vote: str
    edited_answer: str | None = None
    """The better answer as the judge corrected it (an SFT row, and the ``chosen`` side of the pair)."""
    system_prompt: str | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0

    def __post_init__(self) -> None:
        if self.vote not in CHOICES:
            raise ConfigError(f"a vote is one of {', '.join(CHOICES)}, got {self.vote!r}")

    @property
    def winner(self) -> tuple[str, str] | None:
        """``(model, answer)`` of the better side, None for a tie or both bad."""
        if self.vote == "left":
            return self.left_model, self.left_answer
        if self.vote == "right":
            return self.right_model, self.right_answer
        return None

    @property
    def loser(self) -> tuple[str, str] | None:
        if self.vote == "left":
            return self.right_model, self.right_answer
        if self.vote == "right":
            return self.left_model, self.left_answer
        return None


@dataclass
class VoteFile:
    """The votes read back, and the lines that could not be read (``"line 4: not JSON"``)."""

    votes: list[Vote]
    problems: list[str]
    path: Path


def votes_path(runs_dir: str | Path) -> Path:
    return Path(runs_dir) / ARENA / VOTES


def append_vote(runs_dir: str | Path, vote: Vote) -> Path:
    """Append one vote (stamped with the time if it has none); returns the file's path."""
    path = votes_path(runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = asdict(vote)
    record["time"] = vote.time or round(time.time(), 3)
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _WRITE, open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return path


_REQUIRED = ("prompt", "left_model", "right_model", "left_answer", "right_answer", "vote")


def read_votes(runs_dir: str | Path) -> VoteFile:
    """Every readable vote in order; a damaged line is skipped and named in ``problems``."""
    path = votes_path(runs_dir)
    votes: list[Vote] = []
    problems: list[str] = []
    if not path.exists():
        return VoteFile(votes, problems, path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                problems.append(f"line {number}: not JSON")
                continue
            if not isinstance(raw, dict):
                problems.append(f"line {number}: not a JSON object")
                continue
            missing = [k for k in _REQUIRED if not isinstance(raw.get(k), str)]
            if missing:
                problems.append(f"line {number}: missing or not text: {', '.join(missing)}")
                continue
            known = {k: raw[k] for k in Vote.__dataclass_fields__ if k in raw}
            try:
                votes.append(Vote(**known))
            except (ConfigError, TypeError) as exc:
                problems.append(f"line {number}: {exc}")
    return VoteFile(votes, problems, path)


def problems_line(vf: VoteFile, most: int = 3) -> str | None:
    """One sentence about the damaged lines, or None."""
    if not vf.problems:
        return None
    shown = "; ".join(vf.problems[:most]) + (f"; and {len(vf.problems) - most} more" if len(vf.problems) > most else "")
    return f"{vf.path}: {len(vf.problems)} damaged line(s) skipped, the other votes kept ({shown})"
