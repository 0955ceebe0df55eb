"""Widget values <-> RunConfig, in one place.

Each config section has a form: a dataclass of the widgets that edit it, named like the config fields (so there is
no string-keyed registry). Tabs create the widgets (typed: Number/Slider/Dropdown/Checkbox, never numbers as text)
and fill ``ctx.forms``; any handler can then take ``inputs=ctx.forms.components()`` (a set, so gradio passes one
``{component: value}`` dict) and call ``ctx.forms.read(values)`` for the whole, validated ``RunConfig``. Fields no
widget edits keep the value of the config last written into this browser's forms (``Forms.base``), else the one the
app started with. ``ctx.forms.write(cfg)`` is the inverse: a ``{component: value}`` dict a handler can return to load
a config into the widgets. The Data tab's part (every source with its weight) is in ``data_form``.

How a field is edited (and converted) comes from its metadata (``studio.config_fields``), never from its name;
:func:`widget` builds the gradio widget from the same metadata (the only function here that imports gradio).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.config import HubConfig, LoraConfig, ModelConfig, RunConfig, TrainConfig
from studio.config_fields import choices_of, field_of, value_type
from studio.data.formats import ROLES
from studio.errors import ConfigError
from studio.paths import ASSETS
from studio.templates import NAMED_TEMPLATES

DATASETS_DIR = ASSETS / "datasets"
CONFIGS_DIR = ASSETS / "configs"

SOURCE_SAMPLE = "Bundled sample"
SOURCE_UPLOAD = "Upload a file"
SOURCE_PATH = "Hub id or local path"
SOURCE_KINDS = (SOURCE_SAMPLE, SOURCE_UPLOAD, SOURCE_PATH)

CHAT_TEMPLATE = "(chat template)"
CUSTOM_TEMPLATE = "(custom)"
TEMPLATE_CHOICES = (CHAT_TEMPLATE, *NAMED_TEMPLATES, CUSTOM_TEMPLATE)

MAPPING_ROLES: tuple[str, ...] = tuple(dict.fromkeys(r for roles in ROLES.values() for r in roles))
"""Every role a column can be mapped to (one dropdown each; the format decides which are shown)."""

EXTRA_SOURCE_HEADERS = ("path", "split", "config name", "weight", "columns (role=column, …)")

Component = Any  # a gradio component; keys of the values dict


def bundled_samples() -> list[str]:
    """File names of the bundled datasets."""
    if not DATASETS_DIR.is_dir():
        return []
    return sorted(p.name for p in DATASETS_DIR.iterdir() if p.suffix.lower() in (".csv", ".jsonl", ".json",
                                                                                  ".parquet", ".txt", ".tsv"))


def bundled_config_for(sample: str) -> Path | None:
    """The ready config in assets/configs whose dataset is ``sample`` (same stem), if any."""
    path = CONFIGS_DIR / f"{Path(sample).stem}.yaml"
    return path if path.exists() else None


# ------------------------------------------------------------------------------------------------ section forms
@dataclass
class DataForm:
    """The Data tab's widgets. ``max_length`` and ``loss_on`` live here (they shape the preview) but are
    ``train.*`` settings."""

    source_kind: Component
    sample: Component
    upload: Component
    path: Component
    split: Component
    subset: Component
    format: Component
    mapping: dict[str, Component]
    """role -> column dropdown, for every role in ``MAPPING_ROLES``."""
    template_name: Component
    template: Component
    response_template: Component
    system_prompt: Component
    eval_fraction: Component
    max_rows: Component
    seed: Component
    max_length: Component
    loss_on: Component
    weight: Component = None
    """Sampling weight of the first source."""
    extra_sources: Component = None
    """A table (list of rows ``EXTRA_SOURCE_HEADERS``) of the sources after the first."""

    def components(self) -> list[Component]:
        out = [getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "mapping"]
        return [c for c in out if c is not None] + list(self.mapping.values())


@dataclass
class ModelForm:
    """Model tab: fields named like ``ModelConfig``; None = not shown (the start config's value is kept)."""

    name_or_path: Component = None
    revision: Component = None
    quantization: Component = None
    bnb_4bit_quant_type: Component = None
    double_quant: Component = None
    compute_dtype: Component = None
    attn_implementation: Component = None
    chat_template: Component = None
    trust_remote_code: Component = None


@dataclass
class LoraForm:
    """LoRA settings (Model tab), named like ``LoraConfig``."""

    r: Component = None
    alpha: Component = None
    dropout: Component = None
    target_modules: Component = None
    bias: Component = None
    use_rslora: Component = None
    use_dora: Component = None


@dataclass
class TrainForm:
    """Train tab hyperparameters, named like ``TrainConfig`` (``max_length``/``loss_on`` are in ``DataForm``)."""

    run_name: Component = None
    max_steps: Component = None
    epochs: Component = None
    learning_rate: Component = None
    lr_scheduler: Component = None
    warmup_ratio: Component = None
    batch_size: Component = None
    grad_accum: Component = None
    packing: Component = None
    gradient_checkpointing: Component = None
    optim: Component = None
    weight_decay: Component = None
    max_grad_norm: Component = None
    seed: Component = None
    logging_steps: Component = None
    save_steps: Component = None
    save_total_limit: Component = None
    eval_steps: Component = None
    booster: Component = None
    tensorboard: Component = None
    probe_prompts: Component = None
    device: Component = None
    method: Component = None
    beta: Component = None
    loss_type: Component = None
    simpo_gamma: Component = None
    start_from: Component = None


@dataclass
class HubForm:
    """Publish settings, named like ``HubConfig``."""

    repo_id: Component = None
    private: Component = None
    push: Component = None


_SECTION_OF = {ModelForm: ("model", ModelConfig), LoraForm: ("lora", LoraConfig), TrainForm: ("train", TrainConfig),
               HubForm: ("hub", HubConfig)}


# ------------------------------------------------------------------------------------------------------- Forms
@dataclass
class Forms:
    """All forms of the app; tabs fill in the ones they render."""

    initial: RunConfig = field(default_factory=RunConfig)
    data: DataForm | None = None
    model: ModelForm | None = None
    lora: LoraForm | None = None
    train: TrainForm | None = None
    hub: HubForm | None = None
    base: Component = None
    """A per-browser ``gr.State`` holding the dict of the config last written to the forms: fields no widget edits
    keep its values (instead of the start config's), so a loaded config round-trips unchanged."""

    def _section_forms(self) -> list[Any]:
        return [f for f in (self.model, self.lora, self.train, self.hub) if f is not None]

    def components(self) -> set[Component]:
        """Every widget that edits the config: pass as ``inputs=`` (a set) to get one values dict."""
        out: set[Component] = set(self.data.components()) if self.data else set()
        for form in self._section_forms():
            out |= {c for c in _widgets(form).values()}
        if self.base is not None:
            out.add(self.base)
        return out

    def start_config(self, values: dict[Component, Any]) -> RunConfig:
        """The config the widgets' values are laid over: the one last written to this browser's forms, else the
        config the app started with."""
        raw = values.get(self.base) if self.base is not None else None
        if isinstance(raw, dict):
            try:
                return RunConfig.from_dict(raw)
            except ConfigError:
                pass
        return self.initial

    def read(self, values: dict[Component, Any]) -> RunConfig:
        """The validated RunConfig the widgets describe.

        Raises:
            ConfigError: a value is missing or out of range (the message names the field).
        """
        start = self.start_config(values)
        raw = start.to_dict()
        for form in self._section_forms():
            section, cls = _SECTION_OF[type(form)]
            for name, comp in _widgets(form).items():
                if comp in values:
                    raw[section][name] = from_widget(cls, name, values[comp], section)
        if self.data is not None:
            from studio.ui.data_form import read_data

            data, train_extra = read_data(self.data, values, start.data)
            raw["data"] = dataclasses.asdict(data)
            raw["train"].update(train_extra)
        return RunConfig.from_dict(raw)

    def write(self, cfg: RunConfig) -> dict[Component, Any]:
        """``{widget: value}`` that shows ``cfg`` (return it from a handler whose outputs are those widgets)."""
        out: dict[Component, Any] = {}
        for form in self._section_forms():
            section, cls = _SECTION_OF[type(form)]
            for name, comp in _widgets(form).items():
                out[comp] = to_widget(cls, name, getattr(getattr(cfg, section), name))
        if self.data is not None:
            from studio.ui.data_form import write_data

            out.update(write_data(self.data, cfg))
        if self.base is not None:
            out[self.base] = cfg.to_dict()
        return out


def _widgets(form: Any) -> dict[str, Component]:
    return {f.name: getattr(form, f.name) for f in dataclasses.fields(form) if getattr(form, f.name) is not None}


# ------------------------------------------------------------------------------------- conversions and widgets
def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def edit_kind(cls: type, name: str) -> str:
    """How ``cls.name`` is edited: its metadata's ``kind``, else from its type (``check``, ``dropdown`` for
    choices, ``lines`` for lists and tuples of text, ``slider`` for a bounded number, ``number``, ``text``)."""
    meta = field_of(cls, name).metadata
    if meta.get("kind"):
        return meta["kind"]
    base, _ = value_type(cls, name)
    origin = typing.get_origin(base)
    if base is bool:
        return "check"
    if choices_of(cls, name):
        return "dropdown"
    if origin in (list, tuple):
        return "lines"
    if base in (int, float):
        return "slider" if meta.get("minimum") is not None and meta.get("maximum") is not None else "number"
    return "text"


def from_widget(cls: type, name: str, value: Any, section: str = "") -> Any:
    """A widget value as the config field ``cls.name`` is built from it (``config_fields.build`` types it):
    the field's ``read``, else by its edit kind (one item per line, blanks -> None or "needs a number")."""
    meta = field_of(cls, name).metadata
    if meta.get("read"):
        return meta["read"](value)
    kind = edit_kind(cls, name)
    if kind == "lines":
        items = value.splitlines() if isinstance(value, str) else list(value or [])
        return [line.strip() for line in items if line.strip()]
    if kind == "multi":
        return list(value or [])
    base, optional = value_type(cls, name)
    if _blank(value):
        if optional:
            return None
        if base in (int, float):
            raise ConfigError(f"{section + '.' if section else ''}{name} needs a number")
        return "" if base is str else value
    if isinstance(value, str) and kind != "raw":
        return value.strip()
    return value


def to_widget(cls: type, name: str, value: Any) -> Any:
    """A config value as its widget shows it."""
    meta = field_of(cls, name).metadata
    if meta.get("show"):
        return meta["show"](value)
    if edit_kind(cls, name) == "lines":
        return "\n".join(value or [])
    if value is None:
        return "" if value_type(cls, name)[0] is str else None
    return value


def widget(cls: type, name: str, value: Any, **kw: Any) -> Component:
    """The gradio widget that edits ``cls.name`` (a config section or ``GenerationParams`` field), derived from
    its metadata: kind, choices, range, help (as ``info``) and label; ``kw`` adds or overrides arguments (layout,
    ``elem_id``; ``choices`` for a dropdown whose choices the config can't know, e.g. the model presets, or
    ``(label, value)`` pairs; ``kind`` to show a choice as a ``radio``). ``value`` is the field's value (shown
    through :func:`to_widget`)."""
    import gradio as gr

    meta = field_of(cls, name).metadata
    kind = kw.pop("kind", None) or edit_kind(cls, name)
    base, _ = value_type(cls, name)
    args: dict[str, Any] = {"value": to_widget(cls, name, value), "label": meta.get("label", name)}
    if meta.get("help"):
        args["info"] = meta["help"]
    bounds = {k: meta[k] for k in ("minimum", "maximum", "step") if meta.get(k) is not None}
    choices = list(kw.pop("choices", None) or choices_of(cls, name))
    args.update(kw)
    if kind == "check":
        return gr.Checkbox(**args)
    if kind in ("radio", "dropdown", "multi"):
        if kind == "radio":
            return gr.Radio(choices, **args)
        # a multi-select, or a dropdown whose field takes any text (no Literal): typed values are allowed too
        extra = {"multiselect": True} if kind == "multi" else {}
        if kind == "multi" or not choices_of(cls, name):
            extra["allow_custom_value"] = True
        return gr.Dropdown(choices, **{**extra, **args})
    if kind == "slider":
        return gr.Slider(bounds.pop("minimum"), bounds.pop("maximum"), **{**({"step": 1} if base is int else {}),
                                                                           **bounds, **args})
    if kind == "number":
        return gr.Number(**{"precision": 0 if base is int else None, **bounds, **args})
    if kind == "lines":
        return gr.Textbox(**{"lines": 2, **args})
    return gr.Textbox(**args)
