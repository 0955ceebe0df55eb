"""The Train tab's "Method" block: the method radio (one line per method), its settings shown only where they
apply, and "Continue from run …" with the picked run's base model (refused in an error box when it differs from
the Model tab's). Every widget is built by ``forms.widget`` from the field metadata, so it round-trips the config.
Plain-values logic is in ``studio.ui.method_view``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr

from studio.config import TrainConfig
from studio.config_fields import field_of
from studio.ui.common import AppContext, error_box
from studio.ui.forms import widget
from studio.ui.method_view import applies, finished_runs, loss_choices, method_choices, start_from_note

SETTINGS = ("beta", "loss_type", "simpo_gamma", "num_generations", "max_completion_length", "temperature", "kl_beta",
            "stop_at_answer", "rewards")
"""The method settings shown beside the radio (those ``TrainConfig`` has), each only for the methods it applies to
(GRPO's sampling settings, its stop and its reward list, one reward a line, for grpo)."""


def has_field(name: str) -> bool:
    try:
        field_of(TrainConfig, name)
        return True
    except Exception:  # noqa: BLE001 - a field this branch's config does not have
        return False


@dataclass
class MethodBlock:
    widgets: dict[str, Any] = field(default_factory=dict)
    """``TrainConfig`` field -> widget (method, beta, …, start_from): merged into the ``TrainForm``."""
    note: Any = None
    error: Any = None
    on_method: Callable[[str], tuple] | None = None
    on_start_from: Callable[[str | None, str | None], tuple] | None = None


def render_method(studio: Any, ctx: AppContext) -> MethodBlock:
    """The block's widgets (call inside the tab's layout); wiring is queued on ``ctx.after_render``."""
    t = ctx.initial.train
    block = MethodBlock()
    if not has_field("method"):
        return block
    w = block.widgets
    method_now = t.method
    with gr.Group(elem_id="train-method-block"):
        with gr.Row(equal_height=False):
            w["method"] = widget(TrainConfig, "method", t.method, kind="radio", choices=method_choices(), scale=3,
                                 elem_id="train-method")
            with gr.Column(scale=2, min_width=260):
                for name in SETTINGS:
                    if has_field(name):
                        extra = {"choices": loss_choices(method_now)} if name == "loss_type" else {}
                        shown = applies(name, method_now) and (name != "loss_type" or bool(extra["choices"]))
                        w[name] = widget(TrainConfig, name, getattr(t, name), visible=shown,
                                         elem_id=f"train-{name.replace('_', '-')}", **extra)
        if has_field("start_from"):
            with gr.Row(equal_height=False):
                w["start_from"] = widget(TrainConfig, "start_from", t.start_from, kind="dropdown",
                                         choices=finished_runs(studio.runs_dir), scale=2,
                                         elem_id="train-start-from")
                block.note = gr.Markdown(start_from_note(t.start_from, ctx.initial.model.name_or_path)[0],
                                         elem_id="train-start-from-note")
            block.error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="train-start-from-error")
    settings = [w[n] for n in SETTINGS if n in w]

    def on_method(method: str, loss: str | None = None) -> tuple:
        """Show the settings that apply to ``method``; the loss variants are the method's own."""
        out = []
        for n in SETTINGS:
            if n not in w:
                continue
            if n == "loss_type":
                variants = loss_choices(method)
                out.append(gr.update(visible=applies(n, method) and bool(variants), choices=variants,
                                     value=loss if loss in variants else None))
            else:
                out.append(gr.update(visible=applies(n, method)))
        return tuple(out)

    def on_start_from(run_dir: str | None, base_model: str | None) -> tuple:
        note, problem = start_from_note(run_dir, base_model or "")
        if problem:
            gr.Warning(problem)
        return note, error_box(problem)

    def refresh_runs(current: str | None) -> Any:
        choices = finished_runs(studio.runs_dir)
        return gr.update(choices=choices, value=current if current in [v for _, v in choices] else "")

    block.on_method, block.on_start_from = on_method, on_start_from

    def wire() -> None:
        hidden = dict(show_progress="hidden", api_visibility="undocumented")
        if settings:
            inputs = [w["method"], *([w["loss_type"]] if "loss_type" in w else [])]
            w["method"].change(on_method, inputs=inputs, outputs=settings, **hidden)
        if "start_from" in w:
            base = ctx.forms.model.name_or_path if ctx.forms.model is not None else None
            inputs = [w["start_from"], *([base] if base is not None else [])]
            triggers = [w["start_from"].change, *([base.change] if base is not None else [])]
            gr.on(triggers, on_start_from if base is not None else (lambda r: on_start_from(r, ctx.initial.model.
                                                                                              name_or_path)),
                  inputs=inputs, outputs=[block.note, block.error], show_progress="hidden", api_name="start_from")
            w["start_from"].focus(refresh_runs, inputs=w["start_from"], outputs=w["start_from"], **hidden)

    ctx.after_render.append(wire)
    return block
