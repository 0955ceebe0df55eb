"""The state of one run, shared by ``TrainingJob`` and its trainer callback: created complete when the job is made.

Two threads touch it: the training thread (the job's run and the callback) and whichever thread calls
``TrainingJob.stop()`` or ``status()`` (the UI, a signal handler). The phase and the progress figures are only
changed through the methods below, which hold ``lock``; ``status()`` reads them under the same lock. The run's
facts (rows, estimate, reasons...) are written by the training thread alone, before ``trainer.train()``.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.events import Note, Started

LOG = logging.getLogger("studio.training")

_FIRST_RSS: list[int] = []
"""The process's RSS when its first run began (a process fact, written once)."""


def first_run_rss(rss_now: int) -> int:
    """The RSS at the start of this process's first run (``rss_now`` when this is the first)."""
    if not _FIRST_RSS:
        _FIRST_RSS.append(rss_now)
    return _FIRST_RSS[0]


def _token_window() -> Any:
    from studio.speed.flops import TokenWindow

    return TokenWindow()


@dataclass(frozen=True)
class JobStatus:
    """A snapshot for the UI's status line and progress bar."""

    state: str
    """preparing, running, stopping, finished, stopped or failed."""
    run_dir: str
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    eta_s: float | None = None
    elapsed_s: float = 0.0
    message: str = ""

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def alive(self) -> bool:
        return self.state in ("preparing", "running", "stopping")


@dataclass
class RunState:
    """Everything the job and its callback share about one run (see the module docstring for who writes what)."""

    run_dir: Path
    model_name: str
    main: bool = True
    """Only the main process (rank 0) writes files."""
    resumed: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    """When the run finished, stopped or failed: its elapsed time stops there."""
    window: Any = field(default_factory=_token_window)
    """The :class:`~studio.speed.flops.TokenWindow`: token sums of the micro-batches since the last log step (the
    trainer adds, the callback takes)."""
    # ---- phase and progress: written under ``lock`` only
    phase: str = "preparing"
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    eta_s: float | None = None
    message: str = ""
    phase_at: float | None = None
    """When the current after-training phase (the final evaluation) began: its ``eta_s`` counts down from there."""
    # ---- the run's facts, set by the training thread before training
    device: str = "cpu"
    rss_start: int = 0
    peak_start: int = 0
    """The process's peak memory before this run (CPU: ``ru_maxrss``): above ``rss_start`` when the process held
    more before (an earlier run, a dequantization), so its RSS growth undercounts the run."""
    first_rss: int = 0
    """The process's RSS when its first run began: below ``rss_start`` when an earlier run's memory is still held."""
    train_rows: int = 0
    eval_rows: int = 0
    final_eval_steps: Any = None
    """``f(max_steps) -> float``: the end-of-run evaluation's cost in training steps (0 without one), or None."""
    final_eval_s: float | None = None
    """The end-of-run evaluation's estimated seconds (the callback's figure at the last log; counted in the ETA)."""
    gradient_checkpointing: bool = False
    gc_reason: str = ""
    attention_reason: str = ""
    quant_reason: str = ""
    speed_lines: list[str] = field(default_factory=list)
    loaded: dict[str, Any] = field(default_factory=dict)
    estimate: Any = None
    """The :class:`~studio.modeling.MemoryEstimate` for the planned micro-batch, or None."""
    trainable_params: int = 0
    model_config: Any = None
    peak: Any = None
    """The device's peak FLOP/s (:class:`~studio.speed.flops.Peak`) for MFU, or None when unknown."""
    # ---- written by the callback
    train_loss: float | None = None

    @property
    def tokens_at_begin(self) -> int | None:
        """Tokens trained before the first step: 0 for a fresh run, unknown (None) for a resumed one."""
        return None if self.resumed else 0

    # ---------------------------------------------------------------- phase (under the lock)
    def request_stop(self) -> None:
        """Ask the run to stop after the current step."""
        self.stop.set()
        with self.lock:
            if self.phase in ("preparing", "running"):
                self.phase = "stopping"

    def begin(self, step: int, total_steps: int) -> None:
        """The trainer's first step is about to run."""
        with self.lock:
            self.phase = "stopping" if self.stop.is_set() else "running"
            self.step, self.total_steps, self.loss, self.eta_s, self.message = step, total_steps, None, None, ""

    def progress(self, step: int, total_steps: int, loss: float | None, eta_s: float | None) -> None:
        with self.lock:
            self.step, self.total_steps, self.loss, self.eta_s, self.message = step, total_steps, loss, eta_s, ""
            self.phase_at = None

    def tell(self, message: str, eta_s: float | None = None) -> None:
        """What the run is doing outside its steps (preparing the data, loading the model, evaluating...), with the
        phase's estimated time when known."""
        with self.lock:
            self.message = message
            if eta_s is not None:
                self.eta_s, self.phase_at = eta_s, time.time()

    def end(self, phase: str, message: str | None = None) -> None:
        with self.lock:
            self.phase = phase
            self.ended_at = self.ended_at or time.time()
            if message is not None:
                self.message = message

    def status(self) -> JobStatus:
        with self.lock:
            eta = self.eta_s
            if eta is not None and self.phase_at is not None:
                eta = max(0.0, eta - (time.time() - self.phase_at))
            return JobStatus(state=self.phase, run_dir=str(self.run_dir), step=self.step,
                             total_steps=self.total_steps, loss=self.loss, eta_s=eta,
                             elapsed_s=round((self.ended_at or time.time()) - self.started_at, 1),
                             message=self.message)

    # ---------------------------------------------------------------- what the callback reports
    def started_event(self, start_step: int, total_steps: int, world_size: int) -> Started:
        return Started(run_dir=str(self.run_dir), model=self.model_name, total_steps=total_steps,
                       start_step=start_step, world_size=world_size, device=self.device, train_rows=self.train_rows,
                       eval_rows=self.eval_rows, gradient_checkpointing=self.gradient_checkpointing,
                       attention_reason=self.attention_reason,
                       speed=self.speed_lines + ([self.quant_reason] if self.quant_reason else []),
                       loaded=self.loaded, estimate=self.estimate.to_dict() if self.estimate else {})

    def speed(self, seconds: float) -> dict[str, float]:
        """Real tokens/s (this process), padding share and MFU of the micro-batches since the last log step."""
        from studio.speed.flops import Peak, SpeedMeter

        real, positions, sum_sq = self.window.take()
        if not positions or self.model_config is None:
            return {}
        try:
            meter = SpeedMeter(self.model_config, peak=self.peak or Peak(0.0, "unknown"),
                               lora_params=self.trainable_params)
            meter.add_sums(real, positions, sum_sq, seconds)
            snap = meter.snapshot()
        except Exception as exc:  # noqa: BLE001 - an unknown architecture has no FLOPs figure: no MFU
            LOG.debug("speed meter: %s", exc)
            share = round(1 - real / positions, 4)
            return {"tokens_per_s": round(real / seconds, 1) if seconds > 0 else 0.0, "padding_share": share}
        if self.peak is None or not self.peak.flops:
            snap.pop("mfu", None)
        return snap

    def estimate_note(self, measured_peak: int) -> Note | None:
        """The memory estimate against the measured peak (GPU) or RSS growth (CPU), or None without an estimate.

        On CPU the growth since the run began is the run's memory only in a process that held little before it;
        one that already held memory (an earlier run's, still resident or as an earlier peak: more than a quarter
        of the estimate above its RSS at the start of its first run, or above its RSS now) reuses it without
        growing, so the note gives the process's peak RSS (the memory chart's figure), says why, and gives no
        error figure."""
        if self.estimate is None:
            return None
        gb = 1024 ** 3
        est = self.estimate.total_gb * gb
        gc_on = self.gradient_checkpointing
        tail = f"; gradient checkpointing {'on' if gc_on else 'off'}"
        data = {"estimated_bytes": int(est), "peak_bytes": int(measured_peak), "device": self.device,
                "gradient_checkpointing": gc_on, "gradient_checkpointing_reason": self.gc_reason}
        held = max(self.rss_start - (self.first_rss or self.rss_start), self.peak_start - self.rss_start)
        if self.device != "cuda" and held > est / 4:
            msg = (f"memory: estimated {est / gb:.2f} GB; process RSS peak {measured_peak / gb:.2f} GB (not "
                   f"comparable: this process already held {self.rss_start / gb:.2f} GB when the run began, from "
                   f"an earlier load, so the run's own growth of {max(measured_peak - self.rss_start, 0) / gb:.2f} "
                   f"GB undercounts it){tail}")
            LOG.info(msg)
            return Note(message=msg, data={**data, "measured_bytes": int(measured_peak), "error": None,
                                           "measured": "process RSS peak (already loaded)"})
        measured = measured_peak if self.device == "cuda" else max(measured_peak - self.rss_start, 1)
        error = (est - measured) / measured
        where = "GPU peak allocated" if self.device == "cuda" else "process RSS growth"
        how = "" if self.device == "cuda" else \
            f": the RSS peak of {measured_peak / gb:.2f} GB in the memory chart less the {self.rss_start / gb:.2f} GB " \
            f"held before the run"
        msg = f"memory: estimated {est / gb:.2f} GB, measured {measured / gb:.2f} GB ({where}{how}); " \
              f"estimate error {error:+.0%}{tail}"
        LOG.info(msg)
        return Note(message=msg, data={**data, "measured_bytes": int(measured), "error": round(error, 4),
                                       "measured": where})


def as_float(x: Any) -> float | None:
    """``x`` as a float, or None (missing or not a number)."""
    try:
        return float(x) if x is not None else None
    except (TypeError, ValueError):
        return None
