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


def answers(loaded: Any) -> list[str]:
    """Every row's answer text (completion / output / assistant turns joined)."""
    ds = loaded.dataset
    if loaded.format == "messages":
        col = loaded.mapping.get("messages")
        if not col or col not in ds.column_names:
            return []
        return ["\n".join(str(t.get("content") or "") for t in (turns or [])
                          if isinstance(t, dict) and t.get("role") == "assistant") for turns in ds[col]]
    col = loaded.mapping.get(ANSWER_ROLE.get(loaded.format, ""), "")
    if not col or col not in ds.column_names:
        return []
    return ["" if v is None else str(v) for v in ds[col]]


CHARS_PER_TOKEN_FLOOR = 2
"""Without a tokenizer, an answer is taken to need one token per this many characters (BPE tokenizers average
3-4 on English, so this errs on the long side)."""


def answer_token_budget(loaded: Any, tokenizer: Any = None, *, floor: int = 64, cap: int = 1024) -> int:
    """New tokens that let an answer like the data's longest usual ones (the 95th percentile, plus a quarter)
    finish, rounded up to a multiple of 32 and kept within ``floor``..``cap``."""
    texts = [t for t in answers(loaded) if t.strip()]
    if not texts:
        return floor
    if tokenizer is not None:
        lengths = sorted(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    else:
        lengths = sorted(-(-len(t) // CHARS_PER_TOKEN_FLOOR) for t in texts)
    p95 = lengths[min(len(lengths) - 1, int(round(0.95 * (len(lengths) - 1))))]
    need = -(-int(p95 * 1.25 + 1) // 32) * 32
    return max(floor, min(cap, need))
