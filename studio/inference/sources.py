"""Where an adapter comes from: a run directory, a checkpoint or adapter folder, or a Hub id, and its peft name."""
from __future__ import annotations

import re
from pathlib import Path

from studio.errors import ModelError


def adapter_name_for(source: str | Path) -> str:
    """A peft-safe adapter name from a run folder, adapter folder or Hub id."""
    path = Path(str(source))
    if path.name in ("adapter",) or path.name.startswith("checkpoint-"):
        text = f"{path.parent.name}-{path.name}" if path.name != "adapter" else path.parent.name
        if path.parent.name == "checkpoints":
            text = f"{path.parent.parent.name}-{path.name}"
    else:
        text = path.name or str(source)
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "adapter"


def resolve_adapter_source(source: str | Path) -> tuple[str, Path | None]:
    """``(adapter folder or Hub id, run dir or None)`` for a run directory, a checkpoint, a folder or a Hub id.

    A run directory gives its ``adapter/`` (or its newest checkpoint while it has no final adapter yet).

    Raises:
        ModelError: a local folder without an adapter.
    """
    from studio import runs

    path = Path(str(source)).expanduser()
    if not path.exists():
        if str(source).count("/") == 1 and not str(source).startswith((".", "/", "~")):
            return str(source), None  # a Hub id
        raise ModelError(f"adapter {source} not found: give a run directory, an adapter folder or a Hub id")
    if (path / runs.CONFIG).exists():
        adapter = path / runs.ADAPTER
        if not (adapter / "adapter_config.json").exists():
            ckpt = runs.last_checkpoint(path) or next(iter(reversed(runs.checkpoints(path))), None)
            if ckpt is None or not (ckpt / "adapter_config.json").exists():
                raise ModelError(f"run {path.name} has no adapter yet (no adapter/ and no checkpoint); wait for "
                                 f"its first checkpoint or pick a finished run")
            adapter = ckpt
        return str(adapter), path
    if (path / "adapter_config.json").exists():
        run = path.parent if (path.parent / runs.CONFIG).exists() else \
            path.parent.parent if (path.parent.parent / runs.CONFIG).exists() else None
        return str(path), run
    raise ModelError(f"{path} holds no adapter (adapter_config.json); give a run directory or an adapter folder")
