"""The Train tab's timer, headless, on a fake run (no training): browsers polling one run share one figure build per
poll period, a browser that drew the newest snapshot gets skips, a reloaded page or a new run replays from the start,
and the runs folder is listed only when the run's phase changes."""
from __future__ import annotations

from pathlib import Path

import pytest

from studio.events import EventLog, Finished, Log, Started
from studio.session import Studio
from studio.training.state import JobStatus
from studio.ui import train_tab
from studio.ui.app import compose, initial_config
from studio.ui.chart_feed import as_figure
from studio.ui.train_tab import TrainView

SKIP = {"__type__": "update"}
STATUS, LOSS, METRICS, LOG, STOP = 1, 3, 4, 5, 9
"""Where the status line, the two charts, the log and the Stop button are in the timer's outputs."""


class FakeJob:
    """A run the app follows: its events, whether it is alive, and its phase."""

    def __init__(self, run_dir: Path, steps: int = 1) -> None:
        self.run_dir, self.alive, self.cfg, self.state = run_dir, True, None, "running"
        self.events = EventLog(events=[Started(run_dir=str(run_dir), model="m", total_steps=50)])
        self.log(steps)

    def log(self, n: int) -> None:
        done = sum(isinstance(e, Log) for e in self.events.all())
        for step in range(done + 1, done + n + 1):
            self.events.append(Log(step=step, loss=2.0 / step, learning_rate=1e-3, total_steps=50))

    def status(self) -> JobStatus:
        return JobStatus(state=self.state, run_dir=str(self.run_dir), total_steps=50)


@pytest.fixture
def tab(tmp_path):
    studio = Studio(runs_dir=tmp_path / "runs")
    h = compose(studio, initial=initial_config(demo=True), tabs=("studio.ui.train_tab",)).handles["train"]
    now = [0.0]
    h.feed.clock = lambda: now[0]
    studio.job = FakeJob(tmp_path / "runs" / "fake")
    return h, studio, now


def _steps(out) -> list[int]:
    return list(next(t for t in as_figure(out[LOSS]).data if t.name == "train loss").x)


def test_two_browsers_share_one_build_and_a_browser_with_the_newest_charts_gets_skips(tab):
    h, studio, now = tab
    a, b = h.on_tick(TrainView()), h.on_tick(TrainView())
    assert h.feed.builds == 1, "the second browser's charts came from the first one's build"
    assert a[LOSS] is b[LOSS] and a[METRICS] is b[METRICS] and _steps(a) == [1]
    again = h.on_tick(a[0])
    assert all(again[i] == SKIP for i in (STATUS, LOSS, METRICS, LOG)), "nothing new: nothing is sent again"
    studio.job.log(3)
    assert h.on_tick(a[0])[LOSS] == SKIP and h.feed.builds == 1, "within the poll period the snapshot stands"
    now[0] = 1.0
    a2, b2 = h.on_tick(a[0]), h.on_tick(b[0])
    assert h.feed.builds == 2 and a2[LOSS] is b2[LOSS] and _steps(a2) == [1, 2, 3, 4]
    assert "step 4/50" in a2[LOG] and a2[0].series.steps == [1, 2, 3, 4]
    now[0] = 2.0
    assert h.on_tick(a2[0])[LOSS] == SKIP and h.feed.builds == 2, "no new events: no new build"


def test_a_reloaded_page_and_a_new_run_replay_from_the_start(tab, tmp_path):
    h, studio, now = tab
    view = h.on_tick(TrainView())[0]
    for t in (1.0, 2.0):
        studio.job.log(2)
        now[0] = t
        view = h.on_tick(view)[0]
    reloaded = h.on_tick(TrainView())
    assert _steps(reloaded) == [1, 2, 3, 4, 5] and reloaded[0].series.steps == [1, 2, 3, 4, 5]
    assert reloaded[LOG].startswith("started m on cpu") and "step 5/50" in reloaded[LOG]
    assert "running" in reloaded[STATUS]
    studio.job = FakeJob(tmp_path / "runs" / "second", steps=2)  # a new run, read at once (no period to wait)
    out = h.on_tick(view)
    assert _steps(out) == [1, 2] and out[0].series.steps == [1, 2] and out[0].cursor == 3
    studio.job.events.append(Finished(step=2, adapter_path="a"))
    studio.job.alive, studio.job.state = False, "finished"
    out = h.on_tick(out[0])  # a run that ended is read to its end at once
    assert out[0].series.status == "finished" and "finished" in out[STATUS]


def test_the_runs_folder_is_listed_only_when_the_phase_changes(tab, monkeypatch):
    h, studio, now = tab
    listed = []
    real = train_tab.run_choices
    monkeypatch.setattr(train_tab, "run_choices", lambda s: listed.append(1) or real(s))
    view = h.on_tick(TrainView())
    assert view[STOP]["interactive"] is True and len(listed) == 1
    for t in (1.0, 2.0, 3.0):
        studio.job.log(1)
        now[0] = t
        view = h.on_tick(view[0])
        assert view[STATUS] != SKIP and view[STOP] == SKIP
    assert len(listed) == 1, "new events in the same phase: the buttons stand"
    studio.job.state, now[0] = "stopping", 4.0
    assert h.on_tick(view[0])[STOP]["interactive"] is True and len(listed) == 2


def test_the_grpo_panel_draws_nothing_for_a_run_without_grpo_signals(tmp_path):
    """Its own timer: an SFT run's events leave the (hidden) panel alone; GRPO signals show it with its charts."""
    from studio.ui.grpo_panel import GrpoView

    studio = Studio(runs_dir=tmp_path / "runs")
    blocks = compose(studio, initial=initial_config(demo=True), tabs=("studio.ui.train_tab",)).blocks
    tick = next(f.fn for f in blocks.fns.values() if f.api_name == "poll_grpo")
    studio.job = FakeJob(tmp_path / "runs" / "sft", steps=3)
    out = tick(GrpoView())
    assert all(x == SKIP for x in out[1:]), "an SFT run: nothing drawn into the hidden panel"
    studio.job.events.append(Log(step=4, loss=0.5, metrics={"reward": 0.5, "rewards/answer/mean": 0.5}))
    out = tick(out[0])
    assert out[1]["visible"] is True and out[3].data, "GRPO signals: shown, with its reward chart"
    studio.job = FakeJob(tmp_path / "runs" / "next-sft")
    assert tick(out[0])[1]["visible"] is False, "the next run has none: hidden again"
