"""Checks on loaded data that a person must see before training: empty answers, a template that does not fit the
file's real header. Plain functions over ``LoadedData`` (no tokenizer needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

ANSWER_ROLE = {"prompt_completion": "completion", "instruction": "output"}
"""The role that holds the answer, per format (``messages`` rows are checked turn by turn)."""


def _blank(value: Any) -> bool:
    return value is None or not str(value).strip()


def empty_answers(loaded: Any) -> int:
    """How many rows have an empty answer: an empty completion/output cell, or no assistant turn with text."""
    ds = loaded.dataset
    if loaded.format == "messages":
        col = loaded.mapping.get("messages")
        if not col or col not in ds.column_names:
            return 0
        return sum(1 for turns in ds[col] if not any(
            isinstance(t, dict) and t.get("role") == "assistant" and not _blank(t.get("content"))
            for t in (turns or [])))
    col = loaded.mapping.get(ANSWER_ROLE.get(loaded.format, ""), "")
    if not col or col not in ds.column_names:
        return 0
    return sum(1 for v in ds[col] if _blank(v))


def empty_answer_warning(loaded: Any) -> str | None:
    """The sentence for :func:`empty_answers`, or None when every row has an answer."""
    n = empty_answers(loaded)
    if not n:
        return None
    what = "no assistant turn with text" if loaded.format == "messages" else \
        f"an empty `{loaded.mapping.get(ANSWER_ROLE.get(loaded.format, ''), 'answer')}` column"
    return (f"{n} of {len(loaded.dataset)} rows have {what}: they teach the model nothing (or to answer with "
            f"nothing); fill them in or remove them.")


def template_mismatch(template: str | None, header: Sequence[str], mapping: dict[str, str] | None = None,
                      source: str = "the file") -> str | None:
    """A sentence naming the template's placeholders that the file's header lacks, or None when it fits.

    ``header`` is the file's real column names; ``mapping`` (role -> column) adds the role names a template may
    use ({prompt}, {completion}, …) and ``{system}`` is always allowed.
    """
    if not template:
        return None
    from studio.errors import TemplateError
    from studio.templates import placeholders

    try:
        names = placeholders(template)
    except TemplateError as err:
        return str(err)
    allowed = set(header) | set(mapping or {}) | {"system"}
    missing = [n for n in names if n not in allowed]
    if not missing:
        return None
    name = Path(source).name or source
    cols = ", ".join(f"`{c}`" for c in header) or "no columns"
    used = ", ".join(f"{{{m}}}" for m in missing)
    return (f"The template uses {used}, but {name} has the columns {cols}. Edit the template to use those "
            f"columns, or pick \"(chat template)\" to render the rows with the model's chat template.")
