"""Shared fixtures. Keep small: tiny configs on the offline demo model."""
from __future__ import annotations

import os

# Two cores shared by several test processes: one BLAS thread per process avoids thread thrashing.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Hub retries of 429/5xx wait 1, 2, 4, 8 s in real use; tests keep the retries and drop the waiting.
os.environ.setdefault("STUDIO_HUB_BACKOFF_S", "0.01")

import pytest  # noqa: E402

from studio.paths import ASSETS  # noqa: E402


def tiny_config_dict(runs_dir: str | os.PathLike, **train: object) -> dict:
    """Linear equations on the demo model: 40 rows, 4 steps of batch 2 at max_length 48, no eval, no TensorBoard."""
    return {
        "data": {"sources": [{"path": str(ASSETS / "datasets" / "linear_equations.csv")}],
                 "format": "prompt_completion", "template": "{Problem}\n ### Solution: {Solution}",
                 "response_template": "### Solution:", "eval_fraction": 0.0, "max_rows": 40},
        "model": {"name_or_path": "studio/demo-tiny"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"output_dir": str(runs_dir), "max_steps": 4, "learning_rate": 3e-3, "batch_size": 2,
                  "max_length": 48, "save_steps": 100, "logging_steps": 1, "tensorboard": False,
                  "warmup_ratio": 0.0, **train},
    }


@pytest.fixture
def tiny_cfg(tmp_path):
    """``tiny_cfg(**train_overrides)`` -> RunConfig writing runs under ``tmp_path/runs``."""
    from studio.config import RunConfig

    def make(**train):
        return RunConfig.from_dict(tiny_config_dict(tmp_path / "runs", **train))

    return make
