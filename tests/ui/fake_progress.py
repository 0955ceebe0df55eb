"""A stand-in for gr.Progress shared by the tab tests."""
from __future__ import annotations


class FakeProgress:
    """Stands in for gr.Progress: records what the handler reports."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, desc: str | None = None, **_: object) -> None:
        self.calls.append((fraction, desc or ""))


def monotonic_and_readable(calls: list[tuple[float, str]]) -> str:
    """Assert the bar only rises, ends at 1.0, and every message reads as words; return the messages joined."""
    fractions = [f for f, _ in calls]
    assert len(calls) >= 3 and fractions == sorted(fractions) and fractions[-1] == 1.0, calls
    assert all(len(m) > 3 and m[0].isalpha() for _, m in calls), calls
    return " | ".join(m for _, m in calls)
