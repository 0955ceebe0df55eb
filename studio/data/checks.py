"""Checks on loaded rows that training would otherwise take silently: CSV delimiters, empty answers."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

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
