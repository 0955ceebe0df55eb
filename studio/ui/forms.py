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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.config import HubConfig, LoraConfig, ModelConfig, RunConfig, TrainConfig
from studio.errors import ConfigError
from studio.paths import ASSETS
from studio.ui.data_form import (CHAT_TEMPLATE, CUSTOM_TEMPLATE, DATASETS_DIR, EXTRA_SOURCE_HEADERS,  # noqa: F401
                                 MAPPING_ROLES, SOURCE_KINDS, SOURCE_PATH, SOURCE_SAMPLE, SOURCE_UPLOAD,
                                 TEMPLATE_CHOICES, DataForm, bundled_samples, read_data, write_data)
from studio.ui.widgets import Component, edit_kind, from_widget, to_widget, widget  # noqa: F401 (re-exported)

CONFIGS_DIR = ASSETS / "configs"


def bundled_config_for(sample: str) -> Path | None:
    """The ready config in assets/configs whose dataset is ``sample`` (same stem), if any."""
    path = CONFIGS_DIR / f"{Path(sample).stem}.yaml"
    return path if path.exists() else None


# ------------------------------------------------------------------------------------------------ section forms
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
    early_stopping_patience: Component = None
    keep_best: Component = None
    best_metric: Component = None
    eval_accuracy_rows: Component = None
    booster: Component = None
    tensorboard: Component = None
    report_to: Component = None
    probe_prompts: Component = None
    device: Component = None
    processes: Component = None
    distributed: Component = None
    method: Component = None
    beta: Component = None
    loss_type: Component = None
    simpo_gamma: Component = None
    num_generations: Component = None
    max_completion_length: Component = None
    temperature: Component = None
    kl_beta: Component = None
    rewards: Component = None
    stop_at_answer: Component = None
    start_from: Component = None
    precision: Component = None


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
            out.update(write_data(self.data, cfg))
        if self.base is not None:
            out[self.base] = cfg.to_dict()
        return out


def _widgets(form: Any) -> dict[str, Component]:
    return {f.name: getattr(form, f.name) for f in dataclasses.fields(form) if getattr(form, f.name) is not None}
