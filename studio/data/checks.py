"""Checks on loaded data that training would otherwise take silently: CSV delimiters, empty answers, a template
that does not fit the file's real header, and the answer length a chat reply needs. Plain functions, no gradio."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

DELIMITERS = ",;\t|"
ANSWER_ROLES = ("completion", "output")


def csv_delimiter(path: str | Path, default: str = ",") -> str:
    """The delimiter of a CSV file, sniffed from its first lines (``;`` from a European spreadsheet, tabs...).

    The header decides when the sniffer can't: the candidate that splits it into the most fields wins.
    """
    with Path(path).open(encoding="utf-8", errors="replace", newline="") as fh:
        sample = fh.read(64 * 1024)
    lines = [ln for ln in sample.splitlines() if ln.strip()]
    if not lines:
        return default
    try:
        found = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=DELIMITERS).delimiter
    except csv.Error:
        found = None
    header = lines[0]
    counts = {d: len(next(csv.reader([header], delimiter=d))) for d in DELIMITERS}
    if found and counts.get(found, 1) > 1:
        return found
    best = max(counts, key=lambda d: (counts[d], d == default))
    return best if counts[best] > 1 else default


def empty_answers(dataset: Any, fmt: str, mapping: dict[str, str]) -> tuple[int, str]:
    """``(rows whose answer is empty, the column)``: such rows teach the model to stop at once."""
    names = set(dataset.column_names)
    if fmt == "messages" and mapping.get("messages") in names:
        col = mapping["messages"]
        n = 0
        for msgs in dataset.with_format("arrow")[col].to_pylist():
            last = next((m for m in reversed(msgs or []) if isinstance(m, dict)
                         and (m.get("role") or m.get("from")) in ("assistant", "gpt", "bot", "model")), None)
            text = (last or {}).get("content", (last or {}).get("value"))
            n += last is not None and not str(text or "").strip()
        return n, col
    for role in ANSWER_ROLES:
        col = mapping.get(role)
        if col in names:
            values = dataset.with_format("arrow")[col].to_pylist()
            return sum(1 for v in values if v is None or not str(v).strip()), col
    return 0, ""


ANSWER_ROLE = {"prompt_completion": "completion", "instruction": "output"}
"""The role that holds the answer, per format (``messages`` rows are checked turn by turn)."""


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
    return token_budget(answers(loaded), tokenizer, floor=floor, cap=cap)


def token_budget(texts: Sequence[str | None], tokenizer: Any = None, *, floor: int = 64, cap: int = 1024) -> int:
    """New tokens for answers like ``texts`` (95th percentile of their lengths plus a quarter, a multiple of 32,
    within ``floor``..``cap``); token counts with ``tokenizer``, else estimated from characters."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        return floor
    if tokenizer is not None:
        lengths = sorted(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    else:
        lengths = sorted(-(-len(t) // CHARS_PER_TOKEN_FLOOR) for t in texts)
    p95 = lengths[min(len(lengths) - 1, int(round(0.95 * (len(lengths) - 1))))]
    need = -(-int(p95 * 1.25 + 1) // 32) * 32
    return max(floor, min(cap, need))
