"""Train tab, headless: widgets derived from the field metadata and round-tripping the config, Start -> events ->
charts on the demo model, the busy answer, replay in a second browser, overlays of earlier runs, and Stop."""
from __future__ import annotations

import dataclasses
import time

import pytest
from field_widgets import assert_follows, patch_metadata

from studio.config import RunConfig, TrainConfig
from studio.session import Studio
from studio.ui.app import compose, initial_config
from studio.ui.forms import edit_kind
from studio.ui.chart_feed import as_figure
from studio.ui.train_status import progress_html, status_line
from studio.ui.train_tab import TrainView

SKIP = {"__type__": "update"}
"""What ``gr.skip()`` returns: the output is left as it is (a ``gr.update(...)`` with values has more keys)."""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    studio = Studio(runs_dir=tmp_path_factory.mktemp("runs"))
    blocks = compose(studio, initial=initial_config(demo=True))
    return blocks.handles["train"], blocks.ctx, studio


def _train_tab(tmp_path, initial: RunConfig | None = None):
    """The Train tab alone, built on ``initial`` (default: the demo config): its form and the app's forms."""
    forms = compose(Studio(runs_dir=tmp_path), initial=initial or initial_config(demo=True),
                    tabs=("studio.ui.train_tab",)).ctx.forms
    return forms.train, forms


def _shown(form) -> list[str]:
    return [f.name for f in dataclasses.fields(form) if getattr(form, f.name) is not None]


def test_every_train_widget_follows_its_field_metadata(tmp_path, monkeypatch):
    """Change each shown field's label, help, range and choices in the metadata: the rendered widgets follow."""
    form, _ = _train_tab(tmp_path / "a")
    names = _shown(form)
    assert names == [f.name for f in dataclasses.fields(form)], "the tab shows every TrainForm field"
    patched = {name: patch_metadata(monkeypatch, TrainConfig, name, name) for name in names}
    form, _ = _train_tab(tmp_path / "b")
    for name, (kind, meta) in patched.items():
        w = getattr(form, name)
        # start_from takes a run folder (any text in the config): the tab offers the finished runs as a dropdown
        assert_follows(w, "dropdown" if name == "start_from" else kind, meta, name,
                       check_choices=name != "start_from")
        assert w.elem_id == "train-" + name.replace("_", "-"), name


def test_train_widgets_show_and_read_back_the_config_they_were_built_on(tmp_path):
    """Every shown field off its default: the rendered widgets show it, and reading them gives it back."""
    raw = initial_config(demo=True).to_dict()
    raw["train"].update(run_name="round-trip", max_steps=7, epochs=2.5, learning_rate=1e-3, lr_scheduler="cosine",
                        warmup_ratio=0.1, batch_size=2, grad_accum=3, packing=True, gradient_checkpointing=True,
                        optim="sgd", weight_decay=0.01, max_grad_norm=1.0, seed=7, logging_steps=2, save_steps=9,
                        save_total_limit=None, eval_steps=5, booster="none", tensorboard=False, report_to="wandb",
                        early_stopping_patience=3, keep_best=True, best_metric="accuracy", eval_accuracy_rows=4,
                        probe_prompts=["first prompt", "second prompt"], device="cpu", processes=2,
                        distributed="fsdp", method="dpo", beta=0.3, loss_type="ipo", simpo_gamma=0.8,
                        start_from=str(tmp_path / "runs" / "an-sft-run"), precision="fp32",
                        num_generations=2, max_completion_length=48, temperature=0.7, kl_beta=0.05,
                        stop_at_answer=False, rewards=[{"name": "answer", "weight": 2.0},
                                                       {"name": "regex", "weight": 0.5, "pattern": r"#### \d+"}])
    cfg = RunConfig.from_dict(raw)
    form, forms = _train_tab(tmp_path, initial=cfg)
    default = TrainConfig()
    names = _shown(form)
    assert [n for n in names if getattr(cfg.train, n) == getattr(default, n)] == [], "every shown field changed"
    written = forms.write(cfg)
    assert {n: getattr(form, n).value for n in names} == {n: written[getattr(form, n)] for n in names}
    as_rendered = {**written, **{getattr(form, n): getattr(form, n).value for n in names}}
    assert forms.read(as_rendered).train == cfg.train
    assert forms.read(forms.write(RunConfig())).train == RunConfig().train


def _values(app, **train):
    h, ctx, _ = app
    values = ctx.forms.write(ctx.initial)
    data = ctx.forms.data
    values[data.max_rows], values[data.eval_fraction], values[data.max_length] = 48, 0.0, 128
    changes = {"max_steps": 3, "batch_size": 4, "logging_steps": 1, "save_steps": 100, "tensorboard": False,
               "probe_prompts": "", **train}
    for name, value in changes.items():
        values[getattr(h.form, name)] = value
    return values


def _poll_until_done(h, studio, view, timeout=300):
    """Tick like the browser's timer until the job ends; returns the view and how often the loss chart redrew."""
    redraws, deadline = 0, time.time() + timeout
    while True:
        alive = studio.job.alive
        out = h.on_tick(view)
        view = out[0]
        redraws += not (isinstance(out[3], dict) and out[3] == SKIP)  # a figure, not gr.skip(): redrawn
        if not alive:
            return view, redraws
        assert time.time() < deadline, "training did not finish in time"
        time.sleep(0.3)


def test_start_streams_events_into_charts_and_a_second_start_is_busy(app):
    h, ctx, studio = app
    out = h.on_start(_values(app))
    assert out[h.error]["visible"] is False, out[h.error]
    run_dir = out[ctx.run_dir]
    assert run_dir and "Started" in out[h.status]
    busy = h.on_start(_values(app))
    assert busy[h.error]["visible"] is True and "a run is in progress" in busy[h.error]["value"]
    view, redraws = _poll_until_done(h, studio, TrainView())
    s = view.series
    assert s.status == "finished", s.message
    assert s.steps == [1, 2, 3] and all(v is not None for v in s.loss)
    assert redraws >= 2, "the chart was redrawn as events arrived"
    assert s.speed and s.speed[0].startswith("attention: sdpa"), "the speed plan is listed"
    assert all(v is not None for v in s.padding_share) and any(s.mfu)
    _, text, _ = status_line(studio, view)
    assert "tok/s (real)" in text and "padding" in text and "MFU" in text
    assert "**Fast path**" in text and "- gradient checkpointing: off" in text and "~" not in text
    assert h.on_tick(view)[1] == SKIP, "nothing new: the status is not sent again"
    fresh = h.on_tick(TrainView())  # a new browser (fresh cursor) replays the whole log
    assert "**finished**" in fresh[1] and "step 3/3" in fresh[1], fresh[1]
    fig = as_figure(fresh[3])
    train_trace = next(t for t in fig.data if t.name == "train loss")
    assert list(train_trace.x) == [1, 2, 3]


def test_reloaded_view_replays_the_same_series(app):
    h, _, studio = app
    first = h.on_tick(TrainView())[0]
    second = h.on_tick(TrainView())[0]
    assert first.series.steps == second.series.steps and first.cursor == second.cursor == len(studio.job.events)
    again = h.on_tick(first)
    assert all(x == SKIP for x in again[3:6]), "nothing new: the plots and the log are not sent again"


def test_earlier_runs_overlay_the_loss_chart(app):
    h, _, studio = app
    view = h.on_tick(TrainView())[0]
    name = studio.job.run_dir.name
    view, fig = h.on_overlay([name], view)
    assert name in [t.name for t in fig.data]


def test_stop_then_resume_is_offered(app):
    h, _, studio = app
    out = h.on_start(_values(app, max_steps=200, save_steps=1))
    assert out[h.error]["visible"] is False, out[h.error]
    view = TrainView()
    deadline = time.time() + 300
    while not view.series.steps:
        view = h.on_tick(view)[0]
        assert time.time() < deadline and studio.job.alive, view.series.message
        time.sleep(0.3)
    assert h.on_stop()[h.error]["visible"] is False
    view, _ = _poll_until_done(h, studio, view)
    assert view.series.status == "stopped"
    from studio.ui.train_tab import run_choices

    _, resumable = run_choices(studio)
    assert studio.job.run_dir.name in resumable
    assert h.on_stop()[h.error]["value"].endswith("Nothing is running.**")


def test_progress_bar_html():
    html = progress_html(0.5, "running", " · ETA 0:00:05")
    assert 'aria-valuenow="50"' in html and "ETA 0:00:05" in html


def test_resume_without_a_choice_is_a_message(app):
    h, _, _ = app
    assert "Pick a run to resume" in h.on_resume(None)[h.error]["value"]


def test_a_failing_run_shows_its_message(app, tmp_path):
    h, ctx, studio = app
    values = _values(app)
    values[ctx.forms.model.name_or_path] = str(tmp_path / "missing-model")
    out = h.on_start(values)
    assert out[h.error]["visible"] is False
    view, _ = _poll_until_done(h, studio, TrainView())
    assert view.series.status == "failed"
    out = h.on_tick(TrainView())
    assert out[6]["visible"] is True and "missing-model" in out[6]["value"]
    assert "Traceback" not in out[6]["value"]
