"""``HeapPeak``: the live malloc heap's peak while a benchmark run trains, and the pref bench's ratio of it."""
from __future__ import annotations

import threading

import pytest

from studio.bench.heap import HeapPeak
from studio.bench.train_pref import summarize


def test_heap_peak_sees_a_large_block_freed_before_the_end():
    """256 MB allocated and freed inside the block: the peak holds it (glibc mmaps a block this size on its own, so
    counting the arenas alone would miss it). Measured around the block only, after a collection: in a long test
    process, garbage from earlier tests freed meanwhile would otherwise hide part of it."""
    import gc

    size = 256 * 2**20
    gc.collect()
    gc.disable()
    try:
        with HeapPeak(interval=0.001) as heap:
            if heap.peak is None:
                pytest.skip("no glibc mallinfo2 here")
            before = heap.sample()
            block = bytearray(size)
            alive = heap.sample()
            seen = heap.samples
            taken = threading.Event()
            while not taken.wait(0.001):  # two side-thread samples while the block is alive
                if heap.samples >= seen + 2:
                    taken.set()
            del block
    finally:
        gc.enable()
    assert alive - before >= 0.9 * size and heap.peak >= alive


def test_summarize_gives_the_live_heap_ratio_beside_peak_rss():
    gb = 2**30
    runs = [{"setup": "orpo", "run": run, "steps_per_s": 1.0, "peak_rss_bytes": rss * gb, "peak_heap_bytes": heap * gb,
             "first_loss": 2.5} for run, rss, heap in (("studio", 4.6, 3.0), ("plain", 4.2, 3.1))]
    ratios = summarize(runs)["ratios"]
    assert ratios["orpo_peak_rss"] == pytest.approx(4.6 / 4.2, abs=1e-3)
    assert ratios["orpo_peak_heap"] == pytest.approx(3.0 / 3.1, abs=1e-3)
