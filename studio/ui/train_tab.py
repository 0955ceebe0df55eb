"""Train tab: hyperparameters, Start / Stop / Resume, and live charts of the one run the app holds.

The run trains in its own process (``Studio.start_training``); this tab only reads its folder's events. A ``gr.Timer`` polls it with a
cursor kept per browser in ``gr.State``, so a reloaded page or a second browser replays the log from the start and
then follows the same live run. Closing the page never touches the run.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr

from studio.config import TrainConfig
from studio.errors import BusyError
from studio.formatting import format_seconds
from studio.ui import charts, pref_charts
from studio.ui.common import AppContext, error_box, error_text, next_step
from studio.ui.forms import TrainForm, widget
from studio.ui.method_view import check_start_from, method_of
from studio.ui.method_widgets import render_method
from studio.ui.train_status import failure_box, progress_html, status_line

TAB_ID = "train"
LABEL = "3 · Train"
POLL_S = 1.0
TAIL_LINES = 40
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
    """One browser's view of the app's run: which job it follows, how far it has read, and the curves so far."""

    key: str = ""
    cursor: int = 0
    series: charts.RunSeries = field(default_factory=charts.RunSeries)
    overlays: list[tuple[str, list[tuple[int, float]]]] = field(default_factory=list)
    shown_status: str = ""
    drawn: bool = False
    """The charts were drawn once in this browser (the first tick always draws)."""
    method: str = "sft"
    """The followed run's ``train.method`` (its own signals get a chart when it is not SFT)."""
    reference: tuple[float, str] | None = None
    """Where its loss starts by design (DPO: ln 2), drawn dotted on the loss chart."""


def _job_key(job: Any) -> str:
    return f"{job.run_dir}#{id(job)}" if job is not None else ""


def follow(studio: Any, view: TrainView) -> tuple[TrainView, bool]:
    """Read the job's new events into ``view`` (replaying from 0 when the job changed); True when any arrived."""
    job = studio.job
    key = _job_key(job)
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


@dataclass(frozen=True)
class _ChartsAt:
    """A chart-cache key: one job at one cursor with the same overlays; ``view`` rides along, not compared."""

    at: tuple
    view: TrainView = field(compare=False, repr=False)


def figure_cache(size: int = 8) -> Callable[[TrainView], tuple[Any, Any]]:
    """The charts of one job at one cursor, built once for every browser following it (building the two plotly
    figures costs ~0.1 s of CPU; twenty browsers rebuilding them each step slowed the run they watch ~3x).

    One per app (made in ``render``): what it shares between sessions is figures that depend on the run's events up
    to the cursor only, never mutated after they are built. ``functools.lru_cache`` is thread-safe."""

    @functools.lru_cache(maxsize=size)
    def build(key: _ChartsAt) -> tuple[Any, Any, Any]:
        v = key.view
        pref = pref_charts.preference_figure(v.series, v.method) if v.method not in ("sft", "grpo") else None
        return charts.loss_figure(v.series, v.overlays, v.reference), charts.metrics_figure(v.series), pref

    def get(v: TrainView) -> tuple[Any, Any, Any]:
        return build(_ChartsAt((v.key, v.cursor, tuple((name, len(points)) for name, points in v.overlays)), v))

    return get


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

    shared_charts = figure_cache()

    def draw(v: TrainView, force: bool = False) -> tuple:
        """Outputs for ``tick_outputs``; plots are skipped when nothing new arrived."""
        state, text, frac = status_line(studio, v)
        changed = force or text != v.shown_status
        v.shown_status = text
        s = v.series
        eta = f" · ETA {format_seconds(s.eta_s)}" if state in ("running", "stopping") and s.eta_s is not None else ""
        if state == "failed":
            message, suggestion = s.failure or (s.message, "")
            failed = gr.update(value=failure_box(message, suggestion), visible=True)
        else:
            failed = error_box(None)
        live = state in LIVE
        name = studio.job.run_dir.name if live and studio.job is not None else ""
        reason = f"⏳ Disabled while run `{name}` is {state}: one run at a time. Press **Stop** to end it." \
            if live else ""
        loss_fig, metrics_fig, pref_fig = shared_charts(v) if force else (gr.skip(), gr.skip(), None)
        pref = gr.skip() if not force else gr.update(value=pref_fig, visible=pref_fig is not None)
        buttons = (gr.skip(),) * 3
        if changed:
            can_stop, can_resume, resumable, own = controls(studio, state)
            picked = {"value": own} if own else {}
            buttons = (gr.update(interactive=can_stop), gr.update(interactive=can_resume),
                       gr.update(choices=resumable, **picked))
        return (v, text if changed else gr.skip(), progress_html(frac, state, eta) if changed else gr.skip(),
                loss_fig, metrics_fig,
                "\n".join(s.lines[-TAIL_LINES:]) if force else gr.skip(),
                failed if changed else gr.skip(),
                gr.update(interactive=not live) if changed else gr.skip(), reason if changed else gr.skip(), *buttons,
                pref)

    def on_tick(v: TrainView) -> tuple:
        v, new = follow(studio, v)
        force = new or not v.drawn
        v.drawn = True
        return draw(v, force=force)

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
        timer.tick(on_tick, inputs=view, outputs=tick_outputs, show_progress="hidden", concurrency_limit=None,
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
                        on_overlay=on_overlay, method=method_block, run_time=run_time)
