"""The run's time before Start (issue 23.10): from a step measured on this machine by an earlier run in the runs
folder when there is one (scaled by rows per step), otherwise from FLOPs and the device's peak; it says which."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from studio.events import EventLog, Log, Started
from studio.runs import CONFIG, ENVIRONMENT, EVENTS
from studio.speed import run_time
from studio.speed.run_time import estimate_run_time


def _earlier_run(runs: Path, cfg, rates: list[float], *, name: str = "earlier", machine: dict | None = None,
                 mfu: float | None = None) -> Path:
    """A run folder as training leaves it: config, environment of this machine, Started and Log events."""
    run = runs / name
    run.mkdir(parents=True)
    cfg.save(run / CONFIG)
    here = machine or run_time.this_machine("cpu")
    (run / ENVIRONMENT).write_text(json.dumps({"platform": here["platform"], "cpu_count": here["cpu_count"],
                                               "gpu": None, "device": "cpu"}), encoding="utf-8")
    log = EventLog(run / EVENTS)
    log.append(Started(run_dir=str(run), model=cfg.model.name_or_path, total_steps=len(rates), device="cpu"))
    for i, rate in enumerate(rates, 1):
        log.append(Log(step=i, loss=1.0, steps_per_s=rate, mfu=mfu))
    return run


def test_without_an_earlier_run_the_time_comes_from_flops_and_says_so(tiny_cfg, tmp_path):
    cfg = tiny_cfg(device="cpu")
    found = estimate_run_time(cfg, tmp_path / "runs")
    assert found.source == "flops" and found.steps == cfg.train.max_steps
    assert found.total_s == found.seconds_per_step * cfg.train.max_steps > 0
    text = found.summary()
    assert text.startswith("Time: at most ~") and "From FLOPs" in text and "assumed" in text


def test_a_step_measured_here_is_used_and_named(tiny_cfg, tmp_path):
    cfg = tiny_cfg(device="cpu")
    rates = [0.2, 2.0, 1.0, 4.0]  # the first step warms up: left out
    _earlier_run(tmp_path / "runs", cfg, rates)
    found = estimate_run_time(cfg, tmp_path / "runs")
    assert found.source == "measured"
    assert found.seconds_per_step == statistics.median(1 / r for r in rates[1:])
    assert "Measured on this machine by run `earlier`" in found.summary() and "at most" not in found.summary()


def test_a_measured_step_is_scaled_by_rows_per_step(tiny_cfg, tmp_path):
    cfg = tiny_cfg(device="cpu", batch_size=2)
    _earlier_run(tmp_path / "runs", cfg, [1.0, 1.0, 1.0])
    bigger = tiny_cfg(device="cpu", batch_size=4, grad_accum=2)
    found = estimate_run_time(bigger, tmp_path / "runs")
    assert found.source == "measured" and found.seconds_per_step == 4.0 and "scaled ×4" in found.how


def test_a_run_on_another_machine_or_model_measures_nothing_here(tiny_cfg, tmp_path):
    cfg = tiny_cfg(device="cpu")
    other = {**run_time.this_machine("cpu"), "cpu_count": 999}
    _earlier_run(tmp_path / "runs", cfg, [1.0, 1.0, 1.0], name="elsewhere", machine=other)
    longer = tiny_cfg(device="cpu")
    longer.train.max_length = cfg.train.max_length * 2
    _earlier_run(tmp_path / "runs", longer, [1.0, 1.0, 1.0], name="longer-rows")
    assert estimate_run_time(cfg, tmp_path / "runs").source == "flops"


def test_the_flops_estimate_uses_an_mfu_measured_here(tiny_cfg, tmp_path):
    cfg = tiny_cfg(device="cpu")
    assumed = estimate_run_time(cfg, tmp_path / "runs")
    other_model = tiny_cfg(device="cpu")
    other_model.train.max_length = cfg.train.max_length * 2  # not comparable step by step, but its MFU is
    mfu = run_time.ASSUMED_MFU["cpu"] / 2
    _earlier_run(tmp_path / "runs", other_model, [1.0, 1.0, 1.0], mfu=mfu)
    found = estimate_run_time(cfg, tmp_path / "runs")
    assert found.source == "flops" and "measured by run `earlier`" in found.how
    assert abs(found.seconds_per_step / assumed.seconds_per_step - 2) < 1e-9


def test_without_max_steps_the_time_is_per_step(tiny_cfg, tmp_path):
    cfg = tiny_cfg(device="cpu", max_steps=-1, epochs=1)
    found = estimate_run_time(cfg, tmp_path / "runs")
    assert found.steps is None and found.total_s is None and "follows the data" in found.summary()
