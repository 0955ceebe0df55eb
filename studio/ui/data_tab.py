"""Data tab: pick a dataset, map its columns, edit the template, and see exactly which tokens are trained.

Glue only: ``studio.data`` loads, detects, renders and measures (``studio.data.presenter`` gives the preview as
plain values, cached by ``studio.data.preview_cache``); ``forms`` maps widgets to the config; ``charts`` draws.
The preview tokenizes with the model chosen in the Model tab (the demo model by default).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from studio.config import DataConfig, RunConfig, SourceConfig, TrainConfig, load_config
from studio.data.formats import EXTRA_ROLES, PAIRED, ROLES, UNPAIRED
from studio.errors import StudioError
from studio.templates import NAMED_TEMPLATES
from studio.ui import charts
from studio.data.presenter import PreviewView, build_preview
from studio.data.preview_cache import PreviewCache
from studio.ui.common import AppContext, Reporter, error_box, error_text, next_step
from studio.ui.forms import (CHAT_TEMPLATE, EXTRA_SOURCE_HEADERS, MAPPING_ROLES, SOURCE_KINDS, SOURCE_PATH,
                             SOURCE_SAMPLE, SOURCE_UPLOAD, TEMPLATE_CHOICES, DataForm, bundled_config_for,
                             bundled_samples, widget)
from studio.ui.data_form import data_field_values, template_misfits

TAB_ID = "data"
LABEL = "1 · Data"
NO_COLUMN = ("— none —", "")
TEMPLATE_DEBOUNCE_S = 0.4
"""A template edit waits this long server-side, so a burst of keys (always_last) redraws once, with the text as
it is after the burst."""
CONFIG_FIELDS = {"path": (SourceConfig, "path"), "split": (SourceConfig, "split"), "subset": (SourceConfig, "name"),
                 "weight": (SourceConfig, "weight"), **{n: (DataConfig, n) for n in (
                     "format", "template", "response_template", "system_prompt", "eval_fraction", "max_rows",
                     "seed")}, "max_length": (TrainConfig, "max_length"), "loss_on": (TrainConfig, "loss_on")}
"""``DataForm`` field -> the config field its widget edits (the first source's, for the ``SourceConfig`` ones);
the other DataForm widgets (source kind, sample, upload, column mapping, named template, more sources) are no
config field and are built by hand."""
SOURCE_HINT = {SOURCE_UPLOAD: "Upload a dataset file (csv, tsv, json, jsonl, parquet or txt) to preview it.",
               SOURCE_PATH: "Type a Hub dataset id or a local path, then press **Load** (or Enter)."}


# ----------------------------------------------------------------------------------------------------------- UI
@dataclass
class DataHandles:
    """What the Data tab exposes: its form, its outputs, and ``refresh(values, reset=False, sample=None)`` (the
    handler behind every preview update, callable directly in tests)."""

    form: DataForm
    n_rows: gr.Slider
    summary: gr.Markdown
    highlighted: gr.HighlightedText
    histogram: gr.Plot
    stats: gr.Dataframe
    warnings: gr.Markdown
    error: gr.Markdown
    cache: PreviewCache
    refresh: Callable[..., dict]
    on_source_kind: Callable[..., dict] | None = None
    """The handler after a source-kind switch (every key it returns is one of the preview's outputs)."""
    outputs: Callable[[], list] | None = None
    """The preview handlers' output components."""


def render(studio: Any, ctx: AppContext) -> DataHandles:
    initial = ctx.initial
    cache = PreviewCache()
    samples = bundled_samples()
    init = data_field_values(initial)

    def edit(key: str, **kw: Any) -> Any:
        # label, info, kind, range and choices come from the field's metadata; the elem_id is for the browser tests
        cls, name = CONFIG_FIELDS[key]
        return widget(cls, name, init[key], elem_id=f"data-{key.replace('_', '-')}", **kw)

    gr.Markdown("### Pick a dataset and see exactly which tokens the model will learn\n"
                "Choose a bundled sample, upload a file, or name a Hub dataset. The format and column mapping are "
                "detected (override them if they are wrong); the template turns each row into text, and the "
                "**green** tokens are the ones that carry loss.")
    with gr.Row():
        with gr.Column(scale=2):
            source_kind = gr.Radio(list(SOURCE_KINDS), value=init["source_kind"], label="Source", elem_id="data-source-kind")
            sample = gr.Dropdown(samples, value=init["sample"], label="Bundled sample", visible=init["source_kind"] == SOURCE_SAMPLE,
                                 elem_id="data-sample", info="Small bundled datasets to try Studio with.")
            upload = gr.File(label="Dataset file", file_types=[".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt"],
                             type="filepath", visible=False, elem_id="data-upload")
            with gr.Group(visible=init["source_kind"] == SOURCE_PATH) as path_group:
                path = edit("path", placeholder="openai/gsm8k or ./my_data.jsonl")  # an example, not a value
                with gr.Row():
                    split = edit("split", scale=1)
                    subset = edit("subset", placeholder="main", scale=1)
                load_btn = gr.Button("Load", variant="secondary")
        with gr.Column(scale=3):
            summary = gr.Markdown("Loading the preview…", elem_id="data-summary")
            fmt = edit("format")
            with gr.Row():
                mapping = {role: gr.Dropdown([NO_COLUMN, *([init["mapping"][role]] if init["mapping"][role] else [])],
                                             value=init["mapping"][role], label=f"{role} column", visible=False,
                                             allow_custom_value=True, min_width=140, elem_id=f"data-map-{role}")
                           for role in MAPPING_ROLES}
    with gr.Accordion(f"Mix of sources ({len(init['extra_sources']) + 1})", open=bool(init["extra_sources"]),
                      elem_id="data-sources-panel") as sources_panel:
        gr.Markdown("Several sources are concatenated, each sampled by its weight (1.0 keeps every row once). The "
                    "source above is the first; add more here (a file path or Hub id each, columns as "
                    "`role=column`, empty = detected).")
        with gr.Row(equal_height=False):
            # this box edits the first source only (the others' weights are in the table below)
            weight = edit("weight", label="Weight of the first source", scale=1)
            add_source = gr.Button("Add a source", size="sm", scale=0, min_width=140, elem_id="data-add-source")
            remove_source = gr.Button("Remove the last source", size="sm", scale=0, min_width=190,
                                      elem_id="data-remove-source")
        extra_sources = gr.Dataframe(value=init["extra_sources"] or None, headers=list(EXTRA_SOURCE_HEADERS),
                                     datatype=["str", "str", "str", "number", "str"], type="array",
                                     interactive=True, column_count=len(EXTRA_SOURCE_HEADERS),
                                     label="More sources", elem_id="data-extra-sources")
    with gr.Accordion("Template", open=True):
        with gr.Row():
            template_name = gr.Dropdown(list(TEMPLATE_CHOICES), value=init["template_name"], label="Named template",
                                        info="(chat template) renders chat-style rows with the model's chat template.",
                                        elem_id="data-template-name")
            response_template = edit("response_template")
            system_prompt = edit("system_prompt")
        # the field (a name or a text) is split in two here: the named-template dropdown above, and this box with
        # the text itself, so its help is the box's own; it shows the named template's text (init["template"])
        template = edit("template", lines=3, max_lines=12,
                        info="Text with {column} placeholders (also {prompt}, {completion}, … for the mapped roles, "
                             "and {system}); empty = chat template.")
    with gr.Row():
        max_length = edit("max_length")
        loss_on = edit("loss_on")
        n_rows = gr.Slider(1, 10, step=1, value=3, label="Rows to preview", elem_id="data-n-rows")
    error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="data-error")
    highlighted = gr.HighlightedText(label="Rendered rows (green: trained tokens)", show_legend=True,
                                     color_map={"trained": "#22c55e", "cut": "#ef4444", "row": "#e5e7eb"},
                                     combine_adjacent=False, elem_id="data-preview")
    with gr.Row():
        histogram = gr.Plot(label="Token lengths", show_label=False, min_width=440, elem_id="data-histogram")
        with gr.Column(min_width=440):
            stats = gr.Dataframe(headers=["Statistic", "Value"], datatype=["str", "str"], interactive=False,
                                 label="Whole-dataset statistics", elem_id="data-stats")
            warnings = gr.Markdown(elem_id="data-warnings")
    with gr.Accordion("Held-out split and row cap", open=False):
        with gr.Row():
            eval_fraction = edit("eval_fraction")
            max_rows = edit("max_rows")
            seed = edit("seed")
    from studio.ui.grpo_panel import render_reward_preview

    render_reward_preview(studio, ctx)  # GRPO: each reward on sample answers before training
    next_step(ctx, "choose the base model, quantization and LoRA settings in the **Model** tab.", "model",
              "Next: Model →")

    form = DataForm(source_kind=source_kind, sample=sample, upload=upload, path=path, split=split, subset=subset,
                    format=fmt, mapping=mapping, template_name=template_name, template=template,
                    response_template=response_template, system_prompt=system_prompt, eval_fraction=eval_fraction,
                    max_rows=max_rows, seed=seed, max_length=max_length, loss_on=loss_on, weight=weight,
                    extra_sources=extra_sources)
    ctx.forms.data = form

    template_widgets = [template_name, template, response_template, system_prompt, max_length, loss_on]
    view_outputs = [fmt, *mapping.values(), *template_widgets, summary, highlighted, histogram, stats, warnings,
                    error]

    def probe_widget() -> Any:
        return ctx.forms.train.probe_prompts if ctx.forms.train is not None else None

    def preview_outputs() -> list:
        """The preview's outputs: its own widgets, plus the Train tab's probe prompts (they follow the data)."""
        return view_outputs + ([probe_widget()] if probe_widget() is not None else [])

    def refresh(values: dict, reset: bool = False, sample_name: str | None = None, progress: Any = None,
                toast: bool = True) -> dict:
        """Build the config from the widgets and redraw the preview.

        ``reset``: the source changed, so forget the format/mapping override and take a probe prompt from the new
        data. ``sample_name``: a bundled sample was picked, so its ready config's data settings (and probe
        prompts) are loaded first. ``progress``: a ``gr.Progress`` (or anything called as ``progress(fraction,
        desc=...)``) that shows the stages. ``toast``: also show a problem as a toast (a deliberate action, not a
        keystroke: the error box below always shows it).
        """
        values = dict(values)
        probe = probe_widget()
        out: dict = {w: gr.skip() for w in (*template_widgets, *([probe] if probe is not None else []))}
        probes_set = False
        if reset:
            values[fmt] = "auto"
            values.update({dd: None for dd in mapping.values()})
        if sample_name:
            bundled = _bundled_settings(sample_name, ctx)
            if bundled is not None:
                shown = ctx.forms.write(bundled)
                for w in (*template_widgets, fmt):
                    values[w] = shown[w]
                out.update({w: shown[w] for w in template_widgets})
                values[fmt] = "auto" if bundled.data.format == "auto" else bundled.data.format
                if probe is not None and bundled.train.probe_prompts:
                    out[probe] = values[probe] = shown[probe]
                    probes_set = True
        try:
            cfg = ctx.forms.read(values)
        except StudioError as err:
            out.update(_error_updates(str(err), toast))
            return out
        view = build_preview(cache, cfg, int(values.get(n_rows) or 3), progress=Reporter(progress),
                             describe=error_text)
        if reset and not sample_name and template_misfits(values.get(template), view):
            # a new file whose columns the old template does not name: the model's chat template renders it
            cleared = {template_name: CHAT_TEMPLATE, template: "", response_template: ""}
            values.update(cleared)
            out.update(cleared)
            cfg = ctx.forms.read(values)
            view = build_preview(cache, cfg, int(values.get(n_rows) or 3), progress=Reporter(progress),
                                 describe=error_text)
        out.update(_view_updates(view, cfg))
        if reset and probe is not None and not probes_set and view.question:
            out[probe] = view.question
        if view.error and toast:
            gr.Warning(view.error)
        return out

    def _view_updates(view: PreviewView, cfg: RunConfig) -> dict:
        shown_fmt = view.format or (cfg.data.format if cfg.data.format != "auto" else None)
        out: dict = {fmt: view.format if view.format and cfg.data.format == "auto" else cfg.data.format}
        roles = ROLES.get(shown_fmt or "", ())
        choices = [NO_COLUMN, *view.columns]
        current = view.mapping or cfg.data.sources[0].columns
        for role, dd in mapping.items():
            value = current.get(role)
            out[dd] = gr.update(choices=choices, value=value if value in view.columns else None,
                                visible=role in roles or (role in EXTRA_ROLES and shown_fmt not in (PAIRED, UNPAIRED)))
        out.update({summary: view.summary or ("Fix the problem below to see the preview." if view.error else ""),
                    highlighted: view.highlighted, histogram: charts.token_histogram(view.lengths, view.max_length),
                    stats: view.stats_rows,
                    warnings: "\n".join(f"- ⚠ {w}" for w in view.warnings) if view.warnings else
                    ("No warnings." if not view.error else ""),
                    error: error_box(view.error)})
        return out

    def _error_updates(message: str, toast: bool = True) -> dict:
        if toast:
            gr.Warning(message)
        return {summary: "Fix the problem below to see the preview.", highlighted: [], error: error_box(message),
                warnings: "", stats: [], histogram: charts.token_histogram([], 16)}

    inputs = ctx.forms.components  # called after every tab rendered (model/train widgets are inputs too)

    # Gradio hands a gr.Progress to the parameter right after the inputs whose default is one.
    def on_edit(values: dict, progress: gr.Progress = gr.Progress()) -> dict:
        return refresh(values, progress=progress, toast=False)

    def on_template(values: dict, progress: gr.Progress = gr.Progress()) -> dict:
        time.sleep(TEMPLATE_DEBOUNCE_S)  # with trigger_mode="always_last", a burst of keys redraws once more only
        return refresh(values, progress=progress, toast=False)

    def on_new_source(values: dict, progress: gr.Progress = gr.Progress()) -> dict:
        return refresh(values, reset=True, progress=progress)

    def on_sample(values: dict, progress: gr.Progress = gr.Progress()) -> dict:
        return refresh(values, reset=True, sample_name=values[sample], progress=progress)

    def on_source_kind(values: dict, progress: gr.Progress = gr.Progress()) -> dict:
        """A bundled sample (or a path / file already given) previews at once; otherwise say what to do next."""
        kind = values[source_kind]
        ready = kind == SOURCE_SAMPLE or (kind == SOURCE_PATH and (values.get(path) or "").strip()) or \
            (kind == SOURCE_UPLOAD and values.get(upload))
        if ready:
            return on_new_source(values, progress)
        return {summary: SOURCE_HINT.get(kind, ""), error: error_box(None), highlighted: [], stats: [],
                warnings: "", histogram: charts.token_histogram([], int(values.get(max_length) or 16)),
                **{dd: gr.update(choices=[NO_COLUMN], value=None) for dd in mapping.values()}}  # no file, no columns

    def show_sources(kind: str, rows: Any) -> tuple:
        """Which source widgets show, and the mix panel's title, for the kind and the extra-sources table."""
        n = sum(1 for r in _rows(rows) if r and str(r[0] or "").strip())
        panel = gr.update(label=f"Mix of sources ({n + 1})", open=True) if n else \
            gr.update(label=f"Mix of sources ({n + 1})")
        return (*_toggle_source(kind), panel)

    def wire() -> None:
        all_inputs = inputs() | {n_rows}
        hidden = dict(api_visibility="undocumented")
        # The bar and its stage show on the preview and the chart, never over the widgets being edited.
        common = dict(inputs=all_inputs, outputs=preview_outputs(), show_progress="full",
                      show_progress_on=[highlighted, histogram], trigger_mode="always_last",
                      # one preview at a time, in the order asked: an older (slower) preview never lands after a
                      # newer one, and a stale column value never meets a dropdown whose choices just changed
                      concurrency_limit=1, concurrency_id="data-preview")
        sample.input(on_sample, api_name="preview_sample", **common)
        upload.upload(on_new_source, **common, **hidden)
        path.submit(on_new_source, **common, **hidden)
        load_btn.click(on_new_source, **common, **hidden)
        gr.on([w.input for w in (fmt, *mapping.values(), response_template, system_prompt, loss_on)]
              + [w.release for w in (max_length, n_rows)] + [max_rows.submit], on_edit, **common, **hidden)
        # .change, not .input: paste, cut, Backspace and Delete change the text without a key "input" event
        template.change(on_template, **common, **hidden)
        template_name.input(_pick_template, inputs=[template_name, template, response_template],
                            outputs=[template, response_template], show_progress="hidden", **hidden
                            ).then(on_edit, **common, **hidden)
        source_kind.input(_toggle_source, inputs=source_kind, outputs=[sample, upload, path_group],
                          show_progress="hidden", **hidden).then(on_source_kind, **common, **hidden)
        panel_outputs = [sample, upload, path_group, sources_panel]
        add_source.click(_add_row, inputs=extra_sources, outputs=extra_sources, show_progress="hidden", **hidden)
        remove_source.click(_remove_row, inputs=extra_sources, outputs=extra_sources, show_progress="hidden",
                            **hidden)
        extra_sources.change(show_sources, inputs=[source_kind, extra_sources], outputs=panel_outputs,
                             show_progress="hidden", **hidden).then(on_edit, **common, **hidden)
        model = ctx.forms.model
        if model is not None:
            gr.on([w.change for w in (model.name_or_path, model.chat_template) if w is not None], on_edit,
                  **common, **hidden)
        if ctx.forms.train is not None and ctx.forms.train.method is not None:  # preference rows preview per method
            ctx.forms.train.method.input(on_edit, **common, **hidden)

        def after_forms_written(dep: Any, first: bool) -> None:
            dep.then(show_sources, inputs=[source_kind, extra_sources], outputs=panel_outputs,
                     show_progress="hidden", **hidden
                     ).then(on_edit, **common, **({"api_name": "preview"} if first else hidden))

        ctx.forms_written.append(after_forms_written)

    ctx.after_render.append(wire)
    return DataHandles(form=form, n_rows=n_rows, summary=summary, highlighted=highlighted, histogram=histogram,
                       stats=stats, warnings=warnings, error=error, cache=cache, refresh=refresh,
                       on_source_kind=on_source_kind, outputs=preview_outputs)


def _rows(rows: Any) -> list[list[Any]]:
    """The extra-sources table as a list of rows (gradio may hand a list, a dict with "data", or a DataFrame)."""
    if isinstance(rows, dict):
        rows = rows.get("data")
    if hasattr(rows, "values") and hasattr(rows, "columns"):
        rows = rows.values.tolist()
    return [list(r) for r in rows or []]


def _add_row(rows: Any) -> list[list[Any]]:
    kept = [r for r in _rows(rows) if any(str(c or "").strip() for c in r)]
    return [*kept, ["", "train", "", 1.0, ""]]


def _remove_row(rows: Any) -> list[list[Any]]:
    return _rows(rows)[:-1]


def _toggle_source(kind: str) -> tuple:
    return (gr.update(visible=kind == SOURCE_SAMPLE), gr.update(visible=kind == SOURCE_UPLOAD),
            gr.update(visible=kind == SOURCE_PATH))


def _pick_template(name: str, text: str, response: str) -> tuple:
    """A named template fills the text boxes; (chat template) clears them; (custom) keeps what is there."""
    if name == CHAT_TEMPLATE:
        return "", ""
    named = NAMED_TEMPLATES.get(name)
    if named is None:  # custom
        return text, response
    return named.template, named.response_template or ""


def _bundled_settings(sample: str, ctx: AppContext) -> RunConfig | None:
    """The current config with the data settings (template, format, max_length, loss_on) of the sample's ready
    config, so picking a bundled sample previews it the way it is meant to be trained."""
    path = bundled_config_for(sample)
    if path is None:
        return None
    try:
        ready = load_config(path)
    except StudioError:
        return None
    raw = ctx.initial.to_dict()
    raw["data"] = dataclasses.asdict(ready.data)
    raw["train"]["max_length"] = ready.train.max_length
    raw["train"]["loss_on"] = ready.train.loss_on
    raw["train"]["probe_prompts"] = list(ready.train.probe_prompts)
    return RunConfig.from_dict(raw)

