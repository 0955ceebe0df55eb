"""Issue 23.9, headless: step axes tick whole steps only, Stop and Resume are disabled with nothing to stop or resume,
the Resume list picks the run that was just stopped, and counts read as English ("1 row") wherever they are printed."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from studio.session import Studio
from studio.ui import charts
from studio.ui.app import compose, initial_config
from studio.ui.train_tab import TrainView

ROOT = Path(__file__).resolve().parents[2]
STOP, RESUME, RESUME_RUN = 9, 10, 11
"""Where the Stop button, the Resume button and the Resume list are in the timer's outputs."""


def _series(steps: list[int]) -> charts.RunSeries:
    s = charts.RunSeries()
    for step in steps:
        s.steps.append(step)
        for name in ("loss", "learning_rate", "grad_norm", "tokens_per_s", "memory_gb"):
            getattr(s, name).append(1.0)
        for name in ("padding_share", "mfu", "steps_per_s"):
            getattr(s, name).append(None)
    return s


# ------------------------------------------------------------------------------------------------- axes
@pytest.mark.parametrize("steps", [[1], [1, 2], [1, 2, 3], list(range(1, 301))])
def test_step_axes_tick_whole_steps_only(steps):
    from studio.ui.pref_charts import preference_figure

    series = _series(steps)
    series.metrics["rewards/margins"] = [0.1] * len(steps)
    for fig in (charts.loss_figure(series), charts.metrics_figure(series), preference_figure(series, "dpo")):
        axes = [fig.layout[k] for k in fig.layout if k.startswith("xaxis")]
        assert axes
        for axis in axes:
            assert axis.tickmode == "linear" and axis.tick0 == 0 and axis.tickformat == "d"
            assert float(axis.dtick).is_integer() and axis.dtick >= 1
            assert (max(steps) - min(steps)) / axis.dtick <= 10, "about six ticks, never hundreds"


# ------------------------------------------------------------------------------------- Stop / Resume controls
@pytest.fixture
def app(tmp_path):
    studio = Studio(runs_dir=tmp_path / "runs")
    built = compose(studio, initial=initial_config(demo=True), tabs=("studio.ui.data_tab", "studio.ui.train_tab"))
    return built.handles["train"], built.ctx, studio


def test_stop_and_resume_are_disabled_with_no_run(app):
    h, _, _ = app
    assert h.stop.interactive is False and h.resume.interactive is False
    out = h.on_tick(TrainView())
    assert out[STOP]["interactive"] is False and out[RESUME]["interactive"] is False


def _values(ctx, h, **train):
    values = ctx.forms.write(ctx.initial)
    data = ctx.forms.data
    values[data.max_rows], values[data.eval_fraction], values[data.max_length] = 48, 0.0, 128
    for name, value in {"max_steps": 200, "batch_size": 4, "logging_steps": 1, "save_steps": 1,
                        "tensorboard": False, "probe_prompts": "", **train}.items():
        values[getattr(h.form, name)] = value
    return values


def _tick_until(h, view, done, what, timeout=300):
    """Tick like the browser's timer until ``done(outputs)``."""
    deadline = time.time() + timeout
    while True:
        out = h.on_tick(view)
        view = out[0]
        if done(out):
            return out
        assert time.time() < deadline, f"never {what}: {view.series.message}"
        time.sleep(0.3)


def test_stop_is_enabled_while_live_and_the_stopped_run_is_preselected_for_resume(app):
    h, ctx, studio = app
    started = h.on_start(_values(ctx, h))
    assert started[h.error]["visible"] is False and started[h.stop]["interactive"] is True
    out = _tick_until(h, TrainView(), lambda o: o[0].series.steps, "logged a step")
    live = h.on_tick(TrainView())  # a fresh browser: everything is drawn
    assert live[STOP]["interactive"] is True and live[RESUME]["interactive"] is False
    h.on_stop()
    out = _tick_until(h, out[0], lambda o: not studio.job.alive and o[0].series.status == "stopped", "stopped")
    out = h.on_tick(TrainView())
    name = studio.job.run_dir.name
    assert out[STOP]["interactive"] is False and out[RESUME]["interactive"] is True
    assert out[RESUME_RUN]["value"] == name and name in out[RESUME_RUN]["choices"]


# --------------------------------------------------------------------------------------------------- plurals
def test_chart_titles_are_one_line():
    """A two-line plotly title is drawn with its first line above the chart, where it is cut (the memory chart's)."""
    titles = [charts.memory_bar({"weights": 1.0}, 16.0, "system RAM").layout.title.text,
              charts.token_histogram([10, 20, 300], 256).layout.title.text]
    assert all("<br>" not in t for t in titles), titles


def test_counts_of_one_read_as_english(tmp_path):
    from studio.events import Started

    assert "1 of 1 row cut" in charts.token_histogram([5], 4).layout.title.text
    s = charts.RunSeries()
    s.add([Started(run_dir="r", model="m", device="cpu", total_steps=1, train_rows=1, eval_rows=1)])
    assert "1 step, 1 train / 1 eval row" in s.lines[0]


def test_the_speed_plan_says_one_row(tiny_cfg):
    from studio.speed.plan import plan_speed

    cfg = tiny_cfg(batch_size=1)
    assert plan_speed(cfg, device="cpu").batch_reason.startswith("1 row without padding")


def test_the_eval_plan_says_one_step_and_one_row(tiny_cfg):
    from studio.training.eval_during import plan_eval

    plan = plan_eval(tiny_cfg(eval_steps=1).train, eval_rows=1, rows_per_step=2, total_steps=4)
    assert "every 1 step on 1 held-out row" in plan.reason


USER_TEXT = ["studio/ui", "studio/data", "studio/speed", "studio/training", "studio/rewards", "studio/hub",
             "studio/evaluate.py", "studio/forgetting.py", "studio/run_compare.py", "studio/runs.py", "studio/arena",
             "studio/retrieval", "studio/inference"]
"""Where the text a user reads in the app (and the CLI) is written."""
COUNTED = re.compile(r"(?<!%)\{[^{}]*\}\s(rows|steps|files|chunks|pairs|evaluations|completions|packs|runs|"
                     r"checkpoints|sources|votes|prompts|values)\b")
ALLOWED = {("studio/ui/model_tab.py", "answers per row"), ("studio/evaluate.py", "{side} answers")}
"""Not counts, or counts only ever above one (the line says why)."""


def test_no_count_is_printed_without_plural():
    """A number before a plural noun goes through ``formatting.plural`` (``1 row``, ``2 rows``)."""
    found = []
    for where in USER_TEXT:
        path = ROOT / where
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            rel = file.relative_to(ROOT).as_posix()
            for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if COUNTED.search(line) and "plural(" not in line \
                        and not any(rel == f and snippet in line for f, snippet in ALLOWED):
                    found.append(f"{rel}:{i}: {line.strip()}")
    assert not found, "counts printed without plural():\n" + "\n".join(found)
