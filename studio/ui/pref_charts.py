"""The Train tab's chart of a preference method's own signals (no gradio): rewards of chosen and rejected, margin,
reward accuracy, KL (KTO), ORPO's NLL and log-odds ratio, from the ``metrics`` a ``RunSeries`` gathered.

At step 1 the policy equals the reference (the adapter starts as zero), so DPO-style margins are 0, rewards 0 and
the sigmoid DPO loss is ln 2: the charts draw that as a dotted, labelled line so a flat start does not look broken.
"""
from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go

from studio.ui.charts import _LAYOUT, RunSeries, _empty, _xy, whole_steps

AT_START = "policy = reference at step 1"
LN2 = math.log(2)
CHOSEN_COLOR, REJECTED_COLOR, MARGIN_COLOR, ACC_COLOR, KL_COLOR = "#16a34a", "#dc2626", "#2563eb", "#7c3aed", "#f59e0b"

PANELS: tuple[tuple[str, tuple[tuple[str, str, str], ...], float | None], ...] = (
    ("rewards: chosen vs rejected", (("rewards/chosen", "chosen", CHOSEN_COLOR),
                                     ("rewards/rejected", "rejected", REJECTED_COLOR)), 0.0),
    ("reward margin (chosen − rejected)", (("rewards/margins", "margin", MARGIN_COLOR),), 0.0),
    ("reward accuracy (chosen > rejected)", (("rewards/accuracies", "accuracy", ACC_COLOR),), None),
    ("KL (policy ‖ reference)", (("kl", "KL", KL_COLOR),), 0.0),
    ("ORPO: NLL on chosen", (("nll_loss", "NLL", "#0891b2"),), None),
    ("ORPO: log odds ratio", (("log_odds_ratio", "log odds ratio", "#db2777"),), None),
)
"""``(title, ((metric key, trace name, color), ...), value at step 1 or None)``: a panel is drawn when its metric
was logged; the value at step 1 is the dotted ``AT_START`` line (the policy starts as the reference)."""
SIGNAL_KEYS = tuple(key for _, traces, _ in PANELS for key, _, _ in traces)


DEFAULT_LOSS = {"dpo": "sigmoid", "kto": "kto"}
"""The loss variant whose step-1 value the method's recipe gives (another variant starts elsewhere)."""


def _recipe(method: str):
    try:
        from studio.training.methods import recipe

        return recipe(method)
    except Exception:  # noqa: BLE001 - an unknown method draws no expectations
        return None


def start_reference(method: str, loss_type: str | None = None) -> tuple[float, str] | None:
    """Where the loss starts by design, as ``(value, label)``: the recipe's step-1 loss (DPO's sigmoid loss: ln 2,
    KTO: 0.5) while the policy is the reference; None for methods without a reference or another loss variant."""
    r = _recipe(method)
    if r is None or "loss" not in r.first_step or (loss_type or DEFAULT_LOSS.get(method)) != DEFAULT_LOSS.get(method):
        return None
    value = r.first_step["loss"]
    name = "ln 2" if abs(value - LN2) < 1e-9 else f"{value:g}"
    return value, f"{name} = {value:.3f}: {AT_START}"


def has_signals(series: RunSeries) -> bool:
    """The run logged any preference signal (a preference run, past its first logged step)."""
    return any(any(v is not None for v in series.metrics.get(key, ())) for key in SIGNAL_KEYS)


def last_reward_accuracy(series: RunSeries) -> float | None:
    """The newest logged reward accuracy (share of pairs whose chosen reward beats the rejected one)."""
    return next((v for v in reversed(series.metrics.get("rewards/accuracies", ())) if v is not None), None)


def preference_figure(series: RunSeries, method: str = "") -> go.Figure:
    """One panel per logged signal, side by side in rows of two (every trace named by its metric key in
    ``meta``, so tests and tools can find it)."""
    from plotly.subplots import make_subplots

    panels = [(title, [t for t in traces if _logged(series, t[0])], start)
              for title, traces, start in PANELS]
    panels = [p for p in panels if p[1]]
    name = method.upper() if method else "Preference"
    r = _recipe(method)
    labels = dict(r.metrics) if r is not None else {}
    from_reference = r.uses_reference if r is not None else method in ("dpo", "kto")
    if not panels:
        return _empty(f"{name} signals", "Rewards, margin and accuracy appear after the first logged step", 360)
    cols = 2
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p[0] for p in panels], horizontal_spacing=0.14,
                        vertical_spacing=0.3 if rows > 1 else 0.1)
    for i, (title, traces, start) in enumerate(panels):
        row, col = i // cols + 1, i % cols + 1
        for key, label, color in traces:
            x, y = _xy(series.steps, series.metrics[key])
            fig.add_trace(go.Scatter(x=x, y=y, name=labels.get(key, label), meta=key, mode="lines+markers" if len(x) < 30 else "lines",
                                     line=dict(color=color, width=2), showlegend=len(traces) > 1),
                          row=row, col=col)
        if key == "rewards/accuracies":
            fig.update_yaxes(range=[-0.05, 1.05], tickformat=".0%", row=row, col=col)
        if start is not None and from_reference:  # without a reference (ORPO, SimPO) nothing starts at 0
            fig.add_hline(y=start, line=dict(color="#6b7280", dash="dot", width=1.5), row=row, col=col,
                          annotation_text=AT_START if i == 0 else "", annotation_position="bottom right",
                          annotation_font=dict(size=11, color="#6b7280"))
    for ann in fig.layout.annotations:
        if ann.text in [p[0] for p in panels]:
            ann.font = dict(size=13)
    fig.update_layout(**{**_LAYOUT, "height": 300 * rows + 80, "margin": dict(l=60, r=20, t=70, b=70),
                         "legend": {**_LAYOUT["legend"], "y": -0.35 / rows}})
    fig.update_layout(title_text=f"{name}: what the preference loss sees")
    return whole_steps(fig, series.steps)


def _logged(series: RunSeries, key: str) -> bool:
    return any(v is not None for v in series.metrics.get(key, ()))


def trace_keys(fig: go.Figure) -> Sequence[str]:
    """The metric keys of the figure's traces (what a test asserts)."""
    return [t.meta for t in fig.data if t.meta]
