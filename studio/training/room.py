"""Disk room for checkpoints: a check before each save, and one warning event when the next one won't fit."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from studio.diskspace import check_room, folder_size, free_bytes
from studio.events import Note
from studio.formatting import format_bytes
from studio.runs import checkpoint_complete, checkpoints

CHECKPOINT_MARGIN = 1 << 20
"""Bytes added to a checkpoint estimate for the trainer state, scheduler and RNG files."""


def checkpoint_need(run_dir: str | Path, trainable_params: int = 0) -> int:
    """Bytes the next checkpoint needs: the size of the last one, else weights + two Adam moments in fp32."""
    done = [p for p in checkpoints(run_dir) if checkpoint_complete(p)]
    if done:
        return folder_size(done[-1]) + CHECKPOINT_MARGIN
    return int(trainable_params) * 4 * 3 + CHECKPOINT_MARGIN


class RoomWatch:
    """Watches the free space under a run directory against the size of its next checkpoint."""

    def __init__(self, run_dir: str | Path, trainable_params: Callable[[], int], emit: Callable[[Any], None]):
        self.run_dir = Path(run_dir)
        self.trainable_params = trainable_params
        self.emit = emit
        self.warned = False
        self._need: tuple[tuple[str, ...], int] | None = None

    def need(self) -> int:
        """The next checkpoint's size, measured again only when the checkpoint folders change."""
        root = self.run_dir / "checkpoints"
        names = tuple(sorted(p.name for p in root.iterdir())) if root.is_dir() else ()
        if self._need is None or self._need[0] != names:
            self._need = (names, checkpoint_need(self.run_dir, self.trainable_params()))
        return self._need[1]

    def before_save(self) -> None:
        """Raise DiskFullError (before any byte is written) when the checkpoint about to be saved won't fit."""
        check_room(self.run_dir, self.need(), "the next checkpoint")

    def check(self, step: int, next_save: int | None) -> bool:
        """Emit one warning Note when the next checkpoint won't fit (again after room came back); True if tight."""
        try:
            free, need = free_bytes(self.run_dir), self.need()
        except OSError:
            return False
        tight = free < need
        if tight and not self.warned:
            when = f" at step {next_save}" if next_save else ""
            self.emit(Note(level="warning", message=(
                f"disk: {format_bytes(free)} free in {self.run_dir}, but the next checkpoint{when} needs about "
                f"{format_bytes(need)}; free some space or the run stops there (its last checkpoint is kept)"),
                data={"kind": "disk", "free_bytes": free, "need_bytes": need, "step": step}))
        self.warned = tight
        return tight
