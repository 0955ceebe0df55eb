"""Train tab: hyperparameters, Start / Stop / Resume, and live charts of the one run the app holds.

The run trains in its own process (``Studio.start_training``); this tab only reads its folder's events, once for the
whole app (``chart_feed.ChartFeed``). A ``gr.Timer`` polls that shared reading; each browser keeps in ``gr.State`` which
version of it it has drawn, so a reloaded page or a second browser draws the whole run from the start and then follows
the same live run. Closing the page never touches the run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr

from studio.config import TrainConfig
from studio.errors import BusyError
from studio.ui import charts, pref_charts
from studio.ui.chart_feed import ChartFeed, ChartSnapshot, job_key
from studio.ui.common import AppContext, error_box, error_text, next_step
from studio.ui.forms import TrainForm, widget
from studio.ui.method_view import check_start_from, method_of
from studio.ui.method_widgets import render_method
from studio.ui.train_status import failure_box, progress_html, status_line  # noqa: F401 (tests read it here)

TAB_ID = "train"
LABEL = "3 · Train"
POLL_S = 1.0
LIVE = ("preparing", "running", "stopping")
ROWS = (("max_steps", "epochs", "learning_rate", "lr_scheduler", "warmup_ratio"),
        ("batch_size", "grad_accum", "gradient_checkpointing", "packing"))
"""The ``TrainConfig`` fields shown, row by row (``max_length``/``loss_on`` are on the Data tab)."""
MORE_ROWS = (("optim", "weight_decay", "max_grad_norm", "seed", "booster"),
             ("logging_steps", "save_steps", "save_total_limit", "eval_steps"),
             ("early_stopping_patience", "keep_best", "best_metric", "eval_accuracy_rows"),
             ("device", "precision", "tensorboard", "report_to", "run_name"), ("processes", "distributed"))
"""The rows under "More settings" (then ``probe_prompts``, full width)."""


# ----------------------------------------------------------------------------------------------------- core glue
@dataclass
class TrainView:
    """One browser's view of the app's run: which job it follows, how far it has read, and the curves so far.

    From the Train tab's timer, ``series`` is the shared snapshot's (read it, never change it) and ``version`` says
    which snapshot this browser has drawn; :func:`follow` fills a view of its own instead."""

    key: str = ""
    cursor: int = 0
    series: charts.RunSeries = field(default_factory=charts.RunSeries)
    overlays: list[tuple[str, list[tuple[int, float]]]] = field(default_factory=list)
    shown_status: str = ""
    shown_state: str = ""
    """The run's phase when the buttons were last set (they are set again only when it changes)."""
    version: int = -1
    """The ``ChartSnapshot.version`` whose charts and log this browser shows (-1: nothing drawn yet)."""
    pref_shown: bool = False
    """The preference chart is visible in this browser."""
    method: str = "sft"
    """The followed run's ``train.method`` (its own signals get a chart when it is not SFT)."""
    reference: tuple[float, str] | None = None
    """Where its loss starts by design (DPO: ln 2), drawn dotted on the loss chart."""


def follow(studio: Any, view: TrainView) -> tuple[TrainView, bool]:
    """Read the job's new events into ``view`` (replaying from 0 when the job changed); True when any arrived."""
    job = studio.job
    key = job_key(job)
    if key != view.key:
        view = TrainView(key=key, overlays=view.overlays)
        cfg = getattr(job, "cfg", None)
        view.method = method_of(cfg)
        view.reference = pref_charts.start_reference(view.method, getattr(getattr(cfg, "train", None),
                                                                          "loss_type", None))
    if job is None:
        return view, False
    events, view.cursor = job.events.since(view.cursor)
    view.series.add(events)
    return view, bool(events)


def overlay_points(studio: Any, names: list[str]) -> list[tuple[str, list[tuple[int, float]]]]:
    """Train-loss curves of earlier runs, by run name."""
    from studio.runs import list_runs

    wanted = set(names or [])
    return [(r.name, r.losses()) for r in list_runs(studio.runs_dir) if r.name in wanted]


def run_choices(studio: Any) -> tuple[list[str], list[str]]:
    """(every run name, runs that can be resumed), newest first."""
    from studio.runs import list_runs

    runs = list_runs(studio.runs_dir)
    resumable = [r.name for r in runs if r.checkpoint_path is not None and r.status in ("stopped", "failed",
                                                                                        "interrupted")]
    return [r.name for r in runs], resumable


def controls(studio: Any, state: str | None = None) -> tuple[bool, bool, list[str], str | None]:
    """``(stop enabled, resume enabled, resumable runs, run to preselect)`` for the app's run in ``state``: Stop
    only while a run is live, Resume only when no run is live and one can be resumed; a run that just stopped (or
    failed, or was interrupted) with a checkpoint is the one preselected."""
    job = getattr(studio, "job", None)
    state = state or (job.status().state if job is not None else "idle")
    live = state in LIVE
    _, resumable = run_choices(studio)
    own = job.run_dir.name if job is not None and state in ("stopped", "failed", "interrupted") else None
    return live, not live and bool(resumable), resumable, own if own in resumable else None


def start(studio: Any, cfg: Any, resume: str | None = None) -> tuple[str, str | None]:
    """Start (or resume) a run; returns (message, run_dir). A second start raises BusyError."""
    if resume:
        from studio.runs import load_run

        run = load_run(studio.runs_dir / resume)
        job = studio.start_training(run.config, resume=run.path)
        return f"Resuming {run.name} from {run.checkpoint_path.name if run.checkpoint_path else 'its checkpoint'}.", \
            str(job.run_dir)
    job = studio.start_training(cfg)
    return f"Started {job.run_dir.name}: loading the model and the data…", str(job.run_dir)


def poll_outputs(studio: Any, snap: ChartSnapshot, v: TrainView) -> tuple:
    """The timer's outputs for a browser whose view is ``v`` (updated in place) at the shared snapshot ``snap``:
    only what changed since this browser's last tick is sent, the rest is ``gr.skip()`` (the plots are sent once
    per snapshot version, already serialized; the buttons only when the run's phase changed)."""
    skip = gr.skip()
    status = snap.status if snap.status != v.shown_status else skip
    progress = snap.progress if status is not skip else skip
    v.shown_status = snap.status
    first, charts_new = v.version < 0, snap.version != v.version
    v.version = snap.version
    loss = metrics = log = pref = skip
    if charts_new:
        loss = charts.loss_figure(snap.series, v.overlays, snap.reference) if v.overlays else snap.loss
        metrics, log = snap.metrics, snap.log_tail
        show = snap.pref is not None
        if first or show != v.pref_shown:  # its visibility is sent when it changes (and on a browser's first draw)
            pref = gr.update(value=snap.pref, visible=show)
        elif show:
            pref = snap.pref
        v.pref_shown = show
    failed = start = reason = skip
    buttons = (skip,) * 3
    if snap.state != v.shown_state:
        v.shown_state = state = snap.state
        s = snap.series
        if state == "failed":
            message, suggestion = s.failure or (s.message, "")
            failed = gr.update(value=failure_box(message, suggestion), visible=True)
        else:
            failed = error_box(None)
        live = state in LIVE
        job = studio.job
        name = job.run_dir.name if live and job is not None and snap.key == job_key(job) else ""
        reason = f"⏳ Disabled while run `{name}` is {state}: one run at a time. Press **Stop** to end it." \
            if live else ""
        start = gr.update(interactive=not live)
        can_stop, can_resume, resumable, own = controls(studio, state)
        picked = {"value": own} if own else {}
        buttons = (gr.update(interactive=can_stop), gr.update(interactive=can_resume),
                   gr.update(choices=resumable, **picked))
    return (v, status, progress, loss, metrics, log, failed, start, reason, *buttons, pref)


# ----------------------------------------------------------------------------------------------------------- UI
@dataclass
class TrainHandles:
    form: TrainForm
    start: gr.Button
    stop: gr.Button
    resume: gr.Button
    resume_run: gr.Dropdown
    overlay: gr.Dropdown
    status: gr.Markdown
    progress: gr.HTML
    loss_plot: gr.Plot
    metrics_plot: gr.Plot
    pref_plot: gr.Plot
    log_tail: gr.Textbox
    error: gr.Markdown
    view: gr.State
    timer: gr.Timer
    on_start: Callable[[dict], dict]
    """``on_start(values) -> {component: update}`` (Start button; values from ``ctx.forms.components()``)."""
    on_tick: Callable[[TrainView], tuple]
    """``on_tick(view) -> outputs`` (the timer's handler)."""
    on_stop: Callable[[], dict]
    on_resume: Callable[[str | None], dict]
    on_overlay: Callable[[list[str], TrainView], tuple]
    method: Any = None
    """The Method block (``method_widgets.MethodBlock``)."""
    run_time: Any = None
    """The run's time estimate beside Start (the same line as the Model tab's)."""
    feed: ChartFeed | None = None
    """The app's shared reading of its run (``builds`` counts its figure builds)."""


def render(studio: Any, ctx: AppContext) -> TrainHandles:
    t = ctx.initial.train
    gr.Markdown("### Train the adapter\nOne run at a time for the whole app. The charts follow the run live; reload "
                "the page or open a second browser and you see the same run. Closing the page does not stop it.")
    method_block = render_method(studio, ctx)
    edits: dict[str, Any] = dict(method_block.widgets)

    def edit(name: str) -> None:
        # label, info, kind, range and choices come from the field's metadata; the elem_id is for the browser tests
        edits[name] = widget(TrainConfig, name, getattr(t, name), elem_id=f"train-{name.replace('_', '-')}")

    def rows(layout: tuple[tuple[str, ...], ...]) -> None:
        for names in layout:
            with gr.Row():
                for name in names:
                    edit(name)

    rows(ROWS)
    with gr.Accordion("More settings", open=False):
        rows(MORE_ROWS)
        edit("probe_prompts")
    all_runs, _ = run_choices(studio)
    can_stop, can_resume, resumable, _ = controls(studio)
    with gr.Row(equal_height=True):
        with gr.Column(scale=1, min_width=200):
            start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
            start_reason = gr.Markdown("", elem_id="train-start-reason")
            run_time = gr.Markdown("", elem_id="train-time-estimate")  # written by the Model tab's estimate
            ctx.time_lines.append(run_time)
        stop_btn = gr.Button("Stop", variant="stop", interactive=can_stop, elem_id="train-stop")
        resume_run = gr.Dropdown(resumable, value=resumable[0] if resumable else None, label="Resume run",
                                 info="Stopped, failed or interrupted runs with a checkpoint.", scale=2,
                                 elem_id="train-resume-run")
        resume_btn = gr.Button("Resume", interactive=can_resume, elem_id="train-resume")
    error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="train-error")
    status = gr.Markdown("No run yet. Set the hyperparameters and press **Start**.", elem_classes=["studio-status"],
                        elem_id="train-status")
    progress = gr.HTML(progress_html(0, "idle"), elem_id="train-progress")
    with gr.Row():
        # figures are drawn by the first timer tick: building plotly figures here would slow the app's start
        loss_plot = gr.Plot(label="Loss", show_label=False, min_width=460, elem_id="train-loss")
        metrics_plot = gr.Plot(label="Learning rate, grad norm, real tokens/s (MFU), memory", show_label=False,
                               min_width=460, elem_id="train-metrics")
    pref_plot = gr.Plot(label="Rewards, margin, reward accuracy", show_label=False, visible=False,
                        elem_id="train-pref")
    overlay = gr.Dropdown(all_runs, value=[], multiselect=True, label="Overlay earlier runs on the loss chart",
                          elem_id="train-overlay")
    log_tail = gr.Textbox(label="Log (newest last)", lines=8, max_lines=8, interactive=False, autoscroll=True,
                          elem_id="train-log")
    from studio.ui.grpo_panel import render_train_panel

    render_train_panel(studio, ctx)  # GRPO runs: reward charts, sampled completions, gaming warning
    view = gr.State(TrainView())
    timer = gr.Timer(POLL_S)
    has_chat = "chat" in getattr(ctx, "tab_ids", ())
    next_step(ctx, "when the run finishes, compare the base and the tuned model side by side in the **Chat** tab."
              if has_chat else "when the run finishes, its adapter is in the run folder shown above "
              "(`adapter/`); `studio chat --run <run folder>` tries it.", "chat" if has_chat else None,
              "Next: Chat →")

    form = TrainForm(**edits)
    ctx.forms.train = form
    tick_outputs = [view, status, progress, loss_plot, metrics_plot, log_tail, error, start_btn, start_reason,
                    stop_btn, resume_btn, resume_run, pref_plot]

    feed = ChartFeed(period=POLL_S)

    def on_tick(v: TrainView) -> tuple:
        snap = feed.current(studio)
        if snap.key != v.key:  # a new run (or the first tick): drawn from its start
            v = TrainView(key=snap.key, overlays=v.overlays, pref_shown=v.pref_shown)
        v.series, v.cursor, v.method, v.reference = snap.series, snap.cursor, snap.method, snap.reference
        return poll_outputs(studio, snap, v)

    def on_poll(v: TrainView) -> tuple:
        """``on_tick`` for gradio: the view is changed in place, so the session's state is only set again when it
        is a new one (setting a ``gr.State`` costs gradio a config rebuild)."""
        out = on_tick(v)
        return (gr.skip(), *out[1:]) if out[0] is v else out

    def on_start(values: dict) -> dict:
        try:
            cfg = ctx.forms.read(values)
            check_start_from(getattr(cfg.train, "start_from", None), cfg.model.name_or_path)
            message, run_dir = start(studio, cfg)
        except BusyError as err:
            text = f"{err}. One run at a time: watch it below, or press Stop first."
            gr.Warning(text)
            return {error: error_box(text)}
        except Exception as err:  # noqa: BLE001
            text = error_text(err)
            gr.Warning(text)
            return {error: error_box(text)}
        gr.Info(message)
        return {error: error_box(None), ctx.run_dir: run_dir, status: message, start_btn: gr.update(interactive=False),
                start_reason: "⏳ Starting…", stop_btn: gr.update(interactive=True),
                resume_btn: gr.update(interactive=False)}

    def on_resume(name: str | None) -> dict:
        if not name:
            text = "Pick a run to resume (stopped, failed or interrupted runs with a checkpoint are listed)."
            gr.Warning(text)
            return {error: error_box(text)}
        try:
            message, run_dir = start(studio, None, resume=name)
        except Exception as err:  # noqa: BLE001
            text = error_text(err) + (". One run at a time." if isinstance(err, BusyError) else "")
            gr.Warning(text)
            return {error: error_box(text)}
        gr.Info(message)
        return {error: error_box(None), ctx.run_dir: run_dir, status: message, stop_btn: gr.update(interactive=True),
                resume_btn: gr.update(interactive=False)}

    def on_stop() -> dict:
        from studio.training.follower import RunProcess

        job = studio.current_job  # a second Stop aborts a run's own process
        again = isinstance(job, RunProcess) and job.status().state == "stopping"
        if studio.stop_training():
            gr.Info("Aborting: the run ends without saving this step; resume it from its last checkpoint." if again
                    else "Stopping after the current step; the adapter and a checkpoint will be saved.")
            return {error: error_box(None)}
        return {error: error_box("Nothing is running.")}

    def on_overlay(names: list[str], v: TrainView) -> tuple:
        v.overlays = overlay_points(studio, names)
        return v, charts.loss_figure(v.series, v.overlays, v.reference)

    def refresh_runs(current: list[str], picked: str | None = None) -> tuple:
        """The overlay and Resume lists from the runs folder (the Resume pick kept while it is still resumable)."""
        names, _ = run_choices(studio)
        _, can_resume, res, own = controls(studio)
        keep = picked if picked in res else own or (res[0] if res else None)
        return (gr.update(choices=names, value=[n for n in (current or []) if n in names]),
                gr.update(choices=res, value=keep), gr.update(interactive=can_resume))

    def wire() -> None:
        hidden = dict(api_visibility="undocumented", show_progress="hidden")
        control = dict(concurrency_limit=1, concurrency_id="train-control")
        start_btn.click(on_start, inputs=ctx.forms.components(),
                        outputs=[error, ctx.run_dir, status, start_btn, start_reason, stop_btn, resume_btn],
                        api_name="start_training", **control)
        resume_btn.click(on_resume, inputs=resume_run, outputs=[error, ctx.run_dir, status, stop_btn, resume_btn],
                         api_name="resume_training", **control)
        stop_btn.click(on_stop, outputs=[error], api_name="stop_training", **control)
        timer.tick(on_poll, inputs=view, outputs=tick_outputs, show_progress="hidden", concurrency_limit=None,
                   trigger_mode="once", api_name="poll")
        overlay.change(on_overlay, inputs=[overlay, view], outputs=[view, loss_plot], **hidden)
        gr.on([overlay.focus, resume_run.focus], refresh_runs, inputs=[overlay, resume_run],
              outputs=[overlay, resume_run, resume_btn], **hidden)
        ctx.blocks.load(lambda: refresh_runs([]), outputs=[overlay, resume_run, resume_btn], **hidden)

    ctx.after_render.append(wire)
    return TrainHandles(form=form, start=start_btn, stop=stop_btn, resume=resume_btn, resume_run=resume_run,
                        overlay=overlay, status=status, progress=progress, loss_plot=loss_plot,
                        metrics_plot=metrics_plot, pref_plot=pref_plot, log_tail=log_tail, error=error, view=view, timer=timer,
                        on_start=on_start, on_tick=on_tick, on_stop=on_stop, on_resume=on_resume,
                        on_overlay=on_overlay, method=method_block, run_time=run_time, feed=feed)
