"""Reward gaming caught: a reward climbs while ``answer`` stays flat and the completions collapse.

Pure: it reads plain values per logging step (each reward's mean, the mean completion length, the sampled
completions) and returns a :class:`GamingWarning` in plain words with the completions that show it, or None.
Collapse is any of: completions repeating the same line, the same short completion across prompts, the
completion length falling toward nothing.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from studio.formatting import plural

MIN_POINTS = 4
"""Logging steps needed before judging (earlier and later thirds are compared)."""
MIN_CLIMB = 0.2
"""A reward's mean must rise by at least this much (later third vs earlier third) to count as climbing."""
FLAT = 0.05
"""``answer`` counts as flat when its mean rose by less than this."""
_DIGITS = re.compile(r"\d+")
SHORT = 40
"""A completion of at most this many characters is short."""


@dataclass(frozen=True)
class StepSignals:
    """What one logging step says: each reward's mean, the mean completion length, sampled completions."""

    step: int
    rewards: dict[str, float]
    mean_length: float | None = None
    completions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GamingWarning:
    """A plain-words warning and the completions that show the collapse."""

    message: str
    reward: str
    signs: list[str]
    samples: list[str]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _thirds(history: Sequence[StepSignals], key: str) -> tuple[float, float] | None:
    values = [h.rewards[key] for h in history if h.rewards.get(key) is not None]
    if len(values) < MIN_POINTS:
        return None
    k = max(1, len(values) // 3)
    return _mean(values[:k]), _mean(values[-k:])


def repeated_lines(text: str) -> bool:
    """A completion that says the same non-empty line (numbers aside: ``#### 1``, ``#### 2``) at least three
    times, or mostly repeats itself."""
    lines = [_DIGITS.sub("0", ln.strip()) for ln in text.splitlines() if ln.strip()]
    if len(lines) < 3:
        return False
    counts = Counter(lines)
    return counts.most_common(1)[0][1] >= 3 or len(counts) <= len(lines) / 2


def collapse_signs(history: Sequence[StepSignals]) -> tuple[list[str], list[str]]:
    """Signs that the latest completions collapsed, in words, and the completions that show them."""
    signs: list[str] = []
    samples: list[str] = []
    latest = next((h.completions for h in reversed(history) if h.completions), [])
    repeated = [c for c in latest if repeated_lines(c)]
    if latest and len(repeated) >= max(1, len(latest) // 2):
        signs.append("the completions repeat the same lines")
        samples += repeated
    stripped = [c.strip() for c in latest]
    if len(stripped) >= 3:
        text, n = Counter(stripped).most_common(1)[0]
        if n >= len(stripped) / 2 and len(text) <= SHORT:
            signs.append(f"{n} of {plural(len(stripped), 'completion')} are the same short text")
            samples += [c for c in latest if c.strip() == text]
    lengths = [h.mean_length for h in history if h.mean_length is not None]
    if len(lengths) >= MIN_POINTS:
        k = max(1, len(lengths) // 3)
        early, late = _mean(lengths[:k]), _mean(lengths[-k:])
        if early > 0 and (late <= 0.3 * early or late <= 3):
            signs.append(f"the completions shrank from {early:.0f} to {late:.0f} tokens")
            samples += sorted(latest, key=len)[:3]
    return signs, list(dict.fromkeys(samples))[:3]


def detect_gaming(history: Sequence[StepSignals], answer_key: str = "answer") -> GamingWarning | None:
    """A warning when a reward other than ``answer_key`` climbed while ``answer_key`` stayed flat (or is not
    used) and the completions collapsed; None otherwise (too few steps included)."""
    if len(history) < MIN_POINTS:
        return None
    answer = _thirds(history, answer_key)
    if answer is not None and answer[1] - answer[0] >= FLAT:
        return None
    names = dict.fromkeys(k for h in history for k in h.rewards if k != answer_key)
    climbs = [(late - early, name, early, late) for name in names
              if (t := _thirds(history, name)) is not None for early, late in [t] if late - early >= MIN_CLIMB]
    if not climbs:
        return None
    signs, samples = collapse_signs(history)
    if not signs:
        return None
    _, name, early, late = max(climbs)
    flat = (f" while {answer_key} stayed at {answer[1]:.2f}" if answer is not None else
            " (no answer reward checks the result)")
    message = (f"Possible reward gaming: the {name} reward climbed from {early:.2f} to {late:.2f}{flat}, and "
               f"{'; '.join(signs)}. The model may be learning to please the reward rather than to solve the "
               f"task: look at the sample completions, and tighten the reward or weight answer higher.")
    return GamingWarning(message=message, reward=name, signs=signs, samples=samples)
