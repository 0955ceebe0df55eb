"""Arena results: win rates per pair of models with a 95 % interval, and a Bradley-Terry ranking.

A tie counts as half a win for each side; "both bad" votes are counted but carry no preference. The interval is
Wilson's score interval (sensible for few votes and for rates near 0 or 1). The ranking fits Bradley-Terry
strengths with the MM algorithm (Hunter 2004) and shows them on the Elo scale (400 log10, centred on 1000).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from studio.arena.votes import Vote

Z95 = 1.959963984540054


@dataclass(frozen=True)
class PairResult:
    """How model ``a`` fared against model ``b`` (``a`` < ``b`` by name)."""

    a: str
    b: str
    wins_a: int
    wins_b: int
    ties: int
    both_bad: int
    win_rate_a: float | None
    """(wins_a + ties / 2) / (wins_a + wins_b + ties); None with no decisive or tied vote."""
    low: float | None
    high: float | None

    @property
    def votes(self) -> int:
        return self.wins_a + self.wins_b + self.ties + self.both_bad

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "votes": self.votes}


@dataclass(frozen=True)
class Ranked:
    model: str
    rating: float
    """Bradley-Terry strength on the Elo scale (1000 = the geometric mean of the judged models)."""
    votes: int
    score: float
    """Wins + ties / 2, over all of its votes with a preference."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (``successes`` may be fractional: ties count half)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _oriented(vote: Vote) -> tuple[str, str, str]:
    """``(a, b, outcome)`` with a <= b by name and the outcome seen from ``a``: win, loss, tie or bad."""
    left, right = vote.left_model, vote.right_model
    outcome = {"left": "win", "right": "loss", "tie": "tie", "both_bad": "bad"}[vote.vote]
    if left <= right:
        return left, right, outcome
    return right, left, {"win": "loss", "loss": "win"}.get(outcome, outcome)


def pair_results(votes: Iterable[Vote]) -> list[PairResult]:
    """One result per judged pair of different models (a model against itself is left out), most votes first."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for v in votes:
        a, b, outcome = _oriented(v)
        if a == b:
            continue
        c = counts.setdefault((a, b), {"win": 0, "loss": 0, "tie": 0, "bad": 0})
        c[outcome] += 1
    out = []
    for (a, b), c in counts.items():
        n = c["win"] + c["loss"] + c["tie"]
        rate = (c["win"] + c["tie"] / 2) / n if n else None
        low, high = wilson(c["win"] + c["tie"] / 2, n) if n else (None, None)
        out.append(PairResult(a, b, c["win"], c["loss"], c["tie"], c["bad"], rate, low, high))
    return sorted(out, key=lambda r: (-r.votes, r.a, r.b))


def ranking(votes: Iterable[Vote], *, iterations: int = 200, prior: float = 0.5) -> list[Ranked]:
    """Bradley-Terry ratings of every model that met another, best first.

    ``prior`` adds that many pseudo-ties to every judged pair, so an unbeaten model gets a finite rating.
    """
    results = pair_results(votes)
    models = sorted({m for r in results for m in (r.a, r.b)})
    if not models:
        return []
    wins = {m: 0.0 for m in models}
    played = {m: 0 for m in models}
    games: dict[tuple[str, str], float] = {}
    for r in results:
        decided = r.wins_a + r.wins_b + r.ties
        wins[r.a] += r.wins_a + r.ties / 2 + prior / 2
        wins[r.b] += r.wins_b + r.ties / 2 + prior / 2
        games[(r.a, r.b)] = decided + prior
        played[r.a] += r.votes
        played[r.b] += r.votes
    strength = {m: 1.0 for m in models}
    for _ in range(iterations):
        new = {}
        for m in models:
            denom = sum(n / (strength[m] + strength[o]) for (a, b), n in games.items()
                        for o in ((b,) if a == m else (a,) if b == m else ()))
            new[m] = wins[m] / denom if denom > 0 else strength[m]
        log_mean = sum(math.log(s) for s in new.values()) / len(new)
        new = {m: s / math.exp(log_mean) for m, s in new.items()}
        done = max(abs(new[m] - strength[m]) for m in models) < 1e-9
        strength = new
        if done:
            break
    scores = {m: 0.0 for m in models}
    for r in results:
        scores[r.a] += r.wins_a + r.ties / 2
        scores[r.b] += r.wins_b + r.ties / 2
    ranked = [Ranked(m, round(1000 + 400 * math.log10(strength[m]), 1), played[m], scores[m]) for m in models]
    return sorted(ranked, key=lambda x: (-x.rating, x.model))


def summary_rows(votes: list[Vote]) -> list[list[Any]]:
    """Rows for a table: pair, votes, wins / losses / ties / both bad, win rate with its 95 % interval."""
    rows = []
    for r in pair_results(votes):
        rate = "n/a" if r.win_rate_a is None else \
            f"{r.win_rate_a:.0%} (95% CI {r.low:.0%}–{r.high:.0%})"
        rows.append([f"{r.a} vs {r.b}", r.votes, f"{r.wins_a} / {r.wins_b} / {r.ties} / {r.both_bad}", rate])
    return rows
