"""The Chat tab's forgetting check: the base, each checkpoint and the final adapter on general skills beside the
task, as a chart and a table, and a button that keeps the best checkpoint that did not forget. Glue over
:mod:`studio.forgetting`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr
import plotly.graph_objects as go

from studio.ui.common import AppContext, Reporter, error_box, error_text

HEADERS = ["Model", "Step", "General score", "Drop (points)", "Task"]


def forgetting_figure(report: Any) -> go.Figure:
    """Task score (y) against general score (x), one labelled point per model, the base in grey."""
    fig = go.Figure()
    pts = [report.base, *report.points]
    fig.add_trace(go.Scatter(x=[p.general * 100 for p in pts], y=[p.task for p in pts], mode="markers+text+lines",
                             text=[p.name for p in pts], textposition="top center", name="checkpoints",
                             marker={"size": 10, "color": ["#9ca3af", *["#2563eb"] * len(report.points)]}))
    task = "held-out accuracy" if report.task_metric == "accuracy" else "held-out loss (lower is better)"
    fig.update_layout(title="Task score against general score, per checkpoint", height=360,
                      xaxis_title="general skills correct (%)", yaxis_title=task, showlegend=False,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    if report.task_metric == "accuracy":
        fig.update_yaxes(tickformat=".0%")
    return fig


@dataclass
class ForgettingHandles:
    must_not_break: gr.Textbox
    max_drop: gr.Number
    check: gr.Button
    chart: gr.Plot
    table: gr.Dataframe
    keep: gr.Button
    status: gr.Markdown
    on_check: Callable[..., tuple]
    on_keep: Callable[..., tuple]


def render(studio: Any, ctx: AppContext, run: Any) -> ForgettingHandles:
    """``run`` is the Chat tab's run picker (its value is the run folder checked)."""
    with gr.Accordion("Forgetting check: did the fine-tune break general skills?", open=False,
                      elem_id="forgetting-panel"):
        gr.Markdown("The base model, each checkpoint and the final adapter answer a small general-skills set "
                    "(arithmetic, facts, following a format) and your own prompts, beside the run's task score.")
        must_not_break = gr.Textbox(label="Your must-not-break prompts (one 'prompt => expected text' per line)",
                                    lines=2, elem_id="forgetting-prompts")
        with gr.Row(equal_height=True):
            task_rows = gr.Number(value=8, precision=0, minimum=1, maximum=500, label="Held-out rows for the task "
                                  "score", elem_id="forgetting-task-rows")
            max_drop = gr.Number(value=5, minimum=0, maximum=100, label="Keep: most general-score drop (points)",
                                 elem_id="forgetting-max-drop")
            check = gr.Button("Check checkpoints", elem_id="forgetting-check")
            keep = gr.Button("Keep the best checkpoint within the drop", interactive=False,
                             elem_id="forgetting-keep")
        status = gr.Markdown(elem_id="forgetting-status")
        chart = gr.Plot(elem_id="forgetting-chart")
        table = gr.Dataframe(headers=HEADERS, value=None, interactive=False, elem_id="forgetting-table")
        report_state = gr.State(None)

    def on_check(run_dir: str | None, prompts: str, rows: Any = 8, progress: gr.Progress = gr.Progress()) -> tuple:
        from studio.errors import ModelError
        from studio.forgetting import check_run, parse_must_not_break
        from studio.inference.opening import open_engine

        bar = Reporter(progress)
        try:
            if not run_dir:
                raise ModelError("pick a run with checkpoints in the Run list first")
            extra = parse_must_not_break(prompts)
            engine, _ = open_engine(studio, run_dir)
            report = check_run(run_dir, engine=engine, extra=extra, task_rows=max(1, int(rows or 8)), progress=bar)
            report.save(run_dir)
            return (forgetting_figure(report), report.rows(), report, gr.update(interactive=True),
                    f"Checked {len(report.points)} model(s) against the base.")
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            return gr.skip(), gr.skip(), None, gr.update(interactive=False), f"**⚠ {error_text(err)}**"

    def on_keep(report: Any, drop: Any) -> tuple:
        from studio.forgetting import keep_checkpoint

        try:
            if report is None:
                return "Run the check first.", gr.skip()
            chosen = report.choose(float(drop or 0))
            if chosen is None:
                return f"No checkpoint stayed within {drop} points of the base's general score.", gr.skip()
            if chosen.step is None:
                return "The final adapter is already the best within the drop: nothing to change.", gr.skip()
            keep_checkpoint(report.run_dir, chosen, f"best task {report.task_metric} with a general-score drop of "
                                                    f"{report.drop(chosen):+.1f} points (at most {drop})")
            if studio.chat is not None:  # the loaded adapter of this run is now stale
                studio.release_chat()
            return f"adapter/ is now **{chosen.name}** (the previous adapter is in adapter.previous/).", \
                gr.update(interactive=False)
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            return f"**⚠ {error_text(err)}**", gr.skip()

    check.click(on_check, [run, must_not_break, task_rows], [chart, table, report_state, keep, status],
                api_name="forgetting_check", concurrency_limit=1, concurrency_id="chat-generate")
    keep.click(on_keep, [report_state, max_drop], [status, keep], api_name="forgetting_keep")
    return ForgettingHandles(must_not_break, max_drop, check, chart, table, keep, status, on_check, on_keep)
