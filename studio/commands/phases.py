"""Phase lines on stderr for the long CLI commands (``studio eval``, ``studio chat --compare``, export, push): the
phase's name, its rows done/total when it has rows, and the elapsed time, so minutes on a CPU are never silent.

On a terminal one line is rewritten in place; otherwise (a log, a pipe, a test) a line is printed when a phase
begins, when its rows are all done, and at most every :data:`EVERY_S` seconds in between.
"""
from __future__ import annotations

import re
import sys
import time
from typing import TextIO

EVERY_S = 5.0
"""Seconds between two lines of the same phase when stderr is not a terminal."""
_ROWS = re.compile(r"(\d+)/(\d+) (?:rows|answers)")


class PhaseLines:
    """``progress(fraction, label)`` callable printing ``label · elapsed 00:07`` on stderr (see the module)."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.began = time.monotonic()
        self._phase: str | None = None
        self._printed_at = 0.0
        self._open_line = False

    def elapsed(self) -> str:
        from studio.formatting import format_seconds

        return format_seconds(time.monotonic() - self.began)

    def __call__(self, fraction: float, label: str) -> None:
        phase = label.split(":")[0]
        rows = _ROWS.search(label)
        now = time.monotonic()
        new = phase != self._phase
        complete = rows is not None and rows.group(1) == rows.group(2)
        self._phase = phase
        line = f"{label} · elapsed {self.elapsed()}"
        if self.tty:
            print("\r" + line.ljust(70), end="", file=self.stream, flush=True)
            self._open_line = True
        elif new or complete or now - self._printed_at >= EVERY_S:
            print(line, file=self.stream, flush=True)
            self._printed_at = now

    def say(self, text: str) -> None:
        """One whole line (a phase that has no rows), with the elapsed time."""
        self.end_line()
        print(f"{text} · elapsed {self.elapsed()}", file=self.stream, flush=True)
        self._phase = None

    def end_line(self) -> None:
        """Close a line rewritten in place (on a terminal) before other output."""
        if self._open_line:
            print(file=self.stream, flush=True)
            self._open_line = False
