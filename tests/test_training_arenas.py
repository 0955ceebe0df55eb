"""``share_main_arena``: threads started after it allocate from the arenas that exist, not from a new one each."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import ctypes, sys, threading
from studio.training.arenas import share_main_arena
if sys.argv[1] == "share":
    assert share_main_arena()
keep = []
t = threading.Thread(target=lambda: keep.append(bytearray(100_000)))  # below glibc's mmap threshold: an arena
t.start(); t.join()
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def _arenas(mode: str) -> int:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return sum(line.startswith("Arena ") for line in proc.stderr.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas")
def test_a_thread_started_after_share_main_arena_makes_no_arena_of_its_own():
    alone = _arenas("alone")
    assert alone >= 2  # the main arena and the thread's own
    assert _arenas("share") == alone - 1
