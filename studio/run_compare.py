"""Many runs side by side: one table (method, model, data, the settings that differ, final losses, eval metrics,
time), curves to overlay, and safe delete / rename (never a live run). No gradio: the Runs tab and
``studio runs`` are thin layers over this module."""
from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from studio.errors import ConfigError, TrainingError

IGNORED_SETTINGS = ("train.output_dir", "train.run_name")
"""Keys that always differ between runs and say nothing about them."""


@dataclass
class RunSummary:
    """One run's line in the comparison."""

    name: str
    path: str
    status: str
    method: str
    model: str
    data: str
    steps: int
    train_loss: float | None
    eval_loss: float | None
    runtime_s: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    """Held-out scores of the saved evaluation, e.g. ``tuned.accuracy``, ``base.accuracy``."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The values of the settings that differ between the compared runs."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Comparison:
    runs: list[RunSummary]
    differing: list[str]
    """Dotted config keys whose values are not the same in every compared run."""

    def headers(self) -> list[str]:
        return ["Run", "Status", "Method", "Model", "Data", "Steps", "Train loss", "Eval loss", "Accuracy (tuned)",
                "Time", *self.differing]

    def rows(self) -> list[list[Any]]:
        from studio.formatting import format_seconds

        out = []
        for r in self.runs:
            acc = r.metrics.get("tuned.accuracy")
            out.append([r.name, r.status, r.method, r.model, r.data, r.steps, _num(r.train_loss), _num(r.eval_loss),
                        "n/a" if acc is None else f"{acc:.1%}",
                        "" if r.runtime_s is None else format_seconds(r.runtime_s),
                        *[_show(r.settings.get(k)) for k in self.differing]])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.to_dict() for r in self.runs], "differing": self.differing}


def _num(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def flatten(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (lists of mappings, like data sources, keyed by index)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                out.update(flatten(item, f"{dotted}[{i}]."))
        else:
            out[dotted] = value
    return out


def resolve_run(name_or_path: str | Path, runs_dir: str | Path | None = None) -> Path:
    """A run folder from its path or its name in ``runs_dir``.

    Raises:
        TrainingError: no run there (the name and where it was looked for).
    """
    from studio import runs

    path = Path(name_or_path).expanduser()
    if (path / runs.CONFIG).is_file():
        return path
    if runs_dir is not None and (Path(runs_dir) / str(name_or_path) / runs.CONFIG).is_file():
        return Path(runs_dir) / str(name_or_path)
    where = f" (looked in {runs_dir})" if runs_dir is not None else ""
    raise TrainingError(f"no run {name_or_path!r}{where}: give a run folder or the name of one in the runs folder")


def summarize(view: Any) -> tuple[RunSummary, dict[str, Any]]:
    """A run's summary (settings left empty) and its flattened config."""
    from studio.events import Finished

    try:
        cfg = view.config
        flat = flatten(cfg.to_dict())
        method = getattr(cfg.train, "method", "sft")
        model = cfg.model.name_or_path
        data = ", ".join(Path(s.path).name or s.path for s in cfg.data.sources)
    except Exception:  # noqa: BLE001 - a damaged config still shows the run's events
        flat, method, model, data = {}, "?", view.model or "?", "?"
    results = view.eval_results
    metrics = {}
    for side in ("base", "tuned"):
        for key, value in (results.get(side) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"{side}.{key}"] = value
    finished = view.last(Finished)
    train_loss = finished.train_loss if finished and finished.train_loss is not None else view.final_loss
    summary = RunSummary(name=view.name, path=str(view.path), status=view.status, method=method, model=model,
                         data=data, steps=view.step, train_loss=train_loss, eval_loss=view.eval_loss,
                         runtime_s=finished.runtime_s if finished else None, metrics=metrics)
    return summary, flat


def compare_runs(names: Iterable[str | Path], runs_dir: str | Path | None = None) -> Comparison:
    """The comparison table of the named runs, in the order given.

    Raises:
        TrainingError: a name that is not a run (named).
        ConfigError: no run named.
    """
    from studio.runs import load_run

    paths = [resolve_run(n, runs_dir) for n in names]
    if not paths:
        raise ConfigError("name at least one run to compare")
    rows, flats = [], []
    for p in paths:
        summary, flat = summarize(load_run(p))
        rows.append(summary)
        flats.append(flat)
    keys = sorted({k for f in flats for k in f} - set(IGNORED_SETTINGS))
    differing = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1] if len(flats) > 1 else []
    for summary, flat in zip(rows, flats):
        summary.settings = {k: flat.get(k) for k in differing}
    return Comparison(rows, differing)


def curves(names: Iterable[str | Path], runs_dir: str | Path | None = None) -> dict[str, dict[str, list]]:
    """``{run name: {"train": [(step, loss)], "eval": [(step, loss)]}}`` for overlaid loss charts."""
    from studio.runs import load_run

    out = {}
    for n in names:
        view = load_run(resolve_run(n, runs_dir))
        out[view.name] = {"train": view.losses(), "eval": view.eval_losses()}
    return out


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _not_live(path: Path, doing: str) -> None:
    from studio.runs import load_run

    if load_run(path).status == "running":
        raise TrainingError(f"{path.name} is training right now: stop it before you {doing} it")


def delete_run(name_or_path: str | Path, runs_dir: str | Path | None = None) -> Path:
    """Remove a run folder (refused for a live run). Returns the path removed.

    Raises:
        TrainingError: no such run, or it is training.
    """
    path = resolve_run(name_or_path, runs_dir)
    _not_live(path, "delete")
    shutil.rmtree(path)
    return path


def rename_run(name_or_path: str | Path, new_name: str, runs_dir: str | Path | None = None) -> Path:
    """Rename a run folder in place (refused for a live run, a taken name or an unsafe one). Returns the new path.

    Raises:
        TrainingError: no such run, or it is training.
        ConfigError: the new name is not a plain folder name, or a run already has it.
    """
    from studio import runs
    from studio.config import load_config

    path = resolve_run(name_or_path, runs_dir)
    new_name = (new_name or "").strip()
    if not _NAME.match(new_name):
        raise ConfigError(f"a run name is letters, digits, '.', '_' and '-' (up to 100, no '/'), got {new_name!r}")
    target = path.parent / new_name
    if target.exists():
        raise ConfigError(f"{target} already exists: pick another name")
    _not_live(path, "rename")
    path.rename(target)
    stamp = (target / runs.CONFIG).stat()
    try:  # the config names the run too, so `studio train --config <run>/config.yaml` repeats it under the new name
        cfg = load_config(target / runs.CONFIG)
        cfg.train.run_name = new_name
        cfg.save(target / runs.CONFIG)
        os.utime(target / runs.CONFIG, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # keeps its place in the list
    except Exception:  # noqa: BLE001 - the folder is renamed; the old name in the config is harmless
        pass
    return target
