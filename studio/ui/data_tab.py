"""Data tab: pick a dataset, map its columns, edit the template, and see exactly which tokens are trained.

Glue only: ``studio.data`` loads, detects, renders and measures; ``forms`` maps widgets to the config; ``charts``
draws. The preview tokenizes with the model chosen in the Model tab (the demo model by default).
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from studio.config import FORMATS, LOSS_ON, DataConfig, RunConfig, TrainConfig, field_help, load_config
from studio.data.formats import ROLES
from studio.errors import StudioError
from studio.templates import NAMED_TEMPLATES
from studio.ui import charts
from studio.ui.common import AppContext, Reporter, error_box, error_text, next_step
from studio.ui.forms import (CHAT_TEMPLATE, CUSTOM_TEMPLATE, MAPPING_ROLES, SOURCE_KINDS, SOURCE_PATH, SOURCE_SAMPLE,
                             SOURCE_UPLOAD, TEMPLATE_CHOICES, DataForm, bundled_config_for, bundled_samples,
                             data_field_values)

TAB_ID = "data"
LABEL = "1 · Data"
NO_COLUMN = ("— none —", "")


# ----------------------------------------------------------------------------------------------------- core glue
class PreviewCache:
    """Loaded datasets and tokenizers, reused while the user edits templates (small LRU, thread-safe).

    One per app (created in ``render``), so nothing lives at module level.
    """

    def __init__(self, size: int = 4) -> None:
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple, Any] = OrderedDict()
        self._tokenizers: OrderedDict[tuple, Any] = OrderedDict()
        self._columns: OrderedDict[tuple, list[str]] = OrderedDict()
        self.size = size

    def _get(self, store: OrderedDict, key: tuple, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in store:
                store.move_to_end(key)
                return store[key]
        value = make()
        with self._lock:
            store[key] = value
            while len(store) > self.size:
                store.popitem(last=False)
        return value

    def loaded(self, data: DataConfig, progress: Callable[[float, str], None] | None = None) -> Any:
        """``studio.data.load_data`` for ``data`` (cached by sources, format, mapping, row cap and seed);
        ``progress`` hears about a load, not a cache hit."""
        from studio.data import load_data

        key = (_sources_key(data), data.format, data.max_rows, data.seed)
        return self._get(self._data, key, lambda: load_data(data, progress=progress))

    def columns(self, data: DataConfig) -> list[str]:
        """Column names of the first source (to offer in the mapping dropdowns even when mapping fails)."""
        from studio.data import load_source

        src = data.sources[0]
        key = _sources_key(DataConfig(sources=[dataclasses.replace(src, columns={})]))
        return self._get(self._columns, key, lambda: list(load_source(src).column_names))

    def tokenizer(self, cfg: RunConfig) -> Any:
        """The tokenizer of the chosen model (preset pad token and chat-template choice applied)."""
        from studio.modeling import find_preset, model_id
        from studio.tokenizer import load_tokenizer

        m = cfg.model
        key = (model_id(m), m.revision, m.chat_template, m.trust_remote_code)
        preset = find_preset(m.name_or_path)

        def make() -> Any:
            tok, _ = load_tokenizer(dataclasses.replace(m, name_or_path=model_id(m)),
                                    pad_token=preset.pad_token if preset else None)
            return tok

        return self._get(self._tokenizers, key, make)


def _sources_key(data: DataConfig) -> tuple:
    out = []
    for s in data.sources:
        p = Path(s.path).expanduser()
        stamp = (p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None
        out.append((s.path, s.split, s.name, tuple(sorted(s.columns.items())), s.weight, stamp))
    return tuple(out)


@dataclass
class PreviewView:
    """What the tab shows for one preview (plain values; the handler turns them into widget updates)."""

    format: str | None = None
    mapping: dict[str, str] = dataclasses.field(default_factory=dict)
    columns: list[str] = dataclasses.field(default_factory=list)
    summary: str = ""
    highlighted: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    figure: Any = None
    stats_rows: list[list[Any]] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None
    preview: Any = None
    """The ``studio.data.Preview`` (None on error)."""


def build_preview(cache: PreviewCache, cfg: RunConfig, n_rows: int = 3,
                  progress: Callable[[float, str], None] | None = None) -> PreviewView:
    """Load (cached), render ``n_rows`` rows with the model's tokenizer, and measure the whole dataset.

    ``progress(fraction, message)`` hears each stage: reading the file, loading the tokenizer, rendering the
    shown rows, tokenizing every row, the statistics, the chart (fractions only grow; 1.0 at the end, error or not).
    Never raises for bad input: the error sentence is in ``.error`` (the columns are still filled when the file
    could be read, so the user can fix the mapping).
    """
    from studio.data import preview as data_preview

    report = progress if isinstance(progress, Reporter) else Reporter(None) if progress is None else \
        _CallbackReporter(progress)
    view = PreviewView()
    try:
        report(0.0, f"reading {_source_name(cfg)}")
        view.columns = cache.columns(cfg.data)
        loaded = cache.loaded(cfg.data, progress=report.part(0.05, 0.3))
        view.format, view.mapping, view.columns = loaded.format, dict(loaded.mapping), loaded.columns
        report(0.3, f"loading the tokenizer of {cfg.model.name_or_path}")
        try:
            tok = cache.tokenizer(cfg)
        except StudioError as err:
            raise type(err)(f"the preview needs the tokenizer of {cfg.model.name_or_path!r}: {err}") from None
        pv = data_preview(cfg, tok, n_rows=n_rows, loaded=loaded, progress=report.part(0.4, 0.95))
    except Exception as err:  # noqa: BLE001 - every failure becomes one sentence in the page
        view.error = error_text(err)
        view.figure = charts.token_histogram([], cfg.train.max_length)
        report(1.0, "stopped: see the message below")
        return view
    report(0.95, "drawing the token-length histogram")
    view.preview = pv
    view.summary = _summary(cfg, pv, len(loaded.dataset))
    view.highlighted = highlight_rows(pv.rows)
    view.figure = charts.token_histogram(pv.full_lengths, cfg.train.max_length)
    view.stats_rows = stats_rows(pv.stats)
    view.warnings = list(pv.warnings)
    report(1.0, f"preview ready: {len(pv.rows)} rows shown, {pv.stats.n_rows} measured")
    return view


class _CallbackReporter(Reporter):
    """A plain ``callback(fraction, message)`` behind the Reporter interface (monotone, with ``part``)."""

    def __init__(self, callback: Callable[[float, str], None]) -> None:
        super().__init__(None)
        self._callback = callback

    def __call__(self, fraction: float, message: str) -> None:
        super().__call__(fraction, message)
        self._callback(self.fraction, message)


def _source_name(cfg: RunConfig) -> str:
    names = [Path(s.path).name or s.path for s in cfg.data.sources]
    return ", ".join(names) if names else "the dataset"


def highlight_rows(rows: list[Any]) -> list[tuple[str, str | None]]:
    """``gr.HighlightedText`` value: trained spans labelled "trained", rows separated, cut rows marked."""
    out: list[tuple[str, str | None]] = []
    for i, row in enumerate(rows):
        if i:
            out.append(("\n\n", None))
        out.append((f"── row {i + 1} ──\n", "row"))
        for text, trained in row.segments:
            out.append((text, "trained" if trained else None))
        if row.truncated:
            out.append((f" ✂ cut at max_length: {len(row.input_ids)} of {row.full_length} tokens kept", "cut"))
        if not any(row.loss_mask):
            out.append(("  (no trained tokens: this row trains nothing)", "cut"))
    return out


def stats_rows(stats: Any) -> list[list[Any]]:
    """The stats table: one [statistic, value] per line."""
    s = stats
    return [
        ["rows", s.n_rows],
        ["tokens per row: p50 / p95 / max", f"{s.p50_tokens} / {s.p95_tokens} / {s.max_tokens}"],
        ["mean tokens per row", s.mean_tokens],
        [f"rows longer than max_length ({s.max_length})", f"{s.truncated_rows} ({s.truncated_fraction:.1%})"],
        ["share of tokens trained", f"{s.trained_token_fraction:.1%}"],
        ["rows with no trained tokens", s.zero_trained_rows],
        ["duplicate rows", s.duplicate_rows],
    ]


def _summary(cfg: RunConfig, pv: Any, n: int) -> str:
    detected = "detected" if cfg.data.format == "auto" else "chosen"
    mapping = ", ".join(f"{role} ← `{col}`" for role, col in pv.mapping.items())
    how = "the text template" if cfg.data.template else "the model's chat template" if pv.format != "text" \
        else "the text column as is"
    return (f"**{n} rows** · columns {', '.join(f'`{c}`' for c in pv.columns)}  \n"
            f"Format **{pv.format}** ({detected}) · {mapping}  \n"
            f"Rendered with {how}, tokenized by `{cfg.model.name_or_path}`; "
            f"loss on **{cfg.train.loss_on}** tokens (green = trained).")


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


def render(studio: Any, ctx: AppContext) -> DataHandles:
    initial = ctx.initial
    cache = PreviewCache()
    samples = bundled_samples()
    init = data_field_values(initial)
    gr.Markdown("### Pick a dataset and see exactly which tokens the model will learn\n"
                "Choose a bundled sample, upload a file, or name a Hub dataset. The format and column mapping are "
                "detected (override them if they are wrong); the template turns each row into text, and the "
                "**green** tokens are the ones that carry loss.")
    with gr.Row():
        with gr.Column(scale=2):
            source_kind = gr.Radio(list(SOURCE_KINDS), value=init["source_kind"], label="Source", elem_id="data-source-kind")
            sample = gr.Dropdown(samples, value=init["sample"], label="Bundled sample", visible=init["source_kind"] == SOURCE_SAMPLE,
                                 elem_id="data-sample", info="Small datasets that mirror the seed notebooks.")
            upload = gr.File(label="Dataset file", file_types=[".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt"],
                             type="filepath", visible=False, elem_id="data-upload")
            with gr.Group(visible=init["source_kind"] == SOURCE_PATH) as path_group:
                path = gr.Textbox(value=init["path"], label="Hub dataset id or local path", placeholder="openai/gsm8k or ./my_data.jsonl",
                                  elem_id="data-path")
                with gr.Row():
                    split = gr.Textbox(value=init["split"], label="Split", scale=1)
                    subset = gr.Textbox(value=init["subset"], label="Config name (optional)", placeholder="main", scale=1)
                load_btn = gr.Button("Load", variant="secondary")
        with gr.Column(scale=3):
            summary = gr.Markdown("Loading the preview…", elem_id="data-summary")
            fmt = gr.Dropdown(list(FORMATS), value=init["format"], label="Format",
                              info=field_help(DataConfig, "format"), elem_id="data-format")
            with gr.Row():
                mapping = {role: gr.Dropdown([NO_COLUMN, *([init["mapping"][role]] if init["mapping"][role] else [])],
                                             value=init["mapping"][role], label=f"{role} column", visible=False,
                                             allow_custom_value=False, min_width=140, elem_id=f"data-map-{role}")
                           for role in MAPPING_ROLES}
    with gr.Accordion("Template", open=True):
        with gr.Row():
            template_name = gr.Dropdown(list(TEMPLATE_CHOICES), value=init["template_name"], label="Named template",
                                        info="(chat template) renders chat-style rows with the model's chat template.",
                                        elem_id="data-template-name")
            response_template = gr.Textbox(value=init["response_template"], label="Response template", info=field_help(DataConfig, "response_template"),
                                           elem_id="data-response-template")
            system_prompt = gr.Textbox(value=init["system_prompt"], label="System prompt", info=field_help(DataConfig, "system_prompt"),
                                       elem_id="data-system-prompt")
        template = gr.Textbox(value=init["template"], label="Template", lines=3, max_lines=12, elem_id="data-template",
                              info="Text with {column} placeholders (also {prompt}, {completion}, … for the mapped "
                                   "roles, and {system}); empty = chat template.")
    with gr.Row():
        max_length = gr.Slider(16, 8192, step=8, value=init["max_length"], label="max_length (tokens)",
                               info=field_help(TrainConfig, "max_length"), elem_id="data-max-length")
        loss_on = gr.Radio(list(LOSS_ON), value=init["loss_on"], label="Loss on",
                           info=field_help(TrainConfig, "loss_on"), elem_id="data-loss-on")
        n_rows = gr.Slider(1, 10, step=1, value=3, label="Rows to preview", elem_id="data-n-rows")
    error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="data-error")
    highlighted = gr.HighlightedText(label="Rendered rows (green: trained tokens)", show_legend=True,
                                     color_map={"trained": "#22c55e", "cut": "#ef4444", "row": "#e5e7eb"},
                                     combine_adjacent=False, elem_id="data-preview")
    with gr.Row():
        histogram = gr.Plot(label="Token lengths", elem_id="data-histogram")
        with gr.Column():
            stats = gr.Dataframe(headers=["Statistic", "Value"], datatype=["str", "str"], interactive=False,
                                 label="Whole-dataset statistics", elem_id="data-stats")
            warnings = gr.Markdown(elem_id="data-warnings")
    with gr.Accordion("Held-out split and row cap", open=False):
        with gr.Row():
            eval_fraction = gr.Slider(0, 0.5, step=0.01, value=init["eval_fraction"], label="Eval fraction",
                                      info=field_help(DataConfig, "eval_fraction"))
            max_rows = gr.Number(value=init["max_rows"], precision=0, minimum=1, label="Max rows",
                                 info=field_help(DataConfig, "max_rows"))
            seed = gr.Number(value=init["seed"], precision=0, label="Seed", info=field_help(DataConfig, "seed"))
    next_step(ctx, "choose the base model, quantization and LoRA settings in the **Model** tab.", "model",
              "Next: Model →")

    form = DataForm(source_kind=source_kind, sample=sample, upload=upload, path=path, split=split, subset=subset,
                    format=fmt, mapping=mapping, template_name=template_name, template=template,
                    response_template=response_template, system_prompt=system_prompt, eval_fraction=eval_fraction,
                    max_rows=max_rows, seed=seed, max_length=max_length, loss_on=loss_on)
    ctx.forms.data = form

    template_widgets = [template_name, template, response_template, system_prompt, max_length, loss_on]
    preview_outputs = [fmt, *mapping.values(), *template_widgets, summary, highlighted, histogram, stats, warnings,
                       error]

    def refresh(values: dict, reset: bool = False, sample_name: str | None = None, progress: Any = None) -> dict:
        """Build the config from the widgets and redraw the preview.

        ``reset``: the source changed, so forget the format/mapping override. ``sample_name``: a bundled sample
        was picked, so its ready config's data settings are loaded into the template widgets first. ``progress``:
        a ``gr.Progress`` (or anything called as ``progress(fraction, desc=...)``) that shows the stages.
        """
        values = dict(values)
        out: dict = {w: gr.skip() for w in template_widgets}
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
        try:
            cfg = ctx.forms.read(values)
        except StudioError as err:
            out.update(_error_updates(str(err)))
            return out
        view = build_preview(cache, cfg, int(values.get(n_rows) or 3), progress=Reporter(progress))
        out.update(_view_updates(view, cfg))
        if view.error:
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
                                visible=role in roles)
        out.update({summary: view.summary or ("Fix the problem below to see the preview." if view.error else ""),
                    highlighted: view.highlighted, histogram: view.figure, stats: view.stats_rows,
                    warnings: "\n".join(f"- ⚠ {w}" for w in view.warnings) if view.warnings else
                    ("No warnings." if not view.error else ""),
                    error: error_box(view.error)})
        return out

    def _error_updates(message: str) -> dict:
        gr.Warning(message)
        return {summary: "Fix the problem below to see the preview.", highlighted: [], error: error_box(message),
                warnings: "", stats: [], histogram: charts.token_histogram([], 16)}

    inputs = ctx.forms.components  # called after every tab rendered (model/train widgets are inputs too)

    # Gradio hands a gr.Progress to the parameter right after the inputs whose default is one.
    def on_edit(values: dict, progress: gr.Progress = gr.Progress()) -> dict:
        return refresh(values, progress=progress)

    def on_new_source(values: dict, progress: gr.Progress = gr.Progress()) -> dict:
        return refresh(values, reset=True, progress=progress)

    def on_sample(values: dict, progress: gr.Progress = gr.Progress()) -> dict:
        return refresh(values, reset=True, sample_name=values[sample], progress=progress)

    def on_source_kind(values: dict, progress: gr.Progress = gr.Progress()) -> dict:
        return on_new_source(values, progress) if values[source_kind] == SOURCE_SAMPLE else {}

    def wire() -> None:
        all_inputs = inputs() | {n_rows}
        hidden = dict(api_visibility="undocumented")
        # The bar and its stage show on the preview and the chart, never over the widgets being edited.
        common = dict(inputs=all_inputs, outputs=preview_outputs, show_progress="full",
                      show_progress_on=[highlighted, histogram], trigger_mode="always_last")
        sample.input(on_sample, api_name="preview_sample", **common)
        upload.upload(on_new_source, **common, **hidden)
        path.submit(on_new_source, **common, **hidden)
        load_btn.click(on_new_source, **common, **hidden)
        gr.on([w.input for w in (fmt, *mapping.values(), response_template, system_prompt, loss_on, template)]
              + [w.release for w in (max_length, n_rows)] + [max_rows.submit], on_edit, **common, **hidden)
        template_name.input(_pick_template, inputs=[template_name, template, response_template],
                            outputs=[template, response_template], show_progress="hidden", **hidden
                            ).then(on_edit, **common, **hidden)
        source_kind.input(_toggle_source, inputs=source_kind, outputs=[sample, upload, path_group],
                          show_progress="hidden", **hidden).then(on_source_kind, **common, **hidden)
        model = ctx.forms.model
        if model is not None:
            gr.on([w.change for w in (model.name_or_path, model.chat_template) if w is not None], on_edit,
                  **common, **hidden)
        ctx.blocks.load(on_edit, inputs=all_inputs, outputs=preview_outputs, show_progress="full",
                        show_progress_on=[highlighted, histogram], api_name="preview")

    ctx.after_render.append(wire)
    return DataHandles(form=form, n_rows=n_rows, summary=summary, highlighted=highlighted, histogram=histogram,
                       stats=stats, warnings=warnings, error=error, cache=cache, refresh=refresh)


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
    return RunConfig.from_dict(raw)

