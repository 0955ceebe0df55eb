"""Experiment trackers a run also logs to (``train.report_to``): trackio, Weights & Biases, MLflow.

TensorBoard has its own switch (``train.tensorboard``, our callback). The others are transformers' own
``report_to`` integrations; each is used only when its package is installed, and asking for one that is not gives
one line with the command that installs it. Their files stay beside the run where the tracker allows it.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from studio.errors import ConfigError

PACKAGES = {"trackio": "trackio", "wandb": "wandb", "mlflow": "mlflow"}
"""``train.report_to`` value -> the module it needs."""
PROJECT = "fine-tune-studio"
"""The trackio / W&B project runs are grouped under (each run is named after its folder)."""


def installed(name: str) -> bool:
    return importlib.util.find_spec(PACKAGES[name]) is not None


def report_to(cfg: Any, run_dir: str | Path | None = None) -> str:
    """The ``report_to`` value for TrainingArguments; sets the tracker's local folder under ``run_dir``.

    Raises:
        ConfigError: the chosen tracker's package is not installed.
    """
    name = getattr(cfg.train, "report_to", "none") or "none"
    if name == "none":
        return "none"
    if not installed(name):
        raise ConfigError(f"train.report_to is {name}, but the {PACKAGES[name]} package is not installed: "
                          f"pip install {PACKAGES[name]} (or set train.report_to: none)")
    if run_dir is not None:
        run_dir = Path(run_dir)
        if name == "wandb":
            os.environ.setdefault("WANDB_DIR", str(run_dir))
            if not os.environ.get("WANDB_API_KEY"):
                os.environ.setdefault("WANDB_MODE", "offline")  # no login: logged locally, synced later
        elif name == "mlflow":
            os.environ.setdefault("MLFLOW_TRACKING_URI", (run_dir.parent / "mlruns").resolve().as_uri())
    return name
