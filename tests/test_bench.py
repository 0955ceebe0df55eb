"""`studio bench train-overhead` runs and prints a ratio (no timing assertions)."""
import re

from studio.cli import main


def test_train_overhead_prints_a_ratio(capsys):
    rc = main(["bench", "train-overhead", "--steps", "5", "--rounds", "1", "--warmup", "1",
               "--set", "data.max_rows=40", "--set", "train.max_length=48", "--set", "train.batch_size=2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "studio" in out and "plain" in out
    ratio = float(re.search(r"^ratio (\d+\.\d+)$", out, re.M).group(1))
    assert ratio > 0
