"""`studio bench poll-load` at smoke size: it runs and prints the p95 poll latency and the slowdown ratio (figures
are reported, never asserted against a number)."""
from __future__ import annotations

import re

import pytest

from studio.cli import main


@pytest.mark.slow
def test_poll_load_bench_prints_p95_and_a_ratio(capsys):
    rc = main(["bench", "poll-load", "--clients", "2", "--steps", "12", "--warmup", "2", "--interval", "0.2",
               "--set", "data.max_rows=40", "--set", "train.max_length=48", "--set", "train.batch_size=2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "2 sessions" in out and "0 failed" in out, out
    assert float(re.search(r"^p95 (\d+\.\d+) ms$", out, re.M).group(1)) > 0
    assert float(re.search(r"^ratio (\d+\.\d+)$", out, re.M).group(1)) > 0
