"""The Train tab's method choice as plain values (no gradio): the one-line explanation of each method, which
method settings apply to which method, and the "continue from run …" choices with their base-model check."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.errors import ConfigError

METHODS = ("sft", "dpo", "orpo", "kto", "simpo")
BLURBS = {
    "sft": "SFT: learn to write the answers in the data (supervised; the default).",
    "dpo": "DPO: prefer the chosen answer over the rejected one, against the frozen base as reference.",
    "orpo": "ORPO: SFT on the chosen answer plus an odds-ratio penalty on the rejected one; no reference pass.",
    "kto": "KTO: single answers labelled good or bad (prompt/completion/label); no pairs needed.",
    "simpo": "SimPO: DPO without a reference: length-normalised log-probabilities with a target margin γ.",
    "grpo": "GRPO: sample several answers per prompt and reward the good ones (the #### answer, the format...).",
}
SETTINGS = {"beta": ("dpo", "orpo", "kto", "simpo"), "loss_type": ("dpo", "kto"), "simpo_gamma": ("simpo",),
            "num_generations": ("grpo",), "max_completion_length": ("grpo",), "temperature": ("grpo",),
            "kl_beta": ("grpo",), "stop_at_answer": ("grpo",), "rewards": ("grpo",),
            "start_from": ("sft", "dpo", "orpo", "kto", "simpo", "grpo")}
"""The method settings (``TrainConfig`` fields) and the methods they apply to; the method registry's own list wins
where it has one (:func:`applies`)."""
NONE_CHOICE = ("(start from the base model)", "")


def method_choices() -> list[tuple[str, str]]:
    """``(label, value)`` for the Method radio: each method with its one-line explanation."""
    return [(BLURBS.get(m, m), m) for m in _methods()]


def _methods() -> tuple[str, ...]:
    try:
        from studio.config_fields import choices_of
        from studio.config import TrainConfig

        return tuple(choices_of(TrainConfig, "method")) or METHODS
    except Exception:  # noqa: BLE001 - before the engine's config field exists
        return METHODS


def applies(name: str, method: str) -> bool:
    """Whether the train setting ``name`` means anything for ``method`` (shown only then)."""
    registry = _registry_settings(method)
    if registry is not None and name in SETTINGS and name != "start_from":
        return name in registry
    return method in SETTINGS.get(name, (method,))


def loss_choices(method: str) -> list[str]:
    """The loss variants ``method`` offers (empty: it has one loss)."""
    try:
        from studio.config import LOSS_TYPES, TrainConfig  # type: ignore[attr-defined]
        from studio.config_fields import choices_of
    except ImportError:
        return []
    own = LOSS_TYPES.get(method, ())
    return [c for c in choices_of(TrainConfig, "loss_type") if c in own]  # in the field's order


def _registry_settings(method: str) -> tuple[str, ...] | None:
    try:
        from studio.training.methods import get_method  # type: ignore[attr-defined]

        spec = get_method(method)
    except Exception:  # noqa: BLE001 - no registry (yet), or no such method
        return None
    settings = getattr(spec, "settings", None)
    return tuple(settings) if settings is not None else None


def finished_runs(runs_dir: str | Path) -> list[tuple[str, str]]:
    """``(label, run folder)`` of every finished run with a saved adapter, newest first, after the "base model"
    choice; the label names the run's method and base model."""
    from studio.runs import list_runs

    out = [NONE_CHOICE]
    for run in list_runs(runs_dir):
        if run.status != "finished" or run.adapter_path is None:
            continue
        base, method = _base_and_method(run.path)
        out.append((f"{run.name} · {method} on {base}", str(run.path)))
    return out


def _base_and_method(run_dir: str | Path) -> tuple[str, str]:
    from studio.config import load_config

    try:
        cfg = load_config(Path(run_dir) / "config.yaml")
    except Exception:  # noqa: BLE001 - an unreadable config names nothing
        return "?", "?"
    return cfg.model.name_or_path, getattr(cfg.train, "method", "sft")


def start_from_note(run_dir: str | None, base_model: str) -> tuple[str, str | None]:
    """``(note, error or None)`` for the picked run: the base it was trained on, and a refusal when that base
    differs from the Model tab's (its adapter would not fit the model loaded)."""
    if not run_dir:
        return "Starts from the base model (a fresh adapter).", None
    if not (Path(run_dir) / "config.yaml").exists():
        return "", f"The run {Path(run_dir).name!r} is not in the runs folder any more: pick another run."
    base, method = _base_and_method(run_dir)
    note = f"Continues the adapter of **{Path(run_dir).name}** ({method}), trained on base model `{base}`."
    if base != base_model:
        return note, (f"The run {Path(run_dir).name!r} was trained on {base!r}, but the Model tab loads "
                      f"{base_model!r}: pick that model, or start from the base.")
    return note, None


def check_start_from(run_dir: str | None, base_model: str) -> None:
    """Raise ``ConfigError`` when the picked run's base model differs from ``base_model``."""
    _, problem = start_from_note(run_dir, base_model)
    if problem:
        raise ConfigError(problem)


def method_of(cfg: Any) -> str:
    """The config's method (``sft`` before the engine's field exists)."""
    return getattr(getattr(cfg, "train", None), "method", "sft") or "sft"
