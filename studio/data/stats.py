"""Token statistics over a whole rendered dataset."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from studio.formatting import plural


@dataclass(frozen=True)
class DataStats:
    """What a person needs to know before training on a dataset."""

    n_rows: int
    p50_tokens: int
    p95_tokens: int
    max_tokens: int
    mean_tokens: float
    truncated_rows: int
    truncated_fraction: float
    trained_token_fraction: float
    zero_trained_rows: int
    duplicate_rows: int
    max_length: int
    empty_answer_rows: int = 0
    answer_column: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def warnings(self) -> list[str]:
        """Plain-language warnings for the UI and CLI."""
        out = []
        if self.truncated_rows:
            verb = "is" if self.truncated_rows == 1 else "are"
            out.append(f"{self.truncated_rows} of {plural(self.n_rows, 'row')} ({self.truncated_fraction:.1%}) {verb} "
                       f"longer than max_length={self.max_length} and will be cut; raise max_length or shorten them.")
        if self.zero_trained_rows:
            has = "has" if self.zero_trained_rows == 1 else "have"
            out.append(f"{plural(self.zero_trained_rows, 'row')} {has} no trained tokens (no answer, a missing "
                       f"response marker, or cut before the answer): they train nothing and are dropped.")
        if self.empty_answer_rows:
            has = "has" if self.empty_answer_rows == 1 else "have"
            out.append(f"{self.empty_answer_rows} of {plural(self.n_rows, 'row')} {has} an empty answer"
                       f"{f' (column {self.answer_column!r})' if self.answer_column else ''}: they teach the model "
                       f"to stop at once; fill them in or remove them.")
        if self.duplicate_rows:
            dup = "is an exact duplicate" if self.duplicate_rows == 1 else "are exact duplicates"
            out.append(f"{plural(self.duplicate_rows, 'row')} {dup} of earlier rows.")
        return out


def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    idx = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[idx]


def compute_stats(full_lengths: list[int], trained_counts: list[int], kept_lengths: list[int],
                  row_hashes: list[int], max_length: int) -> DataStats:
    """Stats from per-row figures (full token length, trained tokens after cut, kept length, content hash)."""
    n = len(full_lengths)
    lengths = sorted(full_lengths)
    truncated = sum(1 for f in full_lengths if f > max_length)
    kept = sum(kept_lengths)
    seen: set[int] = set()
    dups = 0
    for h in row_hashes:
        dups += h in seen
        seen.add(h)
    return DataStats(
        n_rows=n,
        p50_tokens=_percentile(lengths, 0.5),
        p95_tokens=_percentile(lengths, 0.95),
        max_tokens=lengths[-1] if lengths else 0,
        mean_tokens=round(sum(lengths) / n, 1) if n else 0.0,
        truncated_rows=truncated,
        truncated_fraction=round(truncated / n, 4) if n else 0.0,
        trained_token_fraction=round(sum(trained_counts) / kept, 4) if kept else 0.0,
        zero_trained_rows=sum(1 for t in trained_counts if t == 0),
        duplicate_rows=dups,
        max_length=max_length,
    )
