"""Model tab: preset or any Hub id / local folder, quantization, attention (with the reason), chat template, LoRA,
and the memory estimate drawn against the device's memory, before anything is downloaded or loaded.

Glue only: ``studio.modeling`` knows presets, attention and memory; ``forms`` maps widgets to the config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from studio.config import LoraConfig, ModelConfig, RunConfig
from studio.errors import StudioError
from studio.ui import charts
from studio.ui.common import AppContext, error_box, error_text, next_step
from studio.ui.forms import LoraForm, ModelForm, widget
from studio.ui.method_view import method_of

TAB_ID = "model"
LABEL = "2 · Model"
ELEM_IDS = {"name_or_path": "model-name", "revision": "model-revision", "quantization": "model-quantization",
            "bnb_4bit_quant_type": "model-quant-type", "double_quant": "model-double-quant",
            "compute_dtype": "model-compute-dtype", "attn_implementation": "model-attention",
            "chat_template": "model-chat-template", "trust_remote_code": "model-trust-remote-code",
            "r": "lora-r", "alpha": "lora-alpha", "dropout": "lora-dropout", "target_modules": "lora-target-modules",
            "bias": "lora-bias", "use_rslora": "lora-use-rslora", "use_dora": "lora-use-dora"}
"""The elem_id of each ``ModelForm``/``LoraForm`` widget (the browser tests find them by it)."""


# ----------------------------------------------------------------------------------------------------- core glue
def preset_choices() -> list[tuple[str, str]]:
    """(label, Hub id) for the model dropdown; any other id or folder may be typed."""
    from studio.modeling import list_presets

    return [(f"{p.name} — {p.description}" if p.description else p.name, p.model) for p in list_presets()]


def preset_note(name_or_path: str) -> str:
    """What the preset knows about this model, or a line saying it is used as given."""
    from studio.modeling import find_preset

    from studio.modeling.sources import describe_source

    preset = find_preset(name_or_path or "")
    weights = f"Weights: {describe_source(name_or_path).note}." if (name_or_path or "").strip() else ""
    if preset is None:
        kind = "a GGUF file" if str(name_or_path).lower().endswith(".gguf") else "a Hub id or local folder"
        return (f"`{name_or_path}` is not a preset: it is loaded as {kind} with the settings below. {weights}")
    notes = [_note_text(n) for n in preset.notes]
    lines = [f"**{preset.name}** (`{preset.model}`): {preset.description}", f"- {weights}"]
    lines += [f"- {n}" for n in notes if n]
    return "\n".join(lines)


def offline_offer(name_or_path: str, revision: str | None = None) -> tuple[str | None, str]:
    """``(problem, button label)``: the sentence when the model needs the Hub and the Hub is out of reach (None
    otherwise, fast), and the label of the button that switches to the offline model the app itself uses."""
    from studio.modeling.sources import hub_problem, offline_model

    problem = hub_problem(name_or_path or "", revision)
    model, _ = offline_model()
    return problem, f"Use {model.split('/')[-1]} (works offline)"


def _note_text(note: Any) -> str:
    if isinstance(note, dict):
        return "; ".join(f"{k}: {v}" for k, v in note.items())
    return str(note)


def with_preset(cfg: RunConfig) -> RunConfig | None:
    """``cfg`` with the chosen preset's model/LoRA/train settings layered in (None when it is not a preset)."""
    from studio.modeling import apply_preset, find_preset

    preset = find_preset(cfg.model.name_or_path)
    return apply_preset(cfg, preset) if preset is not None else None


def attention_text(cfg: RunConfig) -> str:
    """``**sdpa**: flash-attn not installed: using PyTorch SDPA ...`` for the chosen model and setting."""
    from studio.modeling import choose_attention, find_preset

    try:
        impl, reason = choose_attention(cfg.model.attn_implementation, preset=find_preset(cfg.model.name_or_path),
                                        device=cfg.train.device)
    except StudioError as err:
        return f"Attention: {err}"
    return f"Attention: **{impl}** ({reason})"


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def method_words(cfg: RunConfig) -> str:
    """`` for DPO (a reference pass, 2 answers per row)`` for a preference method ("" for SFT)."""
    method = method_of(cfg)
    if method == "sft":
        return ""
    try:
        from studio.training.methods import recipe

        r = recipe(method)
        how = [w for w in ("a reference pass" if r.uses_reference else "",
                           f"{r.answers_per_row} answers per row" if r.answers_per_row > 1 else "") if w]
    except Exception:  # noqa: BLE001 - no registry: the method's name alone
        how = []
    return f" for **{method.upper()}**" + (f" ({', '.join(how)})" if how else "")


def measured_peak_gb(studio: Any, cfg: RunConfig | None = None) -> float | None:
    """Peak memory of the current or last run (after its first steps), for the bar beside the estimate; None when
    ``cfg`` loads another model than that run (a different model, quantization or dtype measures nothing here)."""
    job = getattr(studio, "job", None)
    if job is None:
        return None
    job_cfg = getattr(job, "cfg", None)
    if cfg is not None and (job_cfg is None or job_cfg.model != cfg.model or method_of(job_cfg) != method_of(cfg)):
        return None
    from studio.events import Log

    last = job.events.last(Log)
    mem = last and (last.peak_memory_bytes or last.memory_bytes)
    return mem / charts.GB if mem else None


@dataclass
class EstimateView:
    figure: Any
    summary: str
    params: str
    error: str | None = None
    estimate: Any = None
    time: str = ""
    """The run's time before Start (measured on this machine, or from FLOPs), or ""."""


def build_estimate(cfg: RunConfig, studio: Any = None) -> EstimateView:
    """The memory estimate (from the model config alone) as a chart and two lines of text; never raises."""
    from studio.modeling import estimate_memory

    try:
        est = estimate_memory(cfg)
    except Exception as err:  # noqa: BLE001
        return EstimateView(figure=charts._empty("Estimated training memory", "No estimate", 230),
                            summary="", params="", error=error_text(err))
    measured = measured_peak_gb(studio, cfg) if studio is not None else None
    fig = charts.memory_bar(est.parts(), est.device_gb, est.device_name, measured_gb=measured)
    verdict = "fits" if est.fits else "**does not fit**: try 4-bit, a smaller batch, a shorter max_length or " \
                                      "gradient checkpointing"
    summary = f"Estimate{method_words(cfg)} {est.summary()}: {verdict}."
    if measured is not None:
        summary += f" Measured peak of the last run on this model: {measured:.2f} GB."
    share = est.lora_params / est.total_params if est.total_params else 0
    params = (f"**Trainable (LoRA) parameters: {_count(est.lora_params)}** of {_count(est.total_params)} "
              f"({share:.2%}); the base model stays frozen.")
    return EstimateView(figure=fig, summary=summary, params=params, estimate=est,
                        time=time_text(cfg, getattr(studio, "runs_dir", None), est.lora_params))


def time_text(cfg: RunConfig, runs_dir: Any, lora_params: int = 0) -> str:
    """``⏱ Time: ~2 min (30 steps × 4.0 s/step). Measured on this machine by run ...`` ("" when unknown)."""
    from studio.speed.run_time import estimate_run_time

    try:
        found = estimate_run_time(cfg, runs_dir, lora_params=lora_params)
    except Exception:  # noqa: BLE001 - an estimate never fails the tab
        return ""
    return f"⏱ {found.summary()}" if found is not None else ""


# ----------------------------------------------------------------------------------------------------------- UI
@dataclass
class ModelHandles:
    model: ModelForm
    lora: LoraForm
    note: gr.Markdown
    attention: gr.Markdown
    memory: gr.Plot
    summary: gr.Markdown
    run_time: gr.Markdown
    """The run's time before Start, beside the memory estimate."""
    params: gr.Markdown
    error: gr.Markdown
    estimate: Callable[[dict], dict]
    """``estimate(values) -> {component: update}``: the handler behind the memory chart."""
    use_offline: gr.Button
    """Shown when the model needs the Hub and the Hub is out of reach: switches to the offline model."""
    use_offline_model: Callable[[dict], dict]
    pick_model: Callable[[dict], dict]
    """``pick_model(values) -> {component: update}``: apply a preset's settings when the model is a preset."""


def render(studio: Any, ctx: AppContext) -> ModelHandles:
    m, lc = ctx.initial.model, ctx.initial.lora
    gr.Markdown("### Choose the base model and how it is loaded\nPick a preset (it carries the pad token, chat "
                "template and LoRA targets each model needs) or type any Hub id or local folder. The memory estimate is computed "
                "from the model's config alone, before anything is downloaded.")
    four_bit = m.quantization == "4bit"

    def edit(cls: type, name: str, value: Any, **kw: Any) -> Any:
        # label, info, kind, range and choices come from the field's metadata; the elem_id is for the browser tests
        return widget(cls, name, value, elem_id=ELEM_IDS[name], **kw)

    with gr.Row():
        with gr.Column(scale=3):
            # the presets live in studio.modeling, not in the config: the one thing the metadata can't say here
            name = edit(ModelConfig, "name_or_path", m.name_or_path, choices=preset_choices())
            note = gr.Markdown(preset_note(m.name_or_path), elem_id="model-note")
        with gr.Column(scale=2):
            chat_template = edit(ModelConfig, "chat_template", m.chat_template)
            attn = edit(ModelConfig, "attn_implementation", m.attn_implementation)
            attention = gr.Markdown(elem_id="model-attention-reason")
    with gr.Group():
        with gr.Row():
            quantization = edit(ModelConfig, "quantization", m.quantization)
            # shown only for 4-bit (state, not metadata: the quantization radio toggles them)
            quant_type = edit(ModelConfig, "bnb_4bit_quant_type", m.bnb_4bit_quant_type, visible=four_bit)
            double_quant = edit(ModelConfig, "double_quant", m.double_quant, visible=four_bit)
            compute_dtype = edit(ModelConfig, "compute_dtype", m.compute_dtype)
    with gr.Accordion("Revision and remote code", open=False):
        with gr.Row():
            revision = edit(ModelConfig, "revision", m.revision)
            trust = edit(ModelConfig, "trust_remote_code", m.trust_remote_code)
    gr.Markdown("#### LoRA adapter")
    with gr.Row():
        r = edit(LoraConfig, "r", lc.r)
        alpha = edit(LoraConfig, "alpha", lc.alpha)
        dropout = edit(LoraConfig, "dropout", lc.dropout)
        target = edit(LoraConfig, "target_modules", lc.target_modules)
    with gr.Row():
        bias = edit(LoraConfig, "bias", lc.bias)
        rslora = edit(LoraConfig, "use_rslora", lc.use_rslora)
        dora = edit(LoraConfig, "use_dora", lc.use_dora)
    error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="model-error")
    use_offline = gr.Button(offline_offer(m.name_or_path)[1], visible=False, variant="primary", size="sm",
                            elem_id="model-use-offline")
    params = gr.Markdown(elem_id="model-params")
    memory = gr.Plot(label="Memory estimate", show_label=False, elem_id="model-memory")
    summary = gr.Markdown(elem_id="model-memory-summary")
    run_time = gr.Markdown(elem_id="model-time-estimate")
    ctx.time_lines.insert(0, run_time)
    next_step(ctx, "set the hyperparameters and start training in the **Train** tab (batch size and max_length "
                   "there change this estimate).", "train", "Next: Train →")

    model_form = ModelForm(name_or_path=name, revision=revision, quantization=quantization,
                           bnb_4bit_quant_type=quant_type, double_quant=double_quant, compute_dtype=compute_dtype,
                           attn_implementation=attn, chat_template=chat_template, trust_remote_code=trust)
    lora_form = LoraForm(r=r, alpha=alpha, dropout=dropout, target_modules=target, bias=bias, use_rslora=rslora,
                         use_dora=dora)
    ctx.forms.model, ctx.forms.lora = model_form, lora_form
    estimate_outputs = [memory, summary, params, attention, error, use_offline]  # + ctx.time_lines, once all exist

    def estimate(values: dict) -> dict:
        """The chart and counts for the forms; a refused value or an unreachable model clears them (never stale)."""
        try:
            cfg = ctx.forms.read(values)
        except StudioError as err:
            return {error: error_box(str(err)), summary: "", params: "", attention: gr.skip(),
                    memory: charts._empty("Estimated training memory", "No estimate", 230),
                    use_offline: gr.update(visible=False), **dict.fromkeys(ctx.time_lines, "")}
        problem, label = offline_offer(cfg.model.name_or_path, cfg.model.revision)
        view = build_estimate(cfg, studio)
        return {memory: view.figure, summary: view.summary, params: view.params, attention: attention_text(cfg),
                error: error_box(problem or view.error), use_offline: gr.update(visible=bool(problem), value=label),
                **dict.fromkeys(ctx.time_lines, view.time)}  # one text for every time line (Model and Train tabs)

    section_widgets = [w for form in (model_form, lora_form) for w in vars(form).values()]

    def pick_model(values: dict) -> dict:
        """A preset brings its settings (model, LoRA, train); any model id refreshes note and estimate."""
        out: dict = {note: preset_note(values.get(name) or "")}
        try:
            cfg = ctx.forms.read(values)
            applied = with_preset(cfg)
        except StudioError as err:
            out.update({error: error_box(str(err))})
            return out
        if applied is not None:
            shown = ctx.forms.write(applied)
            shown[name] = values.get(name)  # keep what the user picked
            out.update({w: v for w, v in shown.items() if w in settable})
            values = {**values, **{w: v for w, v in shown.items() if w in values}}
        out.update(estimate(values))
        return out

    settable: set = set()

    def use_offline_model(values: dict) -> dict:
        """The offline model the app itself uses, with its preset's settings (the button under the Hub warning)."""
        from studio.modeling.sources import offline_model

        model, _ = offline_model()
        return {name: model, **pick_model({**values, name: model})}

    def on_forms_written(values: dict) -> dict:
        """A whole config was written into the forms: the preset note and the estimate for it."""
        return {note: preset_note(values.get(name) or ""), **estimate(values)}

    def wire() -> None:
        estimate_outputs.extend(ctx.time_lines)  # every tab has rendered: the Train tab's line is there too
        settable.update(section_widgets)
        if ctx.forms.train is not None:
            settable.update(w for w in vars(ctx.forms.train).values() if w is not None)
        if ctx.forms.data is not None:
            settable.add(ctx.forms.data.max_length)
        inputs = ctx.forms.components()
        quantization.change(lambda q: (gr.update(visible=q == "4bit"), gr.update(visible=q == "4bit")),
                            inputs=quantization, outputs=[quant_type, double_quant], show_progress="hidden",
                            api_visibility="undocumented")
        name.input(pick_model, inputs=inputs, outputs=[note, *estimate_outputs, *sorted(settable, key=id)],
                   show_progress="minimal", trigger_mode="always_last", api_name="pick_model")
        use_offline.click(use_offline_model, inputs=inputs,
                          outputs=[name, note, *estimate_outputs, *sorted(settable - {name}, key=id)],
                          show_progress="minimal", api_name="use_offline_model")
        triggers = [w for w in section_widgets if w is not name]
        if ctx.forms.train is not None:
            t = ctx.forms.train
            triggers += [w for w in (t.batch_size, t.gradient_checkpointing, t.optim, t.device, t.method,
                                     t.max_steps, t.grad_accum, t.processes) if w is not None]
        if ctx.forms.data is not None:
            triggers.append(ctx.forms.data.max_length)
        gr.on([w.change for w in triggers], estimate, inputs=inputs, outputs=estimate_outputs,
              show_progress="minimal", trigger_mode="always_last", api_visibility="undocumented",
              api_name="estimate_on_change")
        def after_forms_written(dep: Any, first: bool) -> None:
            extra = {"api_name": "estimate"} if first else {"api_visibility": "undocumented"}
            dep.then(on_forms_written, inputs=inputs, outputs=[note, *estimate_outputs], show_progress="minimal",
                     **extra)

        ctx.forms_written.append(after_forms_written)

    ctx.after_render.append(wire)
    return ModelHandles(model=model_form, lora=lora_form, note=note, attention=attention, memory=memory,
                        summary=summary, run_time=run_time, params=params, error=error, estimate=estimate,
                        pick_model=pick_model, use_offline=use_offline, use_offline_model=use_offline_model)
