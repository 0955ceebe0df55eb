"""GRPO's live signals as plain values and plotly figures (no gradio): rewards, spread, completion length, KL,
the sampled completions (newest first) and a reward-gaming warning, gathered from a run's events."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import plotly.graph_objects as go

from studio.events import Completions, Event, Log, Note, Started
from studio.ui.charts import _LAYOUT, _empty, whole_steps

COMPLETION_ROWS = 24
"""Sampled completions kept for the table (newest first)."""
_COLORS = ["#2563eb", "#f97316", "#10b981", "#7c3aed", "#db2777", "#6b7280"]


@dataclass
class GrpoSeries:
    """GRPO's signals per logged step, the latest sampled completions and the gaming warning."""

    steps: list[int] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    completions: list[dict[str, Any]] = field(default_factory=list)
    """Newest first: ``{"step", "prompt", "completion", "rewards", "reward"}``."""
    warning: str = ""
    warning_samples: list[str] = field(default_factory=list)

    def add(self, events: Iterable[Event]) -> None:
        for ev in events:
            if isinstance(ev, Started) and ev.start_step == 0:
                self.__init__()  # a new run replays from its start
            elif isinstance(ev, Log) and "reward" in (getattr(ev, "metrics", None) or {}):
                self.steps.append(ev.step)
                self.metrics.append(dict(ev.metrics))
            elif isinstance(ev, Completions):
                rows = [{"step": ev.step, **s} for s in ev.samples]
                self.completions = (rows + self.completions)[:COMPLETION_ROWS]
            elif isinstance(ev, Note) and ev.data.get("kind") == "reward_gaming":
                self.warning = ev.message
                self.warning_samples = list(ev.data.get("samples", []))

    @property
    def active(self) -> bool:
        """Whether the run logged any GRPO signal."""
        return bool(self.steps or self.completions)

    def reward_names(self) -> list[str]:
        names: dict[str, None] = {}
        for m in self.metrics:
            for key in m:
                if key.startswith("rewards/") and key.endswith("/mean"):
                    names[key[len("rewards/"):-len("/mean")]] = None
        return list(names)

    def curve(self, key: str) -> tuple[list[int], list[float]]:
        pts = [(s, m[key]) for s, m in zip(self.steps, self.metrics) if m.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    def table_headers(self) -> list[str]:
        return ["step", "reward", *self.reward_names(), "completion", "prompt"]

    def table(self) -> list[list[Any]]:
        """The sampled completions, newest first: step, total reward, each reward, the completion, the prompt's end."""
        names = self.reward_names()
        return [[r["step"], r.get("reward"), *[(r.get("rewards") or {}).get(n) for n in names],
                 r.get("completion", ""), _question(r.get("prompt", ""))] for r in self.completions]


def _question(prompt: str) -> str:
    """The last user turn of a rendered chat prompt (or the prompt's end)."""
    for marker in ("<|im_start|>user\n", "<|user|>\n", "[INST]"):
        if marker in prompt:
            tail = prompt.rsplit(marker, 1)[1]
            return tail.split("<|im_end|>")[0].split("[/INST]")[0].strip()
    return prompt[-200:].strip()


def _lines(fig: go.Figure, series: GrpoSeries, keys: list[tuple[str, str]], dash: str | None = None) -> None:
    for (key, label), color in zip(keys, _COLORS * 2):
        x, y = series.curve(key)
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=label, line=dict(color=color, dash=dash),
                                     hovertemplate=f"{label}: %{{y:.3f}} at step %{{x}}<extra></extra>"))


def reward_figure(series: GrpoSeries) -> go.Figure:
    """Total reward (weighted) and each reward's mean per step."""
    if not series.steps:
        return _empty("Rewards", "The rewards appear after the first logged step")
    fig = go.Figure()
    _lines(fig, series, [("reward", "total (weighted)")])
    _lines(fig, series, [(f"rewards/{n}/mean", n) for n in series.reward_names()], dash="dot")
    fig.update_layout(**_LAYOUT, title_text="Rewards: total and each reward's mean")
    fig.update_xaxes(title="step")
    return whole_steps(fig, series.steps)


def spread_figure(series: GrpoSeries) -> go.Figure:
    """Reward std, the share of prompts whose completions all scored the same, the clipped share and KL."""
    if not series.steps:
        return _empty("Spread, length and KL", "Appears after the first logged step")
    fig = go.Figure()
    keys = [("reward_std", "reward std"), ("frac_reward_zero_std", "groups with zero spread"),
            ("completions/clipped_ratio", "clipped completions")]
    if any(m.get("kl") for m in series.metrics):
        keys.append(("kl", "KL to the start"))
    _lines(fig, series, keys)
    x, y = series.curve("completions/mean_length")
    if x:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="completion length (tokens)", yaxis="y2",
                                 line=dict(color="#6b7280", dash="dash"),
                                 hovertemplate="length: %{y:.0f} tokens at step %{x}<extra></extra>"))
    fig.update_layout(**_LAYOUT, title_text="Reward spread, clipped share, KL; completion length (right)",
                      yaxis2=dict(overlaying="y", side="right", title="tokens", rangemode="tozero"))
    fig.update_xaxes(title="step")
    return whole_steps(fig, series.steps)
