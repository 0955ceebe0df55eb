"""Issue 15, headless: what the UI shows is what it does (source switch, template edits, restored forms,
multi-source round trip, data warnings, failures, charts, the measured memory bar, answer budgets)."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from studio.config import RunConfig, SourceConfig, load_config
from studio.data.checks import answer_token_budget, empty_answers, template_mismatch  # noqa: F401
from studio.session import Studio
from studio.ui import charts
from studio.ui.app import compose, initial_config
from studio.ui.config_bar import session_config
from studio.ui.forms import DATASETS_DIR, SOURCE_PATH, SOURCE_SAMPLE, SOURCE_UPLOAD
from studio.ui.model_tab import build_estimate
from studio.ui.train_status import failure_box, failure_view


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    return compose(Studio(runs_dir=tmp_path_factory.mktemp("runs")), initial=initial_config(demo=True))


def _mix() -> RunConfig:
    cfg = initial_config(demo=True)
    first = dataclasses.replace(cfg.data.sources[0], weight=2.0)
    second = SourceConfig(path=str(DATASETS_DIR / "word_problems.jsonl"), split="train",
                          columns={"prompt": "question", "completion": "answer"}, weight=0.5)
    third = SourceConfig(path="owner/some-set", split="test", name="main", weight=0.25)
    data = dataclasses.replace(cfg.data, sources=[first, second, third])
    return dataclasses.replace(cfg, data=data, train=dataclasses.replace(cfg.train, max_steps=7, batch_size=3))


def test_a_multi_source_config_round_trips_through_the_forms(blocks):
    forms = blocks.ctx.forms
    cfg = _mix()
    values = forms.write(cfg)
    assert values[forms.data.extra_sources] == [
        [str(DATASETS_DIR / "word_problems.jsonl"), "train", "", 0.5, "prompt=question, completion=answer"],
        ["owner/some-set", "test", "main", 0.25, ""]]
    assert values[forms.data.weight] == 2.0
    assert forms.read(values) == cfg
    values[forms.data.extra_sources] = values[forms.data.extra_sources][:1] + [["", "train", "", 1.0, ""]]
    assert [s.weight for s in forms.read(values).data.sources] == [2.0, 0.5], "a blank row is no source"


def test_fields_without_a_widget_keep_the_written_config(blocks):
    forms = blocks.ctx.forms
    cfg = _mix()
    cfg = dataclasses.replace(cfg, hub=dataclasses.replace(cfg.hub, repo_id="me/other-name"))
    assert forms.read(forms.write(cfg)).hub.repo_id == "me/other-name"


def test_new_sessions_show_the_live_or_most_recent_run(tmp_path):
    studio = Studio(runs_dir=tmp_path)
    assert session_config(studio) is None
    run = tmp_path / "older-run"
    run.mkdir()
    _mix().save(run / "config.yaml")
    cfg, where = session_config(studio)
    assert cfg.train.max_steps == 7 and len(cfg.data.sources) == 3 and "older-run" in where
    studio.job = SimpleNamespace(cfg=initial_config(demo=True), run_dir=tmp_path / "live-run",
                                 status=lambda: SimpleNamespace(state="running"))
    cfg, where = session_config(studio)
    assert cfg == initial_config(demo=True) and "live-run" in where


def test_restore_and_defaults_write_every_form(tmp_path):
    studio = Studio(runs_dir=tmp_path)
    run = tmp_path / "mix-run"
    run.mkdir()
    _mix().save(run / "config.yaml")
    app = compose(studio, initial=initial_config(demo=True))
    bar, forms = app.config_bar, app.ctx.forms
    out = bar["restore"]()
    assert set(out) == set(bar["outputs"]) - {forms.data.upload}, "every form gets a value (an upload cannot)"
    values = {k: (v.get("value") if isinstance(v, dict) and "__type__" in v else v) for k, v in out.items()}
    assert forms.read(values) == load_config(run / "config.yaml")
    assert "mix-run" in out[next(iter(bar["outputs"]))]
    values = {k: (v.get("value") if isinstance(v, dict) and "__type__" in v else v)
              for k, v in bar["defaults"]().items()}
    assert forms.read(values) == initial_config(demo=True)
    opened = bar["open_file"](str(run / "config.yaml"))
    assert "config.yaml" in opened[next(iter(bar["outputs"]))]
    # "Save config" beside "Open config…": the forms as a YAML file that opens back into the same forms (issue 23.10)
    values = {k: (v.get("value") if isinstance(v, dict) and "__type__" in v else v) for k, v in out.items()}
    saved = next(v for v in bar["save"](values).values() if isinstance(v, dict) and v.get("visible"))
    assert load_config(saved["value"]) == load_config(run / "config.yaml")


@pytest.mark.parametrize("kind", [SOURCE_SAMPLE, SOURCE_UPLOAD, SOURCE_PATH])
def test_switching_the_source_kind_returns_only_preview_outputs(blocks, kind):
    h, ctx = blocks.handles["data"], blocks.ctx
    values = ctx.forms.write(ctx.initial)
    values[h.n_rows] = 1
    values[h.form.source_kind] = kind
    values[h.form.path] = ""
    out = h.on_source_kind(values)
    assert out and set(out) <= set(h.outputs()), "gradio needs every returned key to be an output"
    assert out[h.error]["visible"] is False
    if kind != SOURCE_SAMPLE:
        assert "Upload" in out[h.summary] or "Hub dataset id" in out[h.summary]


def test_template_problems_are_inline_not_toasts(blocks, monkeypatch):
    import gradio as gr

    toasts = []
    monkeypatch.setattr(gr, "Warning", lambda *a, **k: toasts.append(a))
    h, ctx = blocks.handles["data"], blocks.ctx
    values = ctx.forms.write(ctx.initial)
    values[h.n_rows] = 1
    values[h.form.template] = "{Problem} ### Solution: {Solutio"
    out = h.refresh(values, toast=False)
    assert out[h.error]["visible"] is True and not toasts


def test_empty_completions_are_warned(blocks, tmp_path):
    h, ctx = blocks.handles["data"], blocks.ctx
    path = tmp_path / "gaps.csv"
    path.write_text("Problem,Solution\n" + "".join(f"Solve {i},x = {i}\n" if i % 4 else f"Solve {i},\n"
                                                     for i in range(20)), encoding="utf-8")
    values = ctx.forms.write(ctx.initial)
    values.update({h.n_rows: 1, h.form.source_kind: SOURCE_PATH, h.form.path: str(path)})
    out = h.refresh(values, reset=True)
    assert "5 of 20 rows have an empty answer (column 'Solution')" in out[h.warnings], out[h.warnings]


def test_a_template_that_does_not_fit_names_the_files_real_header(blocks, tmp_path):
    h, ctx = blocks.handles["data"], blocks.ctx
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\n" + "".join(f"q{i},a{i}\n" for i in range(12)), encoding="utf-8")
    values = ctx.forms.write(ctx.initial)
    values.update({h.n_rows: 1, h.form.source_kind: SOURCE_PATH, h.form.path: str(path)})
    h.refresh(values, reset=True)  # a new file: the template follows its columns (no error)
    values[h.form.template] = "{Problem}\n### Solution: {Solution}"  # then a template written for other columns
    text = h.refresh(values)[h.error]["value"]
    assert "qa.csv has the columns `question`, `answer`" in text and "{Problem}" in text, text
    assert "system" not in text.split("columns")[1].split(".")[0] and "`text`" not in text


def test_probe_prompts_follow_the_data(blocks):
    h, ctx = blocks.handles["data"], blocks.ctx
    values = ctx.forms.write(ctx.initial)
    values[h.n_rows] = 1
    values[h.form.sample] = "word_problems.jsonl"
    out = h.refresh(values, reset=True, sample_name="word_problems.jsonl")
    probe = out[ctx.forms.train.probe_prompts]
    assert "Solve for x" not in probe and probe.strip(), probe


def test_checks_on_loaded_data():
    from studio.data import load_data

    loaded = load_data(initial_config(demo=True).data)
    assert empty_answers(loaded.dataset, loaded.format, loaded.mapping) == (0, "Solution")
    assert template_mismatch("{Problem} {Solution}", loaded.columns) is None
    budget = answer_token_budget(loaded)
    assert 64 <= budget <= 1024 and budget % 32 == 0
    longest = max(len(a) for a in loaded.dataset["Solution"])
    assert answer_token_budget(loaded, cap=10_000) >= longest // 2 * 0.95 // 1 or budget == 64


def test_raw_failures_get_a_sentence_a_suggestion_and_details():
    head, tip, raw = failure_view("RuntimeError: shape '[128, 5]' is invalid for input of size 704")
    assert "shape" in head and tip and raw.startswith("RuntimeError")
    box = failure_box("RuntimeError: shape '[128, 5]' is invalid", "")
    assert "<details>" in box and box.index("Training failed") < box.index("<details>")
    assert failure_view("out of memory while training", "Try: a smaller batch.") == \
        ("out of memory while training", "Try: a smaller batch.", None)


def test_charts_constant_lr_is_drawn_at_its_value_and_labels_stay_clear():
    from studio.events import Log

    s = charts.RunSeries()
    for step in range(1, 6):
        s.add([Log(step=step, total_steps=5, loss=1.0, learning_rate=0.003, grad_norm=1.0, tokens_per_s=100.0,
                   padding_share=0.1, mfu=None, steps_per_s=2.0, peak_memory_bytes=None, memory_bytes=2**30,
                   eta_s=1.0)])
    fig = charts.metrics_figure(s)
    lo, hi = fig.layout.yaxis.range
    assert lo == 0 and 0.003 < hi < 0.004
    assert "0.50 s/step" in s.speed_now()
    hist = charts.token_histogram([10, 20, 300], 256)
    assert "max_length=256" in hist.layout.title.text and not hist.layout.annotations
    bar = charts.memory_bar({"weights": 1.0}, 16.0, "system RAM")
    assert "system RAM" in bar.layout.title.text and not bar.layout.annotations
    assert bar.layout.legend.y < 0


def test_measured_bar_only_for_the_model_it_was_measured_on():
    from studio.events import EventLog, Log

    cfg = initial_config(demo=True)
    log = EventLog()
    log.append(Log(step=1, memory_bytes=2 * 2**30))
    studio = SimpleNamespace(job=SimpleNamespace(cfg=cfg, events=log))
    assert build_estimate(cfg, studio).figure.data[-1].name == "measured peak"
    other = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, quantization="4bit"))
    assert all(t.name != "measured peak" for t in build_estimate(other, studio).figure.data)


def test_the_preview_of_a_mix_keeps_each_sources_columns(blocks):
    """The preview renames mixed sources to their roles; the mapping widgets must still show the first source's
    own columns, so reading the forms back gives the same config."""
    h, ctx = blocks.handles["data"], blocks.ctx
    cfg = initial_config(demo=True)
    data = dataclasses.replace(cfg.data, format="prompt_completion", template="{prompt}\n ### Solution: {completion}",
                               sources=[SourceConfig(path=str(DATASETS_DIR / "linear_equations.csv"),
                                                     columns={"prompt": "Problem", "completion": "Solution"}),
                                        SourceConfig(path=str(DATASETS_DIR / "word_problems.jsonl"),
                                                     columns={"prompt": "question", "completion": "answer"},
                                                     weight=0.5)])
    cfg = dataclasses.replace(cfg, data=data)
    values = ctx.forms.write(cfg)
    values[h.n_rows] = 1
    out = h.refresh(values)
    assert out[h.error]["visible"] is False, out[h.error]
    for dd in h.form.mapping.values():
        update = out[dd]
        values[dd] = update["value"] if isinstance(update, dict) else update
    assert ctx.forms.read(values) == cfg


def test_chat_budget_follows_the_runs_answers(tmp_path):
    from studio.ui.chat_runs import DEFAULT_MAX_NEW_TOKENS, answer_budget

    run = tmp_path / "wp-run"
    run.mkdir()
    cfg = initial_config(demo=True)
    wp = dataclasses.replace(cfg.data, template=None, response_template=None,
                             sources=[SourceConfig(path=str(DATASETS_DIR / "word_problems.jsonl"))])
    dataclasses.replace(cfg, data=wp).save(run / "config.yaml")
    cache: dict = {}
    budget = answer_budget(str(run), cache)
    from studio.data import load_data
    from studio.data.checks import answers
    from studio.ui.chat_runs import _tokenizer

    tok = _tokenizer(load_config(run / "config.yaml"))
    lengths = sorted(len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers(load_data(wp)))
    assert budget > 64 and budget % 32 == 0, budget  # 64 (the old default) cut these answers before "####"
    assert budget >= lengths[int(0.95 * (len(lengths) - 1))], (budget, lengths[-5:])
    assert cache and answer_budget(str(run), cache) == budget
    assert answer_budget(None) == DEFAULT_MAX_NEW_TOKENS == answer_budget(str(tmp_path / "nothing"))


def test_previews_run_one_at_a_time_in_the_order_asked(blocks):
    """An older (slower) preview must never land after a newer one: every event that redraws the preview shares one
    queue of one, and the mapping boxes accept a value their (just changed) choices lack instead of erroring."""
    h = blocks.handles["data"]
    fns = [fn for fn in blocks.blocks.fns.values() if any(o._id == h.highlighted._id for o in fn.outputs)]
    assert len(fns) >= 8, len(fns)
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in fns} == {("data-preview", 1)}
    assert all(dd.allow_custom_value for dd in h.form.mapping.values())
