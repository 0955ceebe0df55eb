"""The whole app, headless: composition, forms <-> RunConfig, typed widgets, the gradio boundary, and a served app
driven through gradio_client."""
from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path
from typing import Literal

import gradio as gr
import pytest

from conftest import free_port
from studio.config import ASSETS_CONFIGS, LoraConfig, ModelConfig, RunConfig, choices_of, field_help, load_config
from studio.config_fields import setting
from studio.errors import ConfigError
from studio.session import Studio
from studio.ui.app import TAB_MODULES, compose, initial_config, launch_kwargs

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(ASSETS_CONFIGS.glob("*.yaml"))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return compose(Studio(runs_dir=tmp_path_factory.mktemp("runs")), initial=initial_config(demo=True))


def test_tabs_are_composed_in_order(app):
    assert list(app.handles)[:3] == ["data", "model", "train"]
    assert len(TAB_MODULES) == len(app.handles)
    labels = [b.label for b in app.blocks.blocks.values() if isinstance(b, gr.Tab)]
    assert labels[:3] == ["1 · Data", "2 · Model", "3 · Train"]


def test_the_parts_come_back_in_a_dataclass_not_on_the_blocks(app):
    assert isinstance(app.blocks, gr.Blocks) and app.ctx.blocks is app.blocks
    assert list(app.handles) == [importlib.import_module(name).TAB_ID for name in TAB_MODULES]
    assert not [name for name in vars(app.blocks) if name.startswith("studio_")]


def test_model_tab_says_what_4bit_means_on_a_cpu(app):
    widget = app.ctx.forms.model.quantization
    assert "saves memory" in widget.info and "slower than fp32" in widget.info


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_forms_round_trip_every_bundled_config(path, tmp_path):
    cfg = load_config(path)
    forms = compose(Studio(runs_dir=tmp_path), initial=cfg).ctx.forms
    assert forms.read(forms.write(cfg)) == cfg


def test_forms_round_trip_a_config_with_every_section_changed(app):
    forms = app.ctx.forms
    raw = forms.initial.to_dict()
    raw["model"].update(quantization="4bit", bnb_4bit_quant_type="fp4", double_quant=False, compute_dtype="fp32",
                        attn_implementation="eager", chat_template="chatml", revision="main")
    raw["lora"].update(r=4, alpha=8, dropout=0.1, target_modules=["q_proj", "v_proj"], use_rslora=True)
    raw["train"].update(max_steps=7, learning_rate=1e-3, batch_size=2, gradient_checkpointing=True, eval_steps=5,
                        save_total_limit=None, probe_prompts=["a", "b"], packing=True, run_name="x")
    raw["data"].update(template="alpaca", system_prompt="Be brief.", eval_fraction=0.2, max_rows=50)
    cfg = RunConfig.from_dict(raw)
    assert forms.read(forms.write(cfg)) == cfg


def test_widget_values_are_typed(app):
    ctx = app.ctx
    values = ctx.forms.write(ctx.initial)
    train = ctx.forms.train
    values[train.batch_size] = 8.0  # gr.Number may hand back floats
    values[train.learning_rate] = 0.001
    values[train.eval_steps] = None
    cfg = ctx.forms.read(values)
    assert cfg.train.batch_size == 8 and isinstance(cfg.train.batch_size, int)
    assert cfg.train.learning_rate == 0.001 and cfg.train.eval_steps is None
    numeric = [f.name for f in dataclasses.fields(type(train)) if f.name not in ("run_name", "probe_prompts", "rewards")]
    for name in numeric:
        widget = getattr(train, name)
        assert isinstance(widget, (gr.Number, gr.Slider, gr.Dropdown, gr.Checkbox, gr.Radio)), name
    for widget in (ctx.forms.lora.r, ctx.forms.lora.alpha, ctx.forms.data.max_length, ctx.forms.data.seed):
        assert isinstance(widget, (gr.Number, gr.Slider))


@dataclasses.dataclass
class _Unheard:
    """Fields no form has heard of by name: their metadata alone says how they are edited."""

    notes: list[str] = setting("One note per line.", default_factory=list)
    marker: str = setting("Kept as typed.", default="", kind="raw")
    name: str = setting("Stripped.", default="")
    level: Literal["low", "high"] = setting("A radio.", default="low", kind="radio")
    size: int | None = setting("A bounded number.", default=None, minimum=1, maximum=9)


def test_fields_are_edited_as_their_metadata_says():
    from studio.ui.forms import edit_kind, from_widget, to_widget

    assert [edit_kind(_Unheard, f.name) for f in dataclasses.fields(_Unheard)] == \
        ["lines", "raw", "text", "radio", "slider"]
    assert from_widget(_Unheard, "notes", "first\n\n  second ") == ["first", "second"]
    assert to_widget(_Unheard, "notes", ["a", "b"]) == "a\nb"
    assert from_widget(_Unheard, "marker", " ### Answer: ") == " ### Answer: "
    assert from_widget(_Unheard, "name", "  x ") == "x"
    assert from_widget(_Unheard, "size", "") is None and to_widget(_Unheard, "size", None) is None
    assert choices_of(_Unheard, "level") == ("low", "high")


def test_model_tab_widgets_are_derived_from_the_config(app):
    from studio.ui.forms import edit_kind

    kinds = {"radio": gr.Radio, "dropdown": gr.Dropdown, "multi": gr.Dropdown, "check": gr.Checkbox,
             "slider": gr.Slider, "number": gr.Number, "text": gr.Textbox}
    forms = app.ctx.forms
    for form, cls in ((forms.model, ModelConfig), (forms.lora, LoraConfig)):
        for f in dataclasses.fields(form):
            if f.name == "name_or_path":  # the presets dropdown (any id may be typed)
                continue
            w, kind = getattr(form, f.name), edit_kind(cls, f.name)
            assert type(w) is kinds[kind] or (kind == "number" and isinstance(w, gr.Number)), f.name
            assert w.info.startswith(field_help(cls, f.name)), f.name
            if kind in ("radio", "dropdown", "multi"):
                assert [value for _, value in w.choices] == list(choices_of(cls, f.name)), f.name
            if kind == "multi":
                assert w.multiselect and w.allow_custom_value


def test_bad_widget_value_is_a_config_error(app):
    ctx = app.ctx
    values = ctx.forms.write(ctx.initial)
    values[ctx.forms.train.learning_rate] = -1
    with pytest.raises(ConfigError, match=r"train\.learning_rate: Learning rate must be at least 0 \(got -1\)"):
        ctx.forms.read(values)
    values[ctx.forms.train.learning_rate] = 1e-4
    values[ctx.forms.train.batch_size] = None
    with pytest.raises(ConfigError, match="train.batch_size needs a number"):
        ctx.forms.read(values)


def test_core_imports_without_gradio():
    """The boundary: nothing outside studio/ui (and not ui.forms/ui.charts) needs gradio."""
    code = (
        "import sys, pkgutil, importlib\n"
        "sys.modules['gradio'] = None\n"
        "import studio\n"
        "ui_ok = ('studio.ui', 'studio.ui.forms', 'studio.ui.charts')  # UI helpers that must not need gradio\n"
        "names = [m.name for m in pkgutil.walk_packages(studio.__path__, 'studio.')]\n"
        "for name in names:\n"
        "    if name.startswith('studio.ui.') and name not in ui_ok:\n"
        "        continue\n"
        "    importlib.import_module(name)\n"
        "assert 'gradio' not in [k for k, v in sys.modules.items() if v is not None]\n"
        "print(len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) > 10


@pytest.fixture(scope="module")
def served(app):
    port = free_port()
    app.blocks.queue().launch(server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    yield f"http://127.0.0.1:{port}/"
    app.blocks.close()


def test_served_app_lists_tabs_and_previews_through_gradio_client(served):
    import httpx
    from gradio_client import Client

    config = httpx.get(served + "config", timeout=30).json()
    labels = [c.get("props", {}).get("label") for c in config["components"]]
    for label in ("1 · Data", "2 · Model", "3 · Train"):
        assert label in labels
    client = Client(served, verbose=False)
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/preview", "/preview_sample", "/estimate", "/start_training", "/stop_training", "/poll"} <= set(api)
    params = api["/preview_sample"]["parameters"]
    args = [p["parameter_default"] if p["parameter_has_default"] else None for p in params]
    args[next(i for i, p in enumerate(params) if p["label"] == "Bundled sample")] = "word_problems.jsonl"
    result = client.predict(*args, api_name="/preview_sample")
    returns = [r.get("label") for r in api["/preview_sample"]["returns"]]
    highlighted = result[returns.index("Rendered rows (green: trained tokens)")]
    spans = highlighted if isinstance(highlighted, list) else highlighted.get("value", highlighted)
    assert any((s.get("class_or_confidence") if isinstance(s, dict) else s[1]) == "trained" for s in spans)
    assert "####" in "".join(s["token"] if isinstance(s, dict) else s[0] for s in spans)
    stopped = client.predict(api_name="/stop_training")
    assert "Nothing is running" in str(stopped)
