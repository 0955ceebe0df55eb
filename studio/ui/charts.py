"""Plotly figure builders for the tabs (no gradio here): token-length histogram, memory bar, training charts.

``RunSeries`` accumulates training events (``studio.events``) into plain lists; the figure functions draw them.
Everything is pure and cheap, so a ``gr.Timer`` can redraw from a per-browser series every half second.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import plotly.graph_objects as go

from studio.events import Checkpoint, Eval, Event, Failed, Finished, Log, Note, Probe, Started, Stopped
from studio.formatting import format_value, plural

GB = 1024 ** 3
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=90), height=340,
               title=dict(x=0.01, xanchor="left", y=0.97, yanchor="top", font=dict(size=15)),
               legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0))
"""Titles top-left and legends under the plot: the top-right corner belongs to plotly's toolbar."""
TRAIN_COLOR, EVAL_COLOR, CUT_COLOR = "#2563eb", "#f97316", "#dc2626"


def _empty(title: str, message: str, height: int = 320) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(**{**_LAYOUT, "height": height}, xaxis_visible=False, yaxis_visible=False)
    fig.update_layout(title_text=title)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="#6b7280"))
    return fig


def whole_steps(fig: go.Figure, steps: Iterable[int | None]) -> go.Figure:
    """Tick the step axes (every subplot's x) at whole steps only: plotly's automatic ticks put 0.5 and 1.5 on a
    short run. The tick spacing is 1, 2 or 5 times a power of ten, about six ticks over the steps drawn."""
    import math

    values = [s for s in steps if s is not None]
    span = max(1, (max(values) - min(values)) if values else 1)
    raw = span / 6
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    dtick = next((m * power for m in (1, 2, 5, 10) if m * power >= raw), 10 * power)
    fig.update_xaxes(tickmode="linear", tick0=0, dtick=max(1, int(dtick)), tickformat="d")
    return fig


# ------------------------------------------------------------------------------------------------ data tab
def token_histogram(lengths: Sequence[int], max_length: int) -> go.Figure:
    """Histogram of full token lengths with the ``max_length`` cut-off drawn (rows right of it are cut)."""
    if not lengths:
        return _empty("Token lengths", "No rows to measure yet")
    cut = sum(1 for n in lengths if n > max_length)
    fig = go.Figure(go.Histogram(x=list(lengths), nbinsx=min(60, max(10, len(set(lengths)))),
                                 marker_color=TRAIN_COLOR, name="rows", hovertemplate="%{x} tokens: %{y} rows"))
    fig.add_vline(x=max_length, line=dict(color=CUT_COLOR, width=2, dash="dash"))
    # the cut-off is named in the title: a label beside the line is clipped when the line is near the edge
    # one line: plotly places a two-line title's first line above the chart, where it is cut
    fig.update_layout(**_LAYOUT, bargap=0.05, showlegend=False)
    fig.update_layout(title_text=f"Token length per row <span style='color:{CUT_COLOR};font-size:13px'>- - "
                                 f"max_length={max_length}: {cut} of {plural(len(lengths), 'row')} cut</span>")
    fig.update_xaxes(title="tokens", range=[0, max(max(lengths), max_length) * 1.05])
    fig.update_yaxes(title="rows")
    return fig


# ---------------------------------------------------------------------------------------------- model tab
def memory_bar(parts: dict[str, float], device_gb: float, device_name: str, *,
               measured_gb: float | None = None) -> go.Figure:
    """One stacked horizontal bar of the estimate's parts (GB) against the device's memory."""
    colors = ["#2563eb", "#7c3aed", "#db2777", "#f59e0b", "#10b981", "#6b7280"]
    fig = go.Figure()
    for (label, gb), color in zip(parts.items(), colors * 2):
        fig.add_trace(go.Bar(y=["estimate"], x=[gb], name=label, orientation="h", marker_color=color,
                             hovertemplate=f"{label}: %{{x:.2f}} GB<extra></extra>"))
    if measured_gb is not None:
        fig.add_trace(go.Bar(y=["measured"], x=[measured_gb], name="measured peak", orientation="h",
                             marker_color="#111827", hovertemplate="measured: %{x:.2f} GB<extra></extra>"))
    total = sum(parts.values())
    fig.add_vline(x=device_gb, line=dict(color=CUT_COLOR, width=3))
    fig.update_layout(**{**_LAYOUT, "height": 260 if measured_gb is None else 300}, barmode="stack")
    # the device is named in the title (a label at the line sat on the legend and the toolbar), on one line: plotly
    # places a two-line title's first line above the chart, where it was cut
    fig.update_layout(title_text=f"Estimated training memory: {total:.2f} GB of {device_gb:.1f} GB "
                                 f"<span style='color:{CUT_COLOR};font-size:13px'>│ {device_name}</span>",
                      legend_y=-0.25)
    fig.update_xaxes(ticksuffix=" GB", range=[0, max(total, device_gb, measured_gb or 0) * 1.08])
    return fig


# ---------------------------------------------------------------------------------------------- train tab
@dataclass
class RunSeries:
    """Training curves gathered from events; feed it ``log.since(cursor)`` batches with :meth:`add`."""

    steps: list[int] = field(default_factory=list)
    loss: list[float | None] = field(default_factory=list)
    learning_rate: list[float | None] = field(default_factory=list)
    grad_norm: list[float | None] = field(default_factory=list)
    tokens_per_s: list[float | None] = field(default_factory=list)
    padding_share: list[float | None] = field(default_factory=list)
    mfu: list[float | None] = field(default_factory=list)
    steps_per_s: list[float | None] = field(default_factory=list)
    memory_gb: list[float | None] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float | None] = field(default_factory=list)
    metrics: dict[str, list[float | None]] = field(default_factory=dict)
    """The method's own logged signals (``rewards/chosen``, ``kl``, …), each aligned with ``steps`` (None where a
    step did not log it); drawn by ``pref_charts``."""
    total_steps: int = 0
    start_step: int = 0
    step: int = 0
    eta_s: float | None = None
    status: str = "idle"
    """idle, starting, running, finished, stopped, failed."""
    message: str = ""
    run_dir: str = ""
    estimate_gb: float | None = None
    peak_gb: float | None = None
    lines: list[str] = field(default_factory=list)
    """Human-readable log lines (the tail is shown)."""
    speed: list[str] = field(default_factory=list)
    """The run's speed plan: one line per optimization, what is on and why."""
    failure: tuple[str, str] | None = None
    """``(message, suggestion)`` of a Failed event."""
    warning: str = ""
    """The latest warning note (the next checkpoint won't fit on the disk, empty answers in the data)."""

    def speed_now(self) -> str:
        """``1,234 tok/s · padding 12% · MFU 3.4%`` from the newest log step ("" before the first)."""
        def last(values: list[float | None]) -> float | None:
            return next((v for v in reversed(values) if v is not None), None)

        tps, pad, util = last(self.tokens_per_s), last(self.padding_share), last(self.mfu)
        rate = last(self.steps_per_s)
        parts = [f"{1 / rate:.2f} s/step"] if rate else []
        if tps is not None:
            parts.append(f"{tps:,.0f} tok/s (real)")
        if pad is not None:
            parts.append(f"padding {pad:.0%}")
        if util is not None:
            parts.append(f"MFU {util:.1%}")
        return " · ".join(parts)

    def add(self, events: Iterable[Event]) -> int:
        """Fold events in; returns how many were added."""
        n = 0
        for e in events:
            n += 1
            match e:
                case Started():
                    self._started(e)
                case Log():
                    self._log(e)
                case Eval():
                    self.eval_steps.append(e.step)
                    self.eval_loss.append(e.eval_loss)
                    self.lines.append(f"eval at step {e.step}: eval_loss {format_value(e.eval_loss)}")
                case Checkpoint():
                    self.lines.append(f"checkpoint at step {e.step}: {e.path}")
                case Probe():
                    self.lines.append(f"probe at step {e.step}: {e.prompt!r} -> {e.answer[:120]!r}")
                case Note():
                    self.lines.append(f"{e.level}: {e.message}")
                    if e.level == "warning":
                        self.warning = e.message
                case Finished():
                    self.status, self.step, self.eta_s = "finished", e.step, 0.0
                    self.message = f"finished at step {e.step}; adapter saved to {e.adapter_path}"
                    if e.peak_memory_bytes:
                        self.peak_gb = e.peak_memory_bytes / GB
                    self.lines.append(self.message)
                case Stopped():
                    self.status, self.step, self.eta_s = "stopped", e.step, None
                    self.message = f"stopped at step {e.step}" + (
                        f"; adapter saved to {e.adapter_path}" if e.adapter_path else "")
                    self.lines.append(self.message)
                case Failed():
                    self.status, self.eta_s = "failed", None
                    self.message = e.message + (f" {e.suggestion}" if e.suggestion else "")
                    self.failure = (e.message, e.suggestion or "")
                    self.lines.append(f"failed: {self.message}")
        return n

    def _started(self, e: Started) -> None:
        self.status, self.run_dir = "running", e.run_dir
        self.total_steps, self.start_step, self.step = e.total_steps, e.start_step, e.start_step
        self.estimate_gb = (e.estimate or {}).get("total_gb")
        self.lines.append(f"started {e.model} on {e.device}: {plural(e.total_steps, 'step')}, {e.train_rows} train / "
                          f"{plural(e.eval_rows, 'eval row')}"
                          + (f"; {e.attention_reason}" if e.attention_reason else "")
                          + (f" (resumed at step {e.start_step})" if e.start_step else ""))
        self.speed = list(e.speed)
        self.lines.extend(f"speed plan: {line}" for line in self.speed)

    def _log(self, e: Log) -> None:
        self.steps.append(e.step)
        self.loss.append(e.loss)
        self.learning_rate.append(e.learning_rate)
        self.grad_norm.append(e.grad_norm)
        self.tokens_per_s.append(e.tokens_per_s)
        self.padding_share.append(e.padding_share)
        self.mfu.append(e.mfu)
        self.steps_per_s.append(e.steps_per_s)
        mem = e.peak_memory_bytes or e.memory_bytes
        self.memory_gb.append(mem / GB if mem else None)
        extra = getattr(e, "metrics", None) or {}
        for key in set(self.metrics) | set(extra):
            column = self.metrics.setdefault(key, [None] * (len(self.steps) - 1))
            value = extra.get(key)
            column.append(float(value) if isinstance(value, (int, float)) else None)
        if mem:
            self.peak_gb = max(self.peak_gb or 0.0, mem / GB)
        self.step = e.step
        self.total_steps = e.total_steps or self.total_steps
        self.eta_s = e.eta_s
        self.lines.append(f"step {e.step}/{self.total_steps}  loss {format_value(e.loss)}"
                          f"  lr {format_value(e.learning_rate)}  grad_norm {format_value(e.grad_norm)}"
                          f"  tok/s {format_value(e.tokens_per_s, '.0f')}  pad {format_value(e.padding_share, '.0%')}"
                          f"  MFU {format_value(e.mfu, '.1%')}")

    @property
    def progress(self) -> float:
        """0..1 of the planned steps."""
        if self.status == "finished":
            return 1.0
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


def _xy(steps: Sequence[int], values: Sequence[float | None]) -> tuple[list[int], list[float]]:
    pairs = [(s, v) for s, v in zip(steps, values) if v is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]


def loss_figure(series: RunSeries, overlays: Sequence[tuple[str, Sequence[tuple[int, float]]]] = (),
                reference: tuple[float, str] | None = None) -> go.Figure:
    """Train and eval loss of the current run, with earlier runs' train loss overlaid (dotted); ``reference``
    ``(loss, label)`` draws a dotted line where the loss starts by design (DPO: ln 2 while policy = reference)."""
    if not series.steps and not series.eval_steps and not overlays:
        return _empty("Loss", "Start a run to see its loss here")
    fig = go.Figure()
    for name, points in overlays:
        if points:
            fig.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], name=name,
                                     mode="lines", line=dict(dash="dot", width=1.5), opacity=0.7))
    x, y = _xy(series.steps, series.loss)
    fig.add_trace(go.Scatter(x=x, y=y, name="train loss", mode="lines+markers" if len(x) < 60 else "lines",
                             line=dict(color=TRAIN_COLOR, width=2.5)))
    ex, ey = _xy(series.eval_steps, series.eval_loss)
    if ex:
        fig.add_trace(go.Scatter(x=ex, y=ey, name="eval loss", mode="lines+markers",
                                 line=dict(color=EVAL_COLOR, width=2.5)))
    if reference is not None and (x or ex):
        fig.add_hline(y=reference[0], line=dict(color="#6b7280", dash="dot", width=1.5),
                      annotation_text=reference[1], annotation_position="top right",
                      annotation_font=dict(size=12, color="#6b7280"))
    fig.update_layout(**_LAYOUT)
    fig.update_layout(title_text="Loss")
    fig.update_xaxes(title="step")
    return whole_steps(fig, [*x, *ex, *(s for _, points in overlays for s, _ in points)])


def metrics_figure(series: RunSeries) -> go.Figure:
    """Learning rate, grad norm, tokens/s and memory in a 2x2 grid."""
    from plotly.subplots import make_subplots

    if not series.steps:
        return _empty("Learning rate, grad norm, tokens/s, memory", "Waiting for the first logged step", 420)
    util = next((v for v in reversed(series.mfu) if v is not None), None)
    tokens_title = "real tokens / s" + (f" (MFU {util:.1%})" if util is not None else "")
    fig = make_subplots(rows=2, cols=2, subplot_titles=("learning rate", "grad norm", tokens_title, "memory (GB)"),
                        horizontal_spacing=0.14, vertical_spacing=0.26)
    for (row, col), values, color in (((1, 1), series.learning_rate, "#7c3aed"), ((1, 2), series.grad_norm, "#db2777"),
                                      ((2, 1), series.tokens_per_s, "#059669"), ((2, 2), series.memory_gb, "#6b7280")):
        x, y = _xy(series.steps, values)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if len(x) < 30 else "lines",
                                 line=dict(color=color, width=2), showlegend=False), row=row, col=col)
        top = max([*y, series.estimate_gb or 0] if (row, col) == (2, 2) else y, default=0)
        if top > 0:  # from 0, with headroom: a constant series (a constant LR) is a flat line at its value
            fig.update_yaxes(range=[0, top * 1.15], exponentformat="e" if top < 0.01 else "none",
                             row=row, col=col)
    if series.estimate_gb:
        fig.add_hline(y=series.estimate_gb, line=dict(color=CUT_COLOR, dash="dash"), row=2, col=2,
                      annotation_text="estimate", annotation_position="bottom right")
    for ann in fig.layout.annotations:  # subplot titles: smaller, so they never reach the toolbar or the ticks
        ann.font = dict(size=13)
    fig.update_layout(**{**_LAYOUT, "height": 480, "margin": dict(l=60, r=20, t=50, b=40)}, showlegend=False)
    return whole_steps(fig, series.steps)
