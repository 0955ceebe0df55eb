"""GRPO in the app: the Data tab's reward preview and the Train tab's reward charts, sampled-completions table and
reward-gaming warning. Each part is one ``render_*(studio, ctx)`` call wired into its tab with a few lines; the
values come from :mod:`studio.rewards.preview` and :mod:`studio.ui.grpo_charts` (no gradio there)."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from studio.ui.common import AppContext, error_box, error_text
from studio.ui.grpo_charts import GrpoSeries, reward_figure, spread_figure

POLL_S = 2.0
USER_CODE_NOTE = ("Your own reward functions (`path/to/file.py:function`, TRL's signature) run only when this app "
                  "listens on this machine alone (127.0.0.1), and from the CLI; {state}")


def user_code_state(studio: Any) -> str:
    from studio.rewards import is_loopback

    host, share = getattr(studio, "app_host", "127.0.0.1"), getattr(studio, "app_share", False)
    if share or not is_loopback(host):
        return "**this app is reachable from other machines, so they are refused here.**"
    return "this app listens on loopback, so they are allowed."


# ------------------------------------------------------------------------------------------- Data tab preview
def preview_shown(method: str | None) -> dict:
    """The reward preview's visibility for ``train.method``: shown for GRPO only."""
    return gr.update(visible=method == "grpo")


def render_reward_preview(studio: Any, ctx: AppContext) -> Any:
    """The reward preview: each ``train.rewards`` entry scored on the first rows' reference and corrupted answers.
    Shown only while the Train tab's method is grpo (it follows the radio and any config written into the forms)."""
    from studio.data.preview_cache import PreviewCache

    cache = PreviewCache(size=2)
    with gr.Accordion("Reward preview (GRPO)", open=False, visible=ctx.initial.train.method == "grpo",
                      elem_id="reward-preview-box") as box:
        gr.Markdown("For `train.method: grpo`: each reward scored on sample completions before training (the row's "
                    "own reference answer, and a corrupted one), so a right answer should score high and a wrong "
                    "one low. " + USER_CODE_NOTE.format(state=user_code_state(studio)))
        button = gr.Button("Score the rewards on sample answers", elem_id="reward-preview-run")
        warnings = gr.Markdown("", elem_id="reward-preview-warnings")
        table = gr.Dataframe(interactive=False, wrap=True, elem_id="reward-preview-table")

    def on_preview(values: dict) -> tuple:
        from studio.rewards import check_user_code_allowed, parse_specs
        from studio.rewards.preview import preview_for_config

        try:
            cfg = ctx.forms.read(values)
            specs = parse_specs(cfg.train.rewards)
            check_user_code_allowed(specs, host=getattr(studio, "app_host", "127.0.0.1"),
                                    share=getattr(studio, "app_share", False))
            preview = preview_for_config(cfg, cache.tokenizer(cfg), cache.loaded(cfg.data), n_rows=3)
        except Exception as err:  # noqa: BLE001 - one sentence in the box, never a traceback
            text = error_text(err)
            gr.Warning(text)
            return error_box(text), gr.update(value=None)
        notes = "\n".join(f"- ⚠️ {w}" for w in preview.warnings) or "No warnings: every reward tells the " \
                                                                     "reference from the corrupted answer."
        return gr.update(value=notes, visible=True, elem_classes=[]), gr.update(
            value=preview.table(), headers=preview.headers())

    def wire() -> None:
        button.click(on_preview, inputs=ctx.forms.components(), outputs=[warnings, table], api_name="reward_preview")
        method = ctx.forms.train.method if ctx.forms.train is not None else None
        if method is not None:  # .change: the radio, and a config opened or reset into the forms
            method.change(preview_shown, inputs=method, outputs=box, show_progress="hidden",
                          api_visibility="undocumented")

    ctx.after_render.append(wire)
    return box


# ----------------------------------------------------------------------------------------- Train tab panel
@dataclass
class GrpoView:
    """One browser's reading of the app's run: which job, how far, and the GRPO series so far."""

    key: str = ""
    cursor: int = 0
    series: GrpoSeries = field(default_factory=GrpoSeries)
    shown: bool = False
    """The panel is visible in this browser (it opens hidden)."""


def follow(studio: Any, view: GrpoView) -> tuple[GrpoView, bool]:
    """New events of the app's job into ``view`` (replayed from 0 when the job changed); True when any arrived."""
    job = studio.job
    key = f"{job.run_dir}#{id(job)}" if job is not None else ""
    if key != view.key:
        view = GrpoView(key=key, shown=view.shown)
    if job is None:
        return view, False
    events, view.cursor = job.events.since(view.cursor)
    view.series.add(events)
    return view, bool(events)


def warning_html(series: GrpoSeries) -> str:
    samples = "".join(f"<pre>{html.escape(s)}</pre>" for s in series.warning_samples)
    return f"<b>⚠️ {html.escape(series.warning)}</b>{samples}"


def render_train_panel(studio: Any, ctx: AppContext) -> None:
    """Reward charts, the sampled completions (newest first) and the gaming warning; shown for GRPO runs."""
    with gr.Column(visible=False, elem_id="grpo-panel") as box:
        gaming = gr.HTML("", visible=False, elem_classes=["studio-error"], elem_id="grpo-gaming")
        with gr.Row():
            rewards = gr.Plot(show_label=False, min_width=460, elem_id="grpo-rewards")
            spread = gr.Plot(show_label=False, min_width=460, elem_id="grpo-spread")
        table = gr.Dataframe(label="Sampled completions and their rewards (newest first)", interactive=False,
                             wrap=True, max_height=420, elem_id="grpo-completions")
    view = gr.State(GrpoView())
    timer = gr.Timer(POLL_S)

    def on_tick(v: GrpoView) -> tuple:
        v, new = follow(studio, v)
        s = v.series
        if not new or not (s.active or v.shown):  # nothing new, or a run without GRPO signals: the panel stays hidden
            return (v,) + (gr.skip(),) * 5
        v.shown = s.active
        if not s.active:
            return v, gr.update(visible=False), *(gr.skip(),) * 4
        warn = gr.update(value=warning_html(s), visible=True) if s.warning else gr.update(visible=False)
        rows = gr.update(value=s.table(), headers=s.table_headers()) if s.completions else gr.skip()
        return v, gr.update(visible=s.active), warn, reward_figure(s), spread_figure(s), rows

    timer.tick(on_tick, inputs=view, outputs=[view, box, gaming, rewards, spread, table], show_progress="hidden",
               concurrency_limit=None, trigger_mode="once", api_name="poll_grpo")
