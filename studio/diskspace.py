"""Full disks and unwritable folders named in one line: detection, free space, the next checkpoint's size.

``is_disk_full(exc)`` recognises ENOSPC/EDQUOT anywhere in an exception's chain, and torch's own way of saying it
(``[enforce fail at inline_container.cc] . unexpected pos``: a zip write that came up short).
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from studio.errors import DiskFullError, StorageError
from studio.formatting import format_bytes

_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_FULL_TEXT = ("no space left on device", "unexpected pos", "disk quota exceeded", "file write failed")


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the device is out of space."""
    for e in _chain(exc):
        if isinstance(e, DiskFullError):
            return True
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return True
        text = str(e).lower()
        if any(t in text for t in _FULL_TEXT) or "errno 28" in text:
            return True
    return False


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: str | Path) -> int:
    """Free bytes on the device holding ``path`` (or its nearest existing parent)."""
    return int(shutil.disk_usage(_existing(Path(path))).free)


def folder_size(path: str | Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def full_message(where: str | Path, what: str = "files", need: int | None = None) -> str:
    """``the disk is full: ...`` with where, how much is free and how much the next checkpoint needs."""
    where = Path(where)
    try:
        free = format_bytes(free_bytes(where))
    except OSError:
        free = "?"
    needs = f"; the next checkpoint needs about {format_bytes(need)}" if need else ""
    return (f"the disk is full: no space left writing {what} in {where} ({free} free{needs}); free some space or "
            f"point train.output_dir at another disk")


def disk_full(where: str | Path, what: str = "files", need: int | None = None) -> DiskFullError:
    return DiskFullError(full_message(where, what, need))


def storage_error(exc: OSError, path: str | Path, what: str = "folder") -> StorageError | DiskFullError:
    """The typed error for an OSError creating or writing ``path``."""
    path = Path(path)
    if is_disk_full(exc):
        return disk_full(path.parent if not path.is_dir() else path, what)
    if isinstance(exc, (FileExistsError, NotADirectoryError)) or exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        return StorageError(f"can't create the {what} {path}: {blocker} is a file, not a folder; choose another "
                            f"folder or move that file")
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"can't write the {what} {path}: the folder is read-only or not yours; choose a "
                            f"writable folder (--runs-dir or train.output_dir)")
    return StorageError(f"can't write the {what} {path}: {exc.strerror or exc}")


def check_room(path: str | Path, need: int, what: str = "the next checkpoint") -> None:
    """Raise :class:`DiskFullError` before a write of ``need`` bytes that would not fit."""
    free = free_bytes(path)
    if free < need:
        raise DiskFullError(f"the disk is full: {format_bytes(free)} free in {Path(path)} and {what} needs about "
                            f"{format_bytes(need)}; free some space or point train.output_dir at another disk, then "
                            f"resume")


def log_handler(path: str | Path):
    """A ``logging.FileHandler`` whose write errors (a full disk) print one line once, never a traceback."""
    import logging
    import sys

    class OneLineFileHandler(logging.FileHandler):
        failed = False

        def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
            if self.failed:
                return
            self.failed = True
            exc = sys.exc_info()[1]
            if exc is not None and is_disk_full(exc):
                text = full_message(Path(self.baseFilename).parent, Path(self.baseFilename).name)
            else:
                text = f"can't write {self.baseFilename}: {exc}"
            print(f"warning: {text}; log lines are dropped until then", file=sys.stderr)

    return OneLineFileHandler(path, encoding="utf-8")
