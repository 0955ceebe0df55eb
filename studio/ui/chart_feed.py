"""The Train tab's shared view of the app's run: its events read once for the whole app, and its status, log tail
and charts (already serialized for the browser) rebuilt at most once per poll period, whichever browser asks.

Twenty browsers polling one run then cost one events read, one status read and one figure build per period, not
twenty. What the feed shares is derived only from the run folder's events (never from a browser's input); one
``ChartFeed`` per app (made in the Train tab's ``render``), thread-safe. Each browser keeps in its own ``gr.State``
only which ``ChartSnapshot.version`` it has drawn.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

from gradio.components.plot import PlotData

from studio.formatting import format_seconds
from studio.ui import charts, pref_charts
from studio.ui.method_view import method_of
from studio.ui.train_status import progress_html, status_line

TAIL_LINES = 40
"""Log lines shown under the charts (the newest last)."""


def job_key(job: Any) -> str:
    """Which run a browser follows: the run folder and the job object (a resumed run is a new job)."""
    return f"{job.run_dir}#{id(job)}" if job is not None else ""


def plot_data(fig: Any) -> PlotData:
    """A plotly figure serialized once, as ``gr.Plot`` sends it (``Plot.postprocess`` passes it through)."""
    return PlotData(type="plotly", plot=fig.to_json())


def as_figure(value: Any) -> Any:
    """The plotly figure a browser draws from a ``gr.Plot`` output (a ``PlotData`` or a figure)."""
    if isinstance(value, PlotData):
        import plotly.io

        return plotly.io.from_json(value.plot)
    return value


def frozen_series(series: charts.RunSeries) -> charts.RunSeries:
    """A copy of ``series`` that later events do not touch (its lists copied; the values are immutable)."""
    copied = {f.name: list(v) if isinstance(v := getattr(series, f.name), list) else v
              for f in dataclasses.fields(series)}
    copied["metrics"] = {k: list(v) for k, v in series.metrics.items()}
    return charts.RunSeries(**copied)


@dataclass(frozen=True)
class ChartSnapshot:
    """The app's run at one read, the same for every browser; never mutated once published."""

    key: str
    """``job_key`` of the run (``""``: no run yet)."""
    version: int
    """Grows whenever the series (and so the charts and the log) changed; a browser that drew it skips them."""
    cursor: int
    """Events read from the run's log."""
    series: charts.RunSeries
    method: str
    """The run's ``train.method`` (its own signals get a chart when it is not SFT or GRPO)."""
    reference: tuple[float, str] | None
    """Where its loss starts by design (DPO: ln 2), drawn dotted on the loss chart."""
    loss: PlotData
    metrics: PlotData
    pref: PlotData | None
    """The preference chart (DPO, ORPO, KTO...), None for the other methods."""
    log_tail: str
    state: str
    """The run's phase (``idle``, ``preparing``, ``running``, ``stopping``, ``finished``...)."""
    status: str
    """The status line (Markdown)."""
    progress: str
    """The progress bar (HTML)."""


class ChartFeed:
    """One app's shared reading of its run. ``current(studio)`` returns the newest ``ChartSnapshot``: it reads the
    run again only when ``period`` seconds passed since the last read (or the run changed, or it ended since), and
    rebuilds the figures only when that read brought events. ``builds`` counts the figure builds."""

    def __init__(self, period: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period, self.clock = period, clock
        self.builds = 0
        self._lock = threading.Lock()
        self._job: Any = None
        self._snap: ChartSnapshot | None = None
        self._series = charts.RunSeries()
        self._cursor = 0
        self._read_at = float("-inf")
        self._ended_read = False
        self._method, self._reference = "sft", None

    def current(self, studio: Any) -> ChartSnapshot:
        """The snapshot of ``studio.job`` (a new job replays its events from the start)."""
        job = getattr(studio, "job", None)
        with self._lock:  # one reader builds; the browsers polling meanwhile wait for its snapshot
            if self._snap is None or job is not self._job:
                self._restart(job)
                return self._read(job)
            if job is None or self._ended_read:
                return self._snap
            if self.clock() - self._read_at >= self.period or not job.alive:
                return self._read(job)
            return self._snap

    def _restart(self, job: Any) -> None:
        self._job, self._snap, self._series, self._cursor = job, None, charts.RunSeries(), 0
        self._ended_read, self._read_at = False, float("-inf")
        cfg = getattr(job, "cfg", None)
        self._method = method_of(cfg)
        self._reference = pref_charts.start_reference(self._method, getattr(getattr(cfg, "train", None),
                                                                            "loss_type", None))

    def _read(self, job: Any) -> ChartSnapshot:
        new = False
        if job is not None:
            ended = not job.alive  # read before the events: a read after the end has every event
            events, self._cursor = job.events.since(self._cursor)
            new = bool(self._series.add(events))
            self._read_at, self._ended_read = self.clock(), ended
        old = self._snap
        series = frozen_series(self._series) if new or old is None else old.series
        state, text, frac = status_line(SimpleNamespace(job=job), SimpleNamespace(series=series))
        eta = f" · ETA {format_seconds(series.eta_s)}" if state in ("running", "stopping") and \
            series.eta_s is not None else ""
        common = dict(key=job_key(job), cursor=self._cursor, series=series, method=self._method,
                      reference=self._reference, state=state, status=text, progress=progress_html(frac, state, eta))
        if old is not None and not new:
            self._snap = dataclasses.replace(old, **common)
        else:
            self._snap = ChartSnapshot(version=(old.version + 1) if old is not None else 0, **common,
                                       **self._charts(series))
        return self._snap

    def _charts(self, series: charts.RunSeries) -> dict:
        self.builds += 1
        pref = pref_charts.preference_figure(series, self._method) if self._method not in ("sft", "grpo") else None
        return dict(loss=plot_data(charts.loss_figure(series, (), self._reference)),
                    metrics=plot_data(charts.metrics_figure(series)), pref=plot_data(pref) if pref else None,
                    log_tail="\n".join(series.lines[-TAIL_LINES:]))
