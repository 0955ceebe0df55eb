"""Run directories: what one training run leaves on disk, and the run list the UI shows.

```
runs/<name>/
  config.yaml        the RunConfig (``studio train --config runs/<name>/config.yaml`` repeats the run)
  events.jsonl       one JSON event per line (studio.events)
  environment.json   package versions, device, GPU, data fingerprint, and ``loaded``: read back from the model
  prompt_format.json how prompts were rendered (format, mapping, templates, system prompt, chat template text)
  heldout.jsonl      the held-out rows (evaluation needs no data file)
  eval_results.json  the last saved evaluation (base vs tuned), when one was run
  adapter/           the LoRA adapter + tokenizer files + chat template (written at the end / on stop)
  checkpoints/       checkpoint-<step>/ (adapter, optimizer, scheduler, trainer state): resumable
  train.log          warnings and tracebacks
  tensorboard/       TensorBoard event files (optional)
```
Only the main process (rank 0) writes; see :func:`is_main_process`.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import TrainingError

CONFIG = "config.yaml"
EVENTS = "events.jsonl"
ENVIRONMENT = "environment.json"
ADAPTER = "adapter"
CHECKPOINTS = "checkpoints"
TRAIN_LOG = "train.log"
TENSORBOARD = "tensorboard"
PROMPT_FORMAT = "prompt_format.json"
HELDOUT = "heldout.jsonl"
EVAL_RESULTS = "eval_results.json"
"""Where a run keeps its saved ``EvalReport`` (``report.save(run_dir / EVAL_RESULTS)``)."""


def rank() -> int:
    """Global rank of this process (0 without torchrun/accelerate)."""
    return int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_main_process() -> bool:
    return rank() == 0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip()).strip("-.")[:60] or "run"


def new_run_name(cfg: Any) -> str:
    """``cfg.train.run_name`` or ``<YYYYmmdd-HHMMSS>-<model>``."""
    if cfg.train.run_name:
        return _slug(cfg.train.run_name)
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(cfg.model.name_or_path.rstrip('/').split('/')[-1])}"


def create_run_dir(cfg: Any, runs_dir: str | Path) -> Path:
    """Make a fresh run directory (a ``-2``, ``-3``... suffix when the name is taken) and write config.yaml.

    Under several processes only rank 0 creates it; every rank gets the same path (rank 0's name is broadcast).
    """
    runs_dir = Path(runs_dir)
    name = new_run_name(cfg)
    path = None
    if is_main_process():
        from studio.diskspace import storage_error

        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            if not os.access(runs_dir, os.W_OK | os.X_OK):
                raise PermissionError(13, "read-only", str(runs_dir))
        except OSError as exc:
            raise storage_error(exc, runs_dir, "runs folder") from None
        path, n = runs_dir / name, 1
        try:
            while True:
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    n += 1
                    path = runs_dir / f"{name}-{n}"
            (path / CHECKPOINTS).mkdir()
            cfg.save(path / CONFIG)
        except OSError as exc:
            raise storage_error(exc, path, "run folder") from None
    if world_size() > 1:
        path = Path(_broadcast(str(path) if path else None))
    return path


def _broadcast(value: Any) -> Any:
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())  # the process group from the torchrun environment
    if not dist.is_initialized():  # pragma: no cover - WORLD_SIZE set without a launcher
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def write_environment(run_dir: Path, info: dict[str, Any]) -> None:
    if is_main_process():
        (Path(run_dir) / ENVIRONMENT).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")


def save_prompt_format(run_dir: str | Path, data: dict[str, Any]) -> None:
    """Write ``prompt_format.json`` (see :mod:`studio.prompt_format`)."""
    if is_main_process():
        (Path(run_dir) / PROMPT_FORMAT).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n",
                                                   encoding="utf-8")


def load_prompt_format(run_dir: str | Path) -> dict[str, Any] | None:
    """The saved prompt format of a run, or None (an older run folder, or an unreadable file)."""
    try:
        data = json.loads((Path(run_dir) / PROMPT_FORMAT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save_heldout(run_dir: str | Path, rows: Any) -> None:
    """Write the held-out rows (dicts) as ``heldout.jsonl``."""
    if not is_main_process():
        return
    with (Path(run_dir) / HELDOUT).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def load_heldout(run_dir: str | Path) -> list[dict[str, Any]] | None:
    """The saved held-out rows, or None when the run saved none.

    Raises:
        DamagedFileError: the file is cut short or not JSON lines of objects.
    """
    from studio.damage import damaged, reading

    path = Path(run_dir) / HELDOUT
    todo = "delete it and Studio splits the held-out rows again from the run's data"
    try:
        with reading(path, todo):
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return None
    if not all(isinstance(r, dict) for r in rows):
        raise damaged(path, todo)
    return rows


def checkpoints(run_dir: str | Path) -> list[Path]:
    """``checkpoints/checkpoint-<step>`` folders, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    found = [p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def checkpoint_complete(path: str | Path, *, thorough: bool = False) -> bool:
    """A checkpoint a resume can load: its trainer_state.json parses and its weights, optimizer and scheduler files
    read back (a crash or a full disk while saving leaves one cut short); ``thorough`` also reads every member of
    the torch files (what a resume does)."""
    from studio.damage import first_damaged

    path = Path(path)
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    weights = [p for p in path.glob("adapter_model.*") if p.suffix in (".safetensors", ".bin")]
    weights += [p for p in path.glob("model*.safetensors")]
    try:
        if weights and not all(p.stat().st_size > 0 for p in weights):
            return False
    except OSError:
        return False
    return first_damaged(path, json_names=("adapter_config.json",), crc=thorough) is None


def last_checkpoint(run_dir: str | Path, *, thorough: bool = False) -> Path | None:
    """The newest complete checkpoint (see :func:`checkpoint_complete`), or None."""
    for path in reversed(checkpoints(run_dir)):
        if checkpoint_complete(path, thorough=thorough):
            return path
    return None


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object file as a dict; {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class RunView:
    """One run directory read once, typed: its events (``studio.events``), environment, status and files.

    The one reader of a run folder: the run list, the Train tab, the CLI and the Hub export all use it.
    """

    path: Path
    status: str
    """running, finished, stopped, failed, interrupted (the process died), or new."""
    created: float
    events: list[Any] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    """Why it stopped or failed ("" otherwise)."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def config(self) -> Any:
        from studio.config import load_config

        return load_config(self.config_path)

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS

    @property
    def adapter_dir(self) -> Path:
        return self.path / ADAPTER

    @property
    def adapter_path(self) -> Path | None:
        """The saved adapter folder, or None before the run saved one."""
        return self.adapter_dir if (self.adapter_dir / "adapter_config.json").exists() else None

    @property
    def adapter_config(self) -> dict[str, Any]:
        return read_json(self.adapter_dir / "adapter_config.json")

    @property
    def eval_results(self) -> dict[str, Any]:
        """The saved ``EvalReport`` (``eval_results.json``), or {}."""
        return read_json(self.path / EVAL_RESULTS)

    @property
    def checkpoint_path(self) -> Path | None:
        return last_checkpoint(self.path)

    def of(self, cls: Any) -> list[Any]:
        """The events of a class (or a tuple of classes), oldest first."""
        return [e for e in self.events if isinstance(e, cls)]

    def last(self, cls: Any) -> Any:
        """The newest event of a class (or a tuple of classes), or None."""
        return next((e for e in reversed(self.events) if isinstance(e, cls)), None)

    @property
    def model(self) -> str:
        from studio.events import Started

        started = self.last(Started)
        return started.model if started else ""

    @property
    def total_steps(self) -> int:
        from studio.events import Started

        started = self.last(Started)
        return started.total_steps if started else 0

    @property
    def step(self) -> int:
        """The step it ended at (finished, stopped), else the last logged step (or the step it started from)."""
        from studio.events import Failed, Finished, Log, Started, Stopped

        terminal = self.last((Finished, Stopped, Failed, Started))
        if isinstance(terminal, (Finished, Stopped)):
            return terminal.step
        log, started = self.last(Log), self.last(Started)
        return log.step if log else started.start_step if started else 0

    @property
    def progress(self) -> float:
        """0..1 of the planned steps (1 once finished)."""
        if self.status == "finished":
            return 1.0
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def final_loss(self) -> float | None:
        from studio.events import Log

        log = self.last(Log)
        return log.loss if log else None

    @property
    def eval_loss(self) -> float | None:
        from studio.events import Eval

        ev = self.last(Eval)
        return ev.eval_loss if ev else None

    def losses(self) -> list[tuple[int, float]]:
        """``(step, train loss)`` pairs (for the loss chart, its overlays and the model card)."""
        from studio.events import Log

        return [(e.step, e.loss) for e in self.of(Log) if _finite(e.loss)]

    def eval_losses(self) -> list[tuple[int, float]]:
        from studio.events import Eval

        return [(e.step, e.eval_loss) for e in self.of(Eval) if _finite(e.eval_loss)]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _alive(path: Path, env: dict[str, Any]) -> bool:
    """The run's process runs: its ``process.json`` (pid and start time, the app's child) or else the pid its
    ``environment.json`` names (a run started from a shell)."""
    from studio.liveness import read_process, record_alive

    record = read_process(path)
    if record:
        return record_alive(record)
    return bool(env.get("pid")) and _pid_alive(env.get("pid"))


def load_run(run_dir: str | Path) -> RunView:
    """Read a run directory (events, environment; the config on demand) into a :class:`RunView`.

    A line cut short by a crash (a run still writing) is skipped; events of an unknown type become notes.

    Raises:
        TrainingError: the folder is not a run directory.
    """
    from studio.events import EventLog, Failed, Finished, Started, Stopped

    path = Path(run_dir)
    if not (path / CONFIG).is_file():
        raise TrainingError(f"{path} is not a run directory (no {CONFIG})")
    events = EventLog.read(path / EVENTS).all()
    env = read_json(path / ENVIRONMENT)
    view = RunView(path=path, status="new", created=(path / CONFIG).stat().st_mtime, events=events,
                   environment=env)
    terminal = view.last((Finished, Stopped, Failed, Started))
    if isinstance(terminal, Finished):
        view.status = "finished"
    elif isinstance(terminal, Stopped):
        view.status, view.message = "stopped", f"stopped at step {terminal.step}"
    elif isinstance(terminal, Failed):
        view.status, view.message = "failed", terminal.message
    elif _alive(path, env):
        view.status = "running"
    elif isinstance(terminal, Started):
        view.status = "interrupted"
    elif env.get("pid") or (path / "process.json").exists():  # its process began preparing, then died
        view.status = "interrupted"
        view.message = "ended while loading the data or the model, before training started"
    return view


def list_runs(runs_dir: str | Path) -> list[RunView]:
    """Every run directory under ``runs_dir``, newest first (unreadable folders are skipped)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    out = []
    for child in root.iterdir():
        if child.is_dir() and (child / CONFIG).exists():
            try:
                out.append(load_run(child))
            except (TrainingError, OSError):
                continue
    return sorted(out, key=lambda r: (r.created, r.name), reverse=True)
