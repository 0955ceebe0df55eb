"""Arena votes as training data: ``prompt``/``chosen``/``rejected`` pairs that the preference methods (DPO, ORPO,
SimPO, KTO) read as they are, and edited answers as ``prompt``/``completion`` SFT rows.

A left/right vote gives one pair (the edited answer, when there is one, is the ``chosen`` side). Ties and "both
bad" carry no preference and give no pair; an edited answer from any vote gives an SFT row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from studio.arena.votes import Vote
from studio.errors import DataError


@dataclass(frozen=True)
class Exported:
    pairs_path: Path | None
    sft_path: Path | None
    pairs: int
    sft_rows: int
    skipped: int
    """Votes that gave neither (ties and both-bad without an edit, or identical answers)."""

    def line(self) -> str:
        parts = []
        if self.pairs_path is not None:
            parts.append(f"{self.pairs} preference pair(s) -> {self.pairs_path}")
        if self.sft_path is not None:
            parts.append(f"{self.sft_rows} edited answer(s) as SFT rows -> {self.sft_path}")
        if self.skipped:
            parts.append(f"{self.skipped} vote(s) without a preference skipped")
        return "; ".join(parts)


def pairs_of(votes: Iterable[Vote]) -> tuple[list[dict[str, str]], list[dict[str, str]], int]:
    """``(pairs, sft_rows, skipped)`` from votes, in vote order."""
    pairs, sft, skipped = [], [], 0
    for v in votes:
        edited = (v.edited_answer or "").strip() or None
        used = False
        if v.winner is not None and v.loser is not None:
            chosen = edited or v.winner[1]
            rejected = v.loser[1]
            if chosen.strip() and chosen.strip() != rejected.strip():
                pairs.append({"prompt": v.prompt, "chosen": chosen, "rejected": rejected})
                used = True
        if edited:
            sft.append({"prompt": v.prompt, "completion": edited})
            used = True
        skipped += not used
    return pairs, sft, skipped


def export_votes(votes: list[Vote], out: str | Path, *, sft_out: str | Path | None = None) -> Exported:
    """Write the pairs to ``out`` (JSONL) and, with ``sft_out``, the edited answers to it.

    Raises:
        DataError: no vote at all, or no vote that gives a pair or a row.
    """
    if not votes:
        raise DataError("no arena votes to export yet: judge a few rounds first (Chat tab → Blind arena, or "
                        "`studio arena`)")
    pairs, sft, skipped = pairs_of(votes)
    if not pairs and not (sft and sft_out):
        raise DataError(f"none of the {len(votes)} vote(s) prefers one answer (ties and 'both bad' give no pair); "
                        f"vote left or right, or edit the better answer")
    out = Path(out)
    _write(out, pairs)
    sft_path = None
    if sft_out is not None:
        sft_path = Path(sft_out)
        _write(sft_path, sft)
    return Exported(out, sft_path, len(pairs), len(sft), skipped)


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
