"""What the Chat tab shows about a run, read from its folder (no gradio): its system prompt, an answer budget that
fits its data, and the probe timeline."""
from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any

from studio.errors import StudioError

DEFAULT_MAX_NEW_TOKENS = 256
"""Before a run is picked; a picked run sets the budget from its data's answers (``answer_budget``)."""


def system_prompt_of(source: str | None) -> str:
    """The system prompt a run trained with (its config), or empty."""
    if not source:
        return ""
    from studio import runs
    from studio.config import load_config

    cfg_file = Path(source) / runs.CONFIG
    try:
        return load_config(cfg_file).data.system_prompt or "" if cfg_file.exists() else ""
    except StudioError:
        return ""


def answer_budget(source: str | None, cache: dict | None = None) -> int:
    """Max new tokens for a run: enough for its data's long answers (``studio.data.checks.answer_token_budget``),
    or ``DEFAULT_MAX_NEW_TOKENS`` when the run or its data cannot be read. ``cache`` maps run dir -> budget."""
    if not source:
        return DEFAULT_MAX_NEW_TOKENS
    key = str(Path(source).resolve())
    if cache is not None and key in cache:
        return cache[key]
    from studio import runs
    from studio.config import load_config

    budget = DEFAULT_MAX_NEW_TOKENS
    cfg_file = Path(source) / runs.CONFIG
    if cfg_file.exists():
        try:
            from studio.data import load_data
            from studio.data.checks import answer_token_budget

            cfg = load_config(cfg_file)
            budget = answer_token_budget(load_data(cfg.data), _tokenizer(cfg))
        except Exception:  # noqa: BLE001 - a budget is a default, never an error
            budget = DEFAULT_MAX_NEW_TOKENS
    if cache is not None:
        cache[key] = budget
    return budget


def probe_timeline(source: str | None) -> str:
    """Markdown: each probe prompt with its answers by step (step 0 is the base model), from the run's events."""
    if not source or not (Path(source) / "events.jsonl").exists():
        return "_Pick a run to see how its answers to the probe prompts changed during training._"
    from studio.probes import probe_timeline as timeline

    try:
        by_prompt = timeline(source)
    except (StudioError, OSError, ValueError):
        by_prompt = {}
    if not by_prompt:
        return ("_This run recorded no probe answers. Add probe prompts under **Train → More settings** to see "
                "the answers change at every checkpoint._")
    parts = []
    for prompt, steps in by_prompt.items():
        parts.append(f"**{_md(prompt)}**\n\n| Step | Answer |\n|---:|:---|")
        for step, answer in steps:
            parts.append(f"| {'base' if step == 0 else step} | {_md(answer).replace(chr(10), ' ⏎ ') or '∅'} |")
        parts.append("")
    return "\n".join(parts)


def _md(text: str) -> str:
    return html.escape(text or "").replace("|", "\\|").strip()


def _tokenizer(cfg: Any) -> Any:
    """The run's tokenizer (to count answer tokens), or None when it cannot be loaded here."""
    try:
        from studio.modeling import find_preset, model_id
        from studio.modeling.tokenizer import load_tokenizer

        preset = find_preset(cfg.model.name_or_path)
        tok, _ = load_tokenizer(dataclasses.replace(cfg.model, name_or_path=model_id(cfg.model)),
                                pad_token=preset.pad_token if preset else None)
        return tok
    except Exception:  # noqa: BLE001 - then characters are counted instead
        return None
