"""The built-in rewards: pure functions with TRL's reward signature ``f(completions, **columns) -> list[float]``.

``answer`` is the seed's GSM8K checker (the number after ``####``, extracted and normalized exactly as
``studio eval`` does); ``format`` asks for some working and then exactly one ``#### <number>`` line, at the end;
``length`` penalizes completions past a target length; ``regex`` asks for a pattern. A completion is a string
(text prompts) or a list of chat messages (conversational prompts): :func:`completion_text` reads both.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from studio.evaluate import AnswerExtractor, normalize_answer

MIN_WORKING_CHARS = 8
"""``format``: the working before the ``####`` line must have at least this many characters (letters or digits
among them), so a bare ``#### 5`` is not rewarded as a worked answer."""

_ANSWER_LINE = re.compile(r"####[ \t]*[-\u2212]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?[ \t]*\.?")
_EXTRACT = AnswerExtractor("####")


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the contents of a list of chat messages."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, (list, tuple)):
        return "".join(completion_text(m) for m in completion)
    return str(completion)


def reference_answer(reference: Any) -> str | None:
    """A reference as ``studio eval`` compares it: the answer after ``####`` when there is one, else the whole
    value normalized (a bare ``42`` column); None when empty."""
    if reference is None:
        return None
    text = str(reference)
    if not text.strip():
        return None
    return _EXTRACT.extract(text) if "####" in text else normalize_answer(text)


def answer(completions: Sequence[Any], reference: Sequence[Any] | None = None, **_: Any) -> list[float | None]:
    """1.0 when the number after ``####`` in the completion equals the row's reference answer, else 0.0 (None,
    i.e. not scored, for a row without a reference)."""
    refs = list(reference) if reference is not None else [None] * len(completions)
    out: list[float | None] = []
    for completion, ref in zip(completions, refs):
        want = reference_answer(ref)
        if want is None:
            out.append(None)
            continue
        got = _EXTRACT.extract(completion_text(completion))
        out.append(1.0 if got is not None and got == want else 0.0)
    return out


def format_ok(text: str) -> bool:
    """Some working, then exactly one ``#### <number>`` line, and nothing after it (trailing space aside)."""
    text = text.strip()
    if text.count("####") != 1:
        return False
    lines = text.splitlines()
    if not _ANSWER_LINE.fullmatch(lines[-1].strip()):
        return False
    working = "\n".join(lines[:-1]).strip()
    return len(working) >= MIN_WORKING_CHARS and any(c.isalnum() for c in working)


def format(completions: Sequence[Any], **_: Any) -> list[float]:  # noqa: A001 - the reward's public name
    """1.0 for some working and then exactly one ``#### <number>`` line at the end, else 0.0.

    ``#### 1\\n#### 2\\n#### 3`` (the looser reward's gamed form) scores 0: it has three ``####`` and no working."""
    return [1.0 if format_ok(completion_text(c)) else 0.0 for c in completions]


def length(completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None, *, target: int = 200,
           unit: str = "tokens", **_: Any) -> list[float]:
    """0 up to ``target`` tokens (or characters with ``unit="chars"``), then minus the share past it
    (``-(n - target) / target``), down to -1. Tokens are counted from ``completion_ids`` (TRL passes them); without
    them characters are counted."""
    out = []
    for i, c in enumerate(completions):
        if unit == "tokens" and completion_ids is not None:
            n = len(completion_ids[i])
        else:
            n = len(completion_text(c))
        out.append(-min((n - target) / target, 1.0) if n > target else 0.0)
    return out


def regex(completions: Sequence[Any], *, pattern: str, **_: Any) -> list[float]:
    """1.0 when ``pattern`` is found in the completion (``re.search``, multi-line), else 0.0."""
    compiled = re.compile(pattern, re.MULTILINE)
    return [1.0 if compiled.search(completion_text(c)) else 0.0 for c in completions]
