"""``HeapPeak``: the peak of the bytes a process has allocated and not freed (glibc's ``mallinfo2``), sampled from a
side thread while a benchmark run trains.

Peak RSS (``ru_maxrss``) also counts memory glibc keeps after it is freed (freed activations stay in the heap or in
a thread's 64 MB arenas, more or less from run to run); measured on SmolLM2 ORPO, that is 1.2-1.5 GB above the
live peak and swings by 0.5 GB between two runs of the same script. The live heap peak is the same figure for
every engine that allocates the same tensors, whichever thread trains and however the allocator fragments.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
           "keepcost")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS]


def _mallinfo2() -> Any:
    """glibc's ``mallinfo2`` function, or None (another C library, or glibc before 2.33)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _Mallinfo2
    fn.argtypes = []
    return fn


class HeapPeak:
    """``with HeapPeak() as heap: ...`` samples the bytes allocated with malloc and not freed (every arena, plus the
    chunks mmapped on their own) every ``interval`` seconds; ``heap.peak`` is the largest sample (None without
    glibc's ``mallinfo2``), ``heap.samples`` how many were taken."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak: int | None = None
        self.samples = 0
        self._fn = _mallinfo2()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int | None:
        """Take one sample now (also what the side thread does)."""
        if self._fn is None:
            return None
        info = self._fn()
        now = int(info.uordblks + info.hblkhd)
        self.peak = now if self.peak is None else max(self.peak, now)
        self.samples += 1
        return now

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def __enter__(self) -> "HeapPeak":
        self.sample()
        if self._fn is not None:
            self._thread = threading.Thread(target=self._loop, name="studio-heap-peak", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
