"""Model tab, headless (issue 23.5 and 23.6): a Hub id while the Hub is out of reach is said at once with the offline
model offered; an out-of-range number (LoRA rank 0) is refused where typed and clears the estimate."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from studio.config import LoraConfig
from studio.errors import ConfigError
from studio.modeling import sources
from studio.session import Studio
from studio.ui.app import compose, initial_config
from studio.ui.widgets import bounds_problem

HUB_ID = "someone-offline/not-cached-model"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    built = compose(Studio(runs_dir=tmp_path_factory.mktemp("runs")), initial=initial_config(demo=True),
                    tabs=("studio.ui.model_tab", "studio.ui.train_tab"))
    return built.handles["model"], built.handles["train"], built.ctx, built.blocks


def _values(ctx):
    return ctx.forms.write(ctx.initial)


def _no_file_requests(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("asked the Hub for the model's files although the Hub is out of reach")

    monkeypatch.setattr(sources, "config_path", refuse)


# ------------------------------------------------------------------------------------------------ 23.5 Hub offline
def test_a_hub_id_offline_is_said_at_once_and_the_offline_model_offered(app, unreachable_hub, monkeypatch):
    h, _, ctx, _ = app
    _no_file_requests(monkeypatch)
    values = {**_values(ctx), h.model.name_or_path: HUB_ID}
    out = h.pick_model(values)
    assert "out of reach" in out[h.note] and "from the Hugging Face Hub." not in out[h.note]
    assert out[h.error]["visible"] and HUB_ID in out[h.error]["value"] and "out of reach" in out[h.error]["value"]
    offline, _ = sources.offline_model()
    assert out[h.use_offline]["visible"] is True and offline.split("/")[-1] in out[h.use_offline]["value"]
    assert out[h.params] == "" and out[h.summary] == "", "no estimate left from the model before"


def test_the_offer_switches_to_the_offline_model(app, unreachable_hub):
    h, _, ctx, _ = app
    out = h.use_offline_model({**_values(ctx), h.model.name_or_path: HUB_ID})
    offline, _ = sources.offline_model()
    assert out[h.model.name_or_path] == offline
    assert out[h.error]["visible"] is False and out[h.use_offline]["visible"] is False
    assert "out of reach" not in out[h.error]["value"] and "Trainable (LoRA) parameters" in out[h.params]


def test_start_with_a_hub_id_offline_is_refused_in_one_line(app, unreachable_hub, monkeypatch):
    h, t, ctx, _ = app
    _no_file_requests(monkeypatch)
    monkeypatch.setattr(gr, "Warning", lambda text: None)
    out = t.on_start({**_values(ctx), h.model.name_or_path: HUB_ID})
    box = out[t.error]
    assert box["visible"] and "out of reach" in box["value"] and HUB_ID in box["value"]
    assert "\n" not in box["value"] and ctx.run_dir not in out, "nothing started"


def test_a_reachable_preset_shows_no_offer(app):
    h, _, ctx, _ = app
    out = h.estimate(_values(ctx))  # the demo model
    assert out[h.use_offline]["visible"] is False and out[h.error]["visible"] is False


# --------------------------------------------------------------------------------------- 23.6 rank 0, other bounds
def test_rank_zero_is_refused_in_words_naming_the_field():
    assert bounds_problem(LoraConfig, "r", 0) == "Rank r must be from 1 to 1024 (got 0)"
    assert bounds_problem(LoraConfig, "r", 2048) == "Rank r must be from 1 to 1024 (got 2048)"
    assert bounds_problem(LoraConfig, "r", 16) is None
    assert bounds_problem(LoraConfig, "alpha", 0) == "Alpha must be at least 1 (got 0)"


def test_rank_zero_clears_the_estimate_instead_of_leaving_it_stale(app):
    h, _, ctx, _ = app
    with pytest.raises(ConfigError, match="lora.r: Rank r must be from 1 to 1024"):
        ctx.forms.read({**_values(ctx), h.lora.r: 0})
    out = h.estimate({**_values(ctx), h.lora.r: 0})
    assert out[h.error]["visible"] and "Rank r must be from 1 to 1024" in out[h.error]["value"]
    assert out[h.params] == "" and out[h.summary] == ""
    assert not out[h.memory].data, "the chart shows no estimate"


def test_a_bounded_number_box_lets_the_value_through_to_be_refused_in_words(app):
    """gradio's own range check would raise a passing toast before any handler runs (and leave the counts stale)."""
    h, _, _, _ = app
    assert h.lora.r.minimum == 1 and h.lora.r.maximum == 1024, "the range stays on the box (its arrows)"
    assert h.lora.r.preprocess(0) == 0
    assert type(h.lora.r).preprocess(type(h.lora.r)(minimum=1, maximum=1024, render=False), 0) == 0, \
        "a class, not an instance patch: gradio rebuilds a session's copy from the class"


def test_the_rank_box_shows_the_error_in_its_own_help_line(app):
    """The box's own change event rewrites its help line: the range sentence at once, the help again when fixed."""
    h, _, _, blocks = app
    fns = [fn for fn in blocks.fns.values() if fn.outputs == [h.lora.r]
           and any(t[0] == h.lora.r._id and t[1] == "change" for t in fn.targets)]
    assert len(fns) == 1 and fns[0].inputs == [h.lora.r]
    bad, good = fns[0].fn(0), fns[0].fn(16)
    assert bad["info"] == "⚠ Rank r must be from 1 to 1024 (got 0)" and bad["elem_classes"] == ["studio-invalid"]
    assert good["info"] == LoraConfig.__dataclass_fields__["r"].metadata["help"] and good["elem_classes"] == []


# ------------------------------------------------------------------------ 23.10 time estimate, Save config
def test_the_time_estimate_sits_beside_the_memory_estimate(app):
    h, t, ctx, blocks = app
    values = {**_values(ctx), t.form.max_steps: 12}
    out = h.estimate(values)
    text = out[h.run_time]
    assert text.startswith("⏱ Time:") and "12 steps ×" in text
    assert "From FLOPs" in text or "Measured on this machine" in text, "it says where the figure comes from"
    changing = {fn for fn in blocks.fns.values() if h.run_time in fn.outputs
                and any(target[0] == t.form.max_steps._id for target in fn.targets)}
    assert changing, "a new max_steps updates the estimate"


def test_a_refused_value_clears_the_time_estimate(app):
    h, t, ctx, _ = app
    out = h.estimate({**_values(ctx), h.lora.r: 0})
    assert out[h.run_time] == "" and out[t.run_time] == ""


def test_the_train_tab_shows_the_same_time_beside_start(app):
    """One source of truth: the Model tab's estimate writes the Train tab's line too, on the same field changes."""
    h, t, ctx, blocks = app
    out = h.estimate({**_values(ctx), t.form.max_steps: 7})
    assert out[t.run_time] == out[h.run_time] and "7 steps ×" in out[t.run_time]
    for field in (t.form.max_steps, t.form.batch_size, h.lora.r):
        assert any(t.run_time in fn.outputs and any(target[0] == field._id for target in fn.targets)
                   for fn in blocks.fns.values()), f"a change of {field.label} refreshes the Train tab's line"
    assert any(t.run_time in fn.outputs and fn.name == "on_forms_written" for fn in blocks.fns.values()), \
        "a config written into the forms (page load, Open config) fills it"


def test_save_config_writes_the_forms_and_never_a_token(tmp_path, monkeypatch):
    from studio.config import load_config

    secret = "hf_0123456789abcdefSECRET"
    monkeypatch.setenv("HF_TOKEN", secret)
    built = compose(Studio(runs_dir=tmp_path / "runs"), initial=initial_config(demo=True),
                    tabs=("studio.ui.model_tab", "studio.ui.train_tab", "studio.ui.hub_tab"))
    ctx, hub = built.ctx, built.handles["publish"]
    assert hub.token not in ctx.forms.components(), "the token box is not part of the config"
    values = {**ctx.forms.write(ctx.initial), hub.token: secret}
    saved = next(v for v in built.config_bar["save"](values).values() if isinstance(v, dict) and v.get("visible"))
    text = Path(saved["value"]).read_text(encoding="utf-8")
    assert secret not in text and "token" not in text.lower()
    assert load_config(saved["value"]) == ctx.forms.read(values)
