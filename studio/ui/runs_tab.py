"""Runs tab: many runs side by side (one table of what differs and how they scored), their loss and eval curves
overlaid, and safe rename / delete (never a live run). Glue over :mod:`studio.run_compare`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr
import plotly.graph_objects as go

from studio.ui.common import AppContext, error_box, error_text

TAB_ID = "runs"
LABEL = "6 · Runs"


def overlay_figure(curves: dict[str, dict[str, list]]) -> go.Figure:
    """Train loss (lines) and eval loss (dashed, markers) of each run on one chart."""
    fig = go.Figure()
    for name, series in curves.items():
        train, evals = series.get("train") or [], series.get("eval") or []
        if train:
            fig.add_trace(go.Scatter(x=[s for s, _ in train], y=[v for _, v in train], name=f"{name} · train",
                                     mode="lines", legendgroup=name))
        if evals:
            fig.add_trace(go.Scatter(x=[s for s, _ in evals], y=[v for _, v in evals], name=f"{name} · eval",
                                     mode="lines+markers", line={"dash": "dash"}, legendgroup=name))
    fig.update_layout(title="Loss by step", xaxis_title="step", yaxis_title="loss", height=360,
                      margin={"l": 50, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(tickformat="d")
    return fig


def run_options(runs_dir: Any) -> list[tuple[str, str]]:
    from studio.runs import list_runs

    return [(f"{v.name} · {v.status} · step {v.step}", str(v.path)) for v in list_runs(runs_dir)]


@dataclass
class RunsHandles:
    picked: gr.Dropdown
    compare: gr.Button
    table: gr.Dataframe
    chart: gr.Plot
    target: gr.Dropdown
    new_name: gr.Textbox
    rename: gr.Button
    confirm: gr.Checkbox
    delete: gr.Button
    error: gr.Markdown
    on_compare: Callable[..., tuple]
    on_rename: Callable[..., tuple]
    on_delete: Callable[..., tuple]


def render(studio: Any, ctx: AppContext) -> RunsHandles:
    gr.Markdown("### Your runs side by side\nPick runs to see their method, model, data, the settings that differ, "
                "final losses, held-out scores and time in one table, with their loss curves overlaid.")
    options = run_options(studio.runs_dir)
    first = [v for _, v in options[:2]]
    with gr.Row(equal_height=True):
        picked = gr.Dropdown(options, value=first, multiselect=True, label="Runs", scale=5, elem_id="runs-picked")
        compare = gr.Button("Compare", variant="primary", scale=0, min_width=110, elem_id="runs-compare")
    error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="runs-error")
    table = gr.Dataframe(value=None, interactive=False, wrap=True, label="Comparison", elem_id="runs-table")
    chart = gr.Plot(label="Loss curves", elem_id="runs-chart")
    with gr.Accordion("Rename or delete a run", open=False, elem_id="runs-manage"):
        with gr.Row(equal_height=True):
            target = gr.Dropdown(options, value=options[0][1] if options else None, label="Run", scale=3,
                                 elem_id="runs-target")
            new_name = gr.Textbox(label="New name", scale=2, elem_id="runs-new-name")
            rename = gr.Button("Rename", scale=0, min_width=100, elem_id="runs-rename")
        with gr.Row(equal_height=True):
            confirm = gr.Checkbox(value=False, label="Yes, delete it with its adapter and checkpoints",
                                  elem_id="runs-confirm")
            delete = gr.Button("Delete", variant="stop", scale=0, min_width=100, elem_id="runs-delete")

    def refreshed(keep: list[str] | None = None) -> tuple[dict, dict]:
        opts = run_options(studio.runs_dir)
        values = [v for _, v in opts]
        kept = [v for v in (keep or []) if v in values]
        return (gr.update(choices=opts, value=kept),
                gr.update(choices=opts, value=values[0] if values else None))

    def on_compare(names: list[str] | None) -> tuple:
        from studio.run_compare import compare_runs, curves

        try:
            result = compare_runs(names or [], studio.runs_dir)
            frame = {"headers": result.headers(), "data": result.rows()}
            return gr.update(value=frame), overlay_figure(curves(names or [], studio.runs_dir)), error_box(None)
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            return gr.skip(), gr.skip(), error_box(error_text(err))

    def on_rename(run: str | None, name: str, names: list[str] | None) -> tuple:
        from studio.run_compare import rename_run

        try:
            if not run:
                raise_pick()
            new = str(rename_run(run, name, studio.runs_dir))
            keep = [new if n == run else n for n in names or []]
            return (*refreshed(keep), "", error_box(None))
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            return gr.skip(), gr.skip(), gr.skip(), error_box(error_text(err))

    def on_delete(run: str | None, sure: bool, names: list[str] | None) -> tuple:
        from studio.errors import ConfigError
        from studio.run_compare import delete_run

        try:
            if not run:
                raise_pick()
            if not sure:
                raise ConfigError("tick the box to confirm: the run's adapter and checkpoints are deleted too")
            delete_run(run, studio.runs_dir)
            return (*refreshed([n for n in names or [] if n != run]), False, error_box(None))
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            return gr.skip(), gr.skip(), gr.skip(), error_box(error_text(err))

    hidden = dict(api_visibility="undocumented", show_progress="hidden")
    compare.click(on_compare, picked, [table, chart, error], api_name="runs_compare")
    rename.click(on_rename, [target, new_name, picked], [picked, target, new_name, error], api_name="runs_rename")
    delete.click(on_delete, [target, confirm, picked], [picked, target, confirm, error], api_name="runs_delete")
    if ctx.tabs is not None:
        ctx.tabs.change(lambda keep: refreshed(keep), picked, [picked, target], **hidden)
    return RunsHandles(picked, compare, table, chart, target, new_name, rename, confirm, delete, error, on_compare,
                       on_rename, on_delete)


def raise_pick() -> None:
    from studio.errors import ConfigError

    raise ConfigError("pick a run first")
