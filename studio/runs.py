"""Run directories: what one training run leaves on disk, and the run list the UI shows.

```
runs/<name>/
  config.yaml        the RunConfig (``studio train --config runs/<name>/config.yaml`` repeats the run)
  events.jsonl       one JSON event per line (studio.events)
  environment.json   package versions, device, GPU, data fingerprint, and ``loaded``: read back from the model
  prompt_format.json how prompts were rendered (format, mapping, templates, system prompt, chat template text)
  heldout.jsonl      the held-out rows (evaluation needs no data file)
  adapter/           the LoRA adapter + tokenizer files + chat template (written at the end / on stop)
  checkpoints/       checkpoint-<step>/ (adapter, optimizer, scheduler, trainer state): resumable
  train.log          warnings and tracebacks
  tensorboard/       TensorBoard event files (optional)
```
Only the main process (rank 0) writes; see :func:`is_main_process`.
"""
from __future__ import annotations

import json
import os
import platform
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

PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes", "tokenizers",
            "flash-attn", "liger-kernel", "gradio")


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


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def environment_info(device: str) -> dict[str, Any]:
    """Versions, Python, OS, device and GPU (name, memory, capability), world size."""
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "packages": package_versions(), "device": device, "world_size": world_size(),
                            "cpu_count": os.cpu_count(), "gpu": None}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_gb": round(props.total_memory / 1024 ** 3, 2),
                       "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
                       "count": torch.cuda.device_count(), "cuda": torch.version.cuda}
    return info


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
    """The saved held-out rows, or None when the run saved none."""
    try:
        lines = (Path(run_dir) / HELDOUT).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return [json.loads(line) for line in lines if line.strip()]


def checkpoints(run_dir: str | Path) -> list[Path]:
    """``checkpoints/checkpoint-<step>`` folders, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    found = [p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def checkpoint_complete(path: str | Path) -> bool:
    """A checkpoint a resume can load: its trainer_state.json parses and its weights file is not empty (a crash or
    a full disk while saving leaves one without)."""
    path = Path(path)
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    weights = [p for p in path.glob("adapter_model.*") if p.suffix in (".safetensors", ".bin")]
    weights += [p for p in path.glob("model*.safetensors")]
    try:
        return not weights or all(p.stat().st_size > 0 for p in weights)
    except OSError:
        return False


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (see :func:`checkpoint_complete`), or None."""
    for path in reversed(checkpoints(run_dir)):
        if checkpoint_complete(path):
            return path
    return None


@dataclass
class RunInfo:
    """One run directory as the run list shows it."""

    path: Path
    name: str
    status: str
    """running, finished, stopped, failed, interrupted (the process died), or new."""
    created: float
    model: str = ""
    step: int = 0
    total_steps: int = 0
    final_loss: float | None = None
    eval_loss: float | None = None
    message: str = ""
    adapter_path: Path | None = None
    checkpoint_path: Path | None = None
    environment: dict[str, Any] = field(default_factory=dict)

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

    def events(self) -> list[Any]:
        from studio.events import EventLog

        return EventLog.read(self.events_path).all()

    def losses(self) -> list[tuple[int, float]]:
        """``(step, loss)`` pairs for overlaying a run on the loss chart."""
        return [(e.step, e.loss) for e in self.events() if e.type == "log" and e.loss is not None]


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def load_run(run_dir: str | Path) -> RunInfo:
    """Read a run directory (config, events, environment) into a RunInfo.

    Raises:
        TrainingError: the folder is not a run directory.
    """
    from studio.events import Eval, EventLog, Failed, Finished, Log, Started, Stopped

    path = Path(run_dir)
    if not (path / CONFIG).exists():
        raise TrainingError(f"{path} is not a run directory (no {CONFIG})")
    log = EventLog.read(path / EVENTS)
    env: dict[str, Any] = {}
    if (path / ENVIRONMENT).exists():
        try:
            env = json.loads((path / ENVIRONMENT).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            env = {}
    started, last_log = log.last(Started), log.last(Log)
    terminal = log.last((Finished, Stopped, Failed, Started))
    status, message = "new", ""
    if isinstance(terminal, Finished):
        status = "finished"
    elif isinstance(terminal, Stopped):
        status, message = "stopped", f"stopped at step {terminal.step}"
    elif isinstance(terminal, Failed):
        status, message = "failed", terminal.message
    elif isinstance(terminal, Started):
        status = "running" if _pid_alive(env.get("pid")) else "interrupted"
    elif env.get("pid") and _pid_alive(env.get("pid")):
        status = "running"
    eval_ev = log.last(Eval)
    adapter = path / ADAPTER
    model = ""
    if started is not None:
        model = started.model
    return RunInfo(path=path, name=path.name, status=status, created=(path / CONFIG).stat().st_mtime, model=model,
                   step=(terminal.step if isinstance(terminal, (Finished, Stopped)) else
                         last_log.step if last_log else started.start_step if started else 0),
                   total_steps=started.total_steps if started else 0,
                   final_loss=(last_log.loss if last_log else None),
                   eval_loss=getattr(eval_ev, "eval_loss", None), message=message,
                   adapter_path=adapter if (adapter / "adapter_config.json").exists() else None,
                   checkpoint_path=last_checkpoint(path), environment=env)


def list_runs(runs_dir: str | Path) -> list[RunInfo]:
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
