"""Start a run from an earlier run's adapter (``train.start_from``; the usual recipe is SFT, then DPO): check the
earlier run fits (same base model, an adapter saved), keep its prompt format, and load its adapter as the one this
run trains. For DPO/KTO, and GRPO with ``kl_beta`` > 0, TRL 1.16 then copies it into a frozen ``ref`` adapter: the
reference is the earlier run's model (not the bare base), still one copy of the base weights; saves keep the trained
adapter only (:func:`save_trained_adapter_only`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio import runs
from studio.errors import ConfigError

LOG = logging.getLogger("studio.training")


@dataclass(frozen=True)
class StartFrom:
    """The earlier run a run continues."""

    run_dir: Path
    adapter: Path
    base_model: str
    method: str

    def to_dict(self) -> dict[str, str]:
        return {"run_dir": str(self.run_dir), "adapter": str(self.adapter), "base_model": self.base_model,
                "method": self.method}


def _same_model(a: str, b: str) -> bool:
    from studio.modeling import find_preset

    def key(name: str) -> str:
        preset = find_preset(name)
        return str(getattr(preset, "name", None) or name).strip().rstrip("/").lower()

    try:
        return key(a) == key(b)
    except Exception:  # noqa: BLE001 - an unknown name compares as typed
        return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def resolve_start(cfg: Any) -> StartFrom | None:
    """The earlier run of ``cfg.train.start_from`` (None when unset), checked.

    Raises:
        ConfigError: not a run folder, no saved adapter, or another base model (both named).
    """
    where = cfg.train.start_from
    if not where:
        return None
    from studio.config import load_config

    run_dir = Path(where).expanduser()
    if run_dir.name in (runs.ADAPTER, runs.CONFIG):
        run_dir = run_dir.parent
    if not (run_dir / runs.CONFIG).is_file():
        raise ConfigError(f"train.start_from: {where} is not a run folder (no {runs.CONFIG})")
    adapter = run_dir / runs.ADAPTER
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"train.start_from: {run_dir} has no saved adapter ({adapter}); pick a run that finished "
                          f"or was stopped")
    earlier = load_config(run_dir / runs.CONFIG)
    if not _same_model(earlier.model.name_or_path, cfg.model.name_or_path):
        raise ConfigError(f"train.start_from: {run_dir.name} was trained on {earlier.model.name_or_path}, not on "
                          f"{cfg.model.name_or_path}; an adapter only fits the base model it was trained on")
    return StartFrom(run_dir=run_dir, adapter=adapter, base_model=earlier.model.name_or_path,
                     method=earlier.train.method)


def keep_prompt_format(cfg: Any, start: StartFrom) -> list[str]:
    """Take the earlier run's chat template and system prompt where this run leaves them at their defaults, so the
    continued adapter sees the prompts it learned; returns what was kept, in words."""
    from studio.config import load_config

    earlier = load_config(start.run_dir / runs.CONFIG)
    kept = []
    if cfg.model.chat_template == "model" and earlier.model.chat_template != "model":
        cfg.model.chat_template = earlier.model.chat_template
        kept.append(f"model.chat_template={earlier.model.chat_template}")
    if not cfg.data.system_prompt and earlier.data.system_prompt:
        cfg.data.system_prompt = earlier.data.system_prompt
        kept.append("data.system_prompt")
    for what in kept:
        LOG.info("start_from %s: kept its %s", start.run_dir.name, what)
    return kept


def load_trainable(model: Any, start: StartFrom) -> Any:
    """``model`` with the earlier run's adapter loaded as the trainable ``default`` adapter (a PeftModel)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(start.adapter), is_trainable=True)


REFERENCE_ADAPTER = "ref"
"""The name TRL gives the frozen copy of a loaded adapter (the DPO/KTO/GRPO reference)."""


def save_trained_adapter_only(model: Any) -> None:
    """Make ``model.save_pretrained`` (the run's adapter folder and its checkpoints) leave TRL's frozen reference
    copy out: a saved run holds the adapter it trained, not a ``ref/`` duplicate of where it started. A model
    without a reference adapter is left as it is."""
    adapters = getattr(model, "peft_config", None)
    if not isinstance(adapters, dict) or REFERENCE_ADAPTER not in adapters:
        return
    save = model.save_pretrained

    def save_pretrained(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("selected_adapters", [name for name in adapters if name != REFERENCE_ADAPTER])
        return save(*args, **kwargs)

    model.save_pretrained = save_pretrained
