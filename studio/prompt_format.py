"""The prompt format a run trained with, saved in its run folder so every later step renders prompts exactly as
trained, even when the data file has moved or is gone.

``prompt_format.json`` holds the resolved format and column mapping, the text template and response template,
the system prompt (as configured, and the default one chat prompts start with), ``loss_on``, ``max_length``, the
chat template text actually used (None when rows were not rendered with one) and the special tokens.
``heldout.jsonl`` holds the held-out rows, so evaluation needs no data either. Both are written when training
starts (:func:`save_for_run`) and read through :mod:`studio.runs`; older run folders have neither, and callers
fall back to detecting the format from the data as before.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1


@dataclass(frozen=True)
class PromptFormat:
    """Everything needed to render a prompt exactly as a run trained."""

    format: str
    mapping: dict[str, str]
    template: str | None = None
    response_template: str | None = None
    system_prompt: str | None = None
    """The configured system prompt (added to chat-formatted rows)."""
    default_system_prompt: str | None = None
    """The system prompt chat prompts start with: the configured one, else the data's first system message."""
    loss_on: str = "completion"
    max_length: int = 1024
    chat_template: str | None = None
    """The chat template text rows were rendered with; None when they were not rendered with one."""
    eos_token: str | None = None
    bos_token: str | None = None
    add_bos: bool = False
    """The tokenizer puts ``bos_token`` in front of every encoded prompt."""
    model_chat_template: str = "model"
    """The run's ``model.chat_template`` choice (model, chatml or none)."""
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_chat(self) -> bool:
        return self.template is None and self.format != "text" and self.chat_template is not None

    def spec(self) -> Any:
        """The :class:`~studio.data.RenderSpec` of the run (its chat template pinned to the trained text)."""
        from studio.data import RenderSpec

        return RenderSpec(format=self.format, mapping=dict(self.mapping), template=self.template,
                          response_template=self.response_template, system_prompt=self.system_prompt,
                          loss_on=self.loss_on, max_length=self.max_length,
                          chat_template=self.chat_template if self.uses_chat else None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PromptFormat":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _template_text(tokenizer: Any) -> str | None:
    value = getattr(tokenizer, "chat_template", None)
    if isinstance(value, dict):  # named templates: the default one is what apply_chat_template uses
        value = value.get("default")
    return value if isinstance(value, str) and value else None


def _adds_bos(tokenizer: Any) -> bool:
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    try:
        ids = tokenizer("a")["input_ids"]
    except Exception:  # noqa: BLE001 - a tokenizer that can't encode "a" adds nothing we can see
        return False
    return bool(ids) and ids[0] == bos


def capture(cfg: Any, spec: Any, tokenizer: Any, default_system: str | None = None) -> PromptFormat:
    """The PromptFormat of a run from its config, its RenderSpec and its tokenizer (chat template installed)."""
    chat = _template_text(tokenizer) if spec.uses_chat(tokenizer) else None
    if spec.chat_template and spec.uses_chat(tokenizer):
        chat = spec.chat_template
    return PromptFormat(format=spec.format, mapping=dict(spec.mapping), template=spec.template,
                        response_template=spec.response_template, system_prompt=spec.system_prompt,
                        default_system_prompt=cfg.data.system_prompt or default_system or None,
                        loss_on=spec.loss_on, max_length=spec.max_length, chat_template=chat,
                        eos_token=getattr(tokenizer, "eos_token", None),
                        bos_token=getattr(tokenizer, "bos_token", None),
                        add_bos=_adds_bos(tokenizer), model_chat_template=cfg.model.chat_template)


def first_system_message(loaded: Any, spec: Any) -> str | None:
    """The first row's system message of a chat dataset (what chat prompts default to), else None."""
    if loaded is None or spec.format != "messages" or not len(loaded.dataset):
        return None
    from studio.data.formats import normalize_messages

    first = normalize_messages(loaded.dataset[0][spec.mapping["messages"]])
    return first[0]["content"] if first and first[0]["role"] == "system" else None


def save_for_run(run_dir: str | Path, cfg: Any, tokenizer: Any, spec: Any, loaded: Any = None) -> PromptFormat:
    """Write ``prompt_format.json`` and ``heldout.jsonl`` into a run folder (data loaded here when not given).

    Raises:
        DataError: the data can't be loaded.
    """
    from studio import runs
    from studio.data import load_data, split_rows

    loaded = loaded if loaded is not None else load_data(cfg.data)
    fmt = capture(cfg, spec, tokenizer, first_system_message(loaded, spec))
    runs.save_prompt_format(run_dir, fmt.to_dict())
    _, held = split_rows(cfg.data, loaded)
    if held is not None and len(held):
        runs.save_heldout(run_dir, (held[i] for i in range(len(held))))
    return fmt


def load(run_dir: str | Path | None) -> PromptFormat | None:
    """The saved PromptFormat of a run folder, or None (an older run, or none saved)."""
    if run_dir is None:
        return None
    from studio import runs

    data = runs.load_prompt_format(run_dir)
    if not data:
        return None
    try:
        return PromptFormat.from_dict(data)
    except (TypeError, ValueError):
        return None


def heldout(run_dir: str | Path | None) -> Any:
    """The saved held-out rows of a run as a ``datasets.Dataset``, or None when there are none."""
    if run_dir is None:
        return None
    from studio import runs

    rows = runs.load_heldout(run_dir)
    if not rows:
        return None
    import datasets

    return datasets.Dataset.from_list(rows)
