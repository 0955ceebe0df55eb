"""Data tab, headless: the preview handler on every bundled set, template edits, and bad input as messages."""
from __future__ import annotations

import json

import pytest
from fake_progress import FakeProgress
from field_widgets import assert_follows, patch_metadata

from studio.config import DataConfig, RunConfig, SourceConfig, TrainConfig
from studio.session import Studio
from studio.ui.app import compose, initial_config
from studio.ui.data_tab import CONFIG_FIELDS
from studio.ui.forms import CUSTOM_TEMPLATE, SOURCE_PATH, SOURCE_UPLOAD, bundled_samples

SAMPLES = ["linear_equations.csv", "word_problems.jsonl", "python_assistant.jsonl", "chat.jsonl"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    blocks = compose(Studio(runs_dir=tmp_path_factory.mktemp("runs")), initial=initial_config(demo=True))
    return blocks.handles["data"], blocks.ctx


def _values(app, **changes):
    h, ctx = app
    values = ctx.forms.write(ctx.initial)
    values[h.n_rows] = 2
    for name, value in changes.items():
        values[getattr(h.form, name)] = value
    return values


def _message(update) -> str:
    return update.get("value", "") if isinstance(update, dict) else str(update)


def test_bundled_samples_are_offered():
    assert set(SAMPLES) <= set(bundled_samples())


@pytest.mark.parametrize("sample", SAMPLES)
def test_preview_highlights_trained_tokens(app, sample):
    h, _ = app
    out = h.refresh(_values(app, sample=sample), reset=True, sample_name=sample)
    assert out[h.error]["visible"] is False, _message(out[h.error])
    spans = out[h.highlighted]
    trained = [text for text, label in spans if label == "trained"]
    untrained = [text for text, label in spans if label is None and text.strip()]
    assert trained and untrained, "both trained and untrained spans are shown"
    assert "row 2" in "".join(text for text, _ in spans)
    fig = out[h.histogram]
    max_length = out[h.form.max_length]
    assert any(shape.x0 == max_length for shape in fig.layout.shapes), "the max_length cut-off is drawn"
    assert len(fig.data[0].x) > 100
    stats = dict((k, v) for k, v in out[h.stats])
    assert stats["rows"] > 100
    assert out[h.form.format] in ("prompt_completion", "instruction", "messages")


def assert_readable_and_monotonic(calls: list[tuple[float, str]], *words: str) -> None:
    fractions = [f for f, _ in calls]
    assert len(calls) >= 3 and fractions == sorted(fractions), calls
    assert 0 <= fractions[0] < 0.5 and fractions[-1] == 1.0, calls
    assert all(len(m) > 8 and m[0].isalpha() for _, m in calls), calls
    text = " | ".join(m for _, m in calls)
    for word in words:
        assert word in text, text


def test_preview_reports_its_stages_on_a_progress_bar(tmp_path):
    blocks = compose(Studio(runs_dir=tmp_path / "runs"), initial=initial_config(demo=True))
    h, ctx = blocks.handles["data"], blocks.ctx
    values = ctx.forms.write(ctx.initial)
    values[h.n_rows] = 2
    values[h.form.sample] = "word_problems.jsonl"
    progress = FakeProgress()
    out = h.refresh(values, reset=True, sample_name="word_problems.jsonl", progress=progress)
    assert out[h.error]["visible"] is False
    rows = dict(out[h.stats])["rows"]
    assert_readable_and_monotonic(progress.calls, "reading word_problems.jsonl", "loading the tokenizer",
                                  "rendering 2 rows", f"tokenizing all {rows} rows", "statistics", "preview ready")
    again = FakeProgress()  # cached file and tokenizer: the same bar, without the loading stages' work
    h.refresh(values, reset=True, sample_name="word_problems.jsonl", progress=again)
    assert_readable_and_monotonic(again.calls, "rendering 2 rows")
    broken = FakeProgress()  # an error still ends the bar
    values[h.form.template_name] = CUSTOM_TEMPLATE
    values[h.form.template] = "{nope}"
    out = h.refresh(values, progress=broken)
    assert out[h.error]["visible"] is True and broken.calls[-1][0] == 1.0


def test_linear_equations_trains_only_after_the_response_marker(app):
    h, _ = app
    out = h.refresh(_values(app, sample="linear_equations.csv"), reset=True, sample_name="linear_equations.csv")
    spans = out[h.highlighted]
    first_trained = next(i for i, (_, label) in enumerate(spans) if label == "trained")
    assert spans[first_trained - 1][0].rstrip().endswith("### Solution:")


def test_template_edit_updates_the_preview(app):
    h, _ = app
    values = _values(app, template_name=CUSTOM_TEMPLATE, template="Q: {Problem}\nA: {Solution}",
                     response_template="A:")
    out = h.refresh(values)
    assert out[h.error]["visible"] is False, _message(out[h.error])
    spans = out[h.highlighted]
    untrained = "".join(t for t, label in spans if label is None)
    trained = "".join(t for t, label in spans if label == "trained")
    assert "Q: " in untrained and "Q: " not in trained


def test_loss_on_all_trains_every_token(app):
    h, _ = app
    out = h.refresh(_values(app, loss_on="all"))
    labels = {label for t, label in out[h.highlighted] if label != "row" and t.strip()}
    assert labels == {"trained"}


def test_max_length_cut_is_reported(app):
    h, _ = app
    out = h.refresh(_values(app, max_length=32))
    stats = dict((k, v) for k, v in out[h.stats])
    assert stats["rows longer than max_length (32)"].split()[0] != "0"
    assert "max_length=32" in out[h.warnings]
    assert any(label == "cut" for _, label in out[h.highlighted])


def _assert_error(h, out, *needles):
    box = out[h.error]
    assert box["visible"] is True
    text = box["value"]
    for needle in needles:
        assert needle in text, text
    assert "Traceback" not in text and 'File "' not in text


def test_unknown_placeholder_is_a_message(app):
    h, _ = app
    out = h.refresh(_values(app, template_name=CUSTOM_TEMPLATE, template="{Problem} -> {Answr}"))
    _assert_error(h, out, "{Answr}", "Problem")


def test_wrong_column_lists_the_available_ones(app):
    h, _ = app
    values = _values(app, format="prompt_completion")
    values[h.form.mapping["prompt"]] = "Question"
    out = h.refresh(values)
    _assert_error(h, out, "'Question'", "Problem, Solution")


def test_broken_upload_names_the_line(app, tmp_path):
    h, _ = app
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": \n', encoding="utf-8")
    out = h.refresh(_values(app, source_kind=SOURCE_UPLOAD, upload=str(bad)), reset=True)
    _assert_error(h, out, "line 2")


def test_missing_path_and_empty_source(app, tmp_path):
    h, _ = app
    out = h.refresh(_values(app, source_kind=SOURCE_PATH, path=str(tmp_path / "nope.csv")), reset=True)
    _assert_error(h, out, "not found")
    out = h.refresh(_values(app, source_kind=SOURCE_UPLOAD, upload=None), reset=True)
    _assert_error(h, out, "upload")


def test_user_maps_columns_the_detector_cannot_guess(app, tmp_path):
    h, _ = app
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"q": f"question {i}", "a": f"answer {i}"}) + "\n" for i in range(12)),
                    encoding="utf-8")
    values = _values(app, source_kind=SOURCE_PATH, path=str(path), template_name=CUSTOM_TEMPLATE,
                     template="{q}\nAnswer: {a}", response_template="Answer:")
    out = h.refresh(values, reset=True)
    _assert_error(h, out, "can't tell the format", "q, a")
    offered = [c for c in out[h.form.mapping["prompt"]]["choices"] if c != ("— none —", "")]
    assert offered == ["q", "a"], "the columns are offered so the user can map them"
    values[h.form.format] = "prompt_completion"
    values[h.form.mapping["prompt"]], values[h.form.mapping["completion"]] = "q", "a"
    out = h.refresh(values)
    assert out[h.error]["visible"] is False, _message(out[h.error])
    assert out[h.form.mapping["prompt"]]["value"] == "q" and out[h.form.mapping["prompt"]]["visible"]
    assert "".join(t for t, label in out[h.highlighted] if label == "trained").startswith(" answer 0")


# --------------------------------------------------------------------------- widgets derived from the field metadata
OWN = {"weight": "label", "template": "info"}
"""What the tab says itself, with the reason there: the box edits the first source's weight only; the template box
holds the text while the named-template dropdown holds the name."""


def _data_tab(tmp_path, initial=None):
    app = compose(Studio(runs_dir=tmp_path), initial=initial or initial_config(demo=True), tabs=("studio.ui.data_tab",))
    return app.ctx.forms.data, app.ctx.forms


def test_every_data_config_widget_follows_its_field_metadata(tmp_path, monkeypatch):
    """Change each config field's label, help, range and choices in the metadata: the rendered widgets follow."""
    patched = {key: patch_metadata(monkeypatch, cls, name, key, slider=(1, 9000, 1))
               for key, (cls, name) in CONFIG_FIELDS.items()}
    form, _ = _data_tab(tmp_path)
    for key, (kind, meta) in patched.items():
        w = getattr(form, key)
        assert_follows(w, kind, meta, key, own=OWN.get(key, ""))
        assert w.elem_id == "data-" + key.replace("_", "-"), key


def test_data_widgets_show_and_read_back_the_config_they_were_built_on(tmp_path):
    """Every config field the tab shows off its default: the widgets show it, and reading them gives it back."""
    raw = initial_config(demo=True).to_dict()
    raw["data"].update(sources=[{"path": str(tmp_path / "qa.jsonl"), "split": "test", "name": "main",
                                 "columns": {"prompt": "q", "completion": "a"}, "weight": 2.0}],
                       format="prompt_completion", template="Q: {q}\nA: {a}", response_template="A:",
                       system_prompt="Be brief.", eval_fraction=0.2, max_rows=50, seed=7)
    raw["train"].update(max_length=256, loss_on="all")
    cfg = RunConfig.from_dict(raw)
    form, forms = _data_tab(tmp_path, initial=cfg)
    source, default_source = cfg.data.sources[0], SourceConfig(path="x")
    sections = {SourceConfig: (source, default_source), DataConfig: (cfg.data, DataConfig()),
                TrainConfig: (cfg.train, TrainConfig())}
    assert [key for key, (cls, name) in CONFIG_FIELDS.items()
            if getattr(sections[cls][0], name) == getattr(sections[cls][1], name)] == [], "every field changed"
    written = forms.write(cfg)
    widgets = [getattr(form, key) for key in CONFIG_FIELDS]
    assert [w.value for w in widgets] == [written[w] for w in widgets]
    back = forms.read({**written, **{w: w.value for w in widgets}})
    assert back.data == cfg.data
    assert (back.train.max_length, back.train.loss_on) == (256, "all")
    demo = initial_config(demo=True)  # the defaults with the first bundled sample (a config without one can't show)
    assert forms.read(forms.write(demo)).data == demo.data


@pytest.mark.parametrize("name, content", [
    ("mine.csv", "question,answer\nWhat is 2+2?,4\nWhat is 3+3?,6\nWhat is 1+5?,6\n"),
    ("chat.jsonl", "".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                                    {"role": "assistant", "content": f"hello {i}"}]}) + "\n"
                           for i in range(4))),
])
def test_a_new_file_drops_the_sample_template_it_does_not_fit(app, tmp_path, name, content):
    """The sample's {Problem}/{Solution} template is not kept for a file without those columns (issue 23.2)."""
    from studio.ui.forms import CHAT_TEMPLATE

    h, _ = app
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    values = _values(app, source_kind=SOURCE_UPLOAD, upload=str(path))
    assert "{Problem}" in values[h.form.template]  # what the app opened with
    out = h.refresh(values, reset=True)
    assert out[h.error]["visible"] is False, _message(out[h.error])
    assert out[h.form.template] == "" and out[h.form.response_template] == ""
    assert out[h.form.template_name] == CHAT_TEMPLATE
    assert out[h.stats] and dict(out[h.stats])["rows"] == (3 if name.endswith("csv") else 4)


def test_a_new_file_keeps_a_template_that_fits_it(app, tmp_path):
    h, _ = app
    path = tmp_path / "same.csv"
    path.write_text("Problem,Solution\n2x=4,x=2\n3x=9,x=3\n", encoding="utf-8")
    out = h.refresh(_values(app, source_kind=SOURCE_UPLOAD, upload=str(path)), reset=True)
    assert out[h.error]["visible"] is False, _message(out[h.error])
    assert out[h.form.template] == {"__type__": "update"}, out[h.form.template]  # left as typed (gr.skip())


def test_switching_to_upload_clears_the_sample_columns(app):
    """Upload chosen, no file yet: the column boxes no longer show the sample's Problem/Solution (issue 23.2)."""
    h, _ = app
    out = h.on_source_kind(_values(app, source_kind=SOURCE_UPLOAD, upload=None))
    for role, dd in h.form.mapping.items():
        assert out[dd]["value"] is None and out[dd]["choices"] == [("— none —", "")], (role, out[dd])
