"""`studio train`: fine-tune from a config file, with a progress line; runs unchanged under torchrun.

    studio train --config assets/configs/linear_equations.yaml --set train.max_steps=50
    studio train --resume runs/20261128-101500-demo-tiny --set train.max_steps=100
    torchrun --nproc_per_node 2 -m studio.cli train --config run.yaml     # only rank 0 writes and prints

Ctrl-C, SIGTERM and SIGHUP stop gracefully after the current step (adapter and checkpoint saved, the run marked
stopped, exit code 128 + the signal number); a second one aborts.
"""
from __future__ import annotations

import argparse
import sys

from studio.errors import ConfigError, TrainingError
from studio.imports import quiet_libraries as _quiet_libraries


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="Run config YAML (a run's config.yaml repeats that run).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="Override a config value, e.g. --set train.max_steps=100 (repeatable).")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="Continue RUN_DIR from its last checkpoint (its config.yaml unless --config is given).")
    parser.add_argument("--runs-dir", help="Where run directories go (default: train.output_dir of the config).")
    parser.add_argument("--run-dir", help="Train a fresh run in this run folder, already made with its config.yaml "
                        "(how the app starts a run in its own process).")
    parser.add_argument("--quiet", action="store_true", help="No progress output; print only the run directory.")


def run(args: argparse.Namespace) -> int:
    from studio.config import load_config
    from studio.events import Failed, Stopped
    from studio.runs import is_main_process, load_run
    from studio.signals import GracefulStop
    from studio.training import TrainingJob, default_callbacks

    if not args.config and not args.resume:
        raise ConfigError("give --config FILE (or --resume RUN_DIR)")
    config_path = args.config or str(load_run(args.resume).config_path)  # not a run folder: TrainingError
    cfg = load_config(config_path).with_overrides(args.overrides)
    from studio.modeling.sources import check_reachable

    check_reachable(cfg.model.name_or_path, cfg.model.revision)  # offline Hub: one line at once, no run folder
    _quiet_libraries()
    job = TrainingJob(cfg, args.runs_dir, resume=args.resume, extra_callbacks=default_callbacks(cfg),
                      run_dir=args.run_dir)
    main = is_main_process()
    show = main and not args.quiet
    tty = sys.stderr.isatty()
    if show:
        print(f"run directory: {job.run_dir}", file=sys.stderr)
    with GracefulStop(lambda signum: job.stop()) as stop:
        job.start()
        _follow(job, show, sys.stderr.isatty(), stop)
    if show and tty:
        print(file=sys.stderr)
    result = job.result
    if isinstance(result, Failed):
        hint = f" {result.suggestion}" if result.suggestion else ""
        raise TrainingError(f"{result.message}.{hint} Run kept: {job.run_dir}")
    if show and isinstance(result, Stopped):
        print(f"stopped at step {result.step}; resume with: studio train --resume {job.run_dir}", file=sys.stderr)
    if main:
        print(job.run_dir)
    return stop.exit_code


def _follow(job, show: bool, tty: bool, stop) -> None:
    """Print the job's events until it ends; a stop signal is announced once."""
    from studio.events import Eval, Log, Note, Started
    from studio.signals import signal_name

    cursor, announced = job.first_event, False  # a resumed run's earlier events were printed by its first run
    while True:
        if stop.received and not announced:
            announced = True
            if show:
                print(f"\n{signal_name(stop.received)}: stopping after the current step (the adapter and a "
                      f"checkpoint are saved; send it again to abort)...", file=sys.stderr)
        job.events.wait(cursor, timeout=0.5)
        events, cursor = job.events.since(cursor)
        for ev in events if show else ():
            if isinstance(ev, Started):
                loaded = ev.loaded
                print(f"training {ev.model} on {ev.device} (world size {ev.world_size}): "
                      f"{loaded.get('trainable_params', 0):,} trainable of {loaded.get('total_params', 0):,} "
                      f"parameters, {loaded.get('quantization')}, {loaded.get('attn_implementation')}; "
                      f"steps {ev.start_step}->{ev.total_steps}", file=sys.stderr)
            elif isinstance(ev, Log):
                line = _progress(ev)
                print(("\r" + line.ljust(100)) if tty else line, end="" if tty else "\n", file=sys.stderr,
                      flush=True)
            elif isinstance(ev, Note):
                print(("\n" if tty else "") + ev.message, file=sys.stderr)
                for sample in ev.data.get("samples", []) if ev.data.get("kind") == "reward_gaming" else ():
                    print("  | " + sample.replace("\n", "\n  | "), file=sys.stderr)
            elif isinstance(ev, Eval) and ev.eval_loss is not None:
                print(("\n" if tty else "") + f"eval loss {ev.eval_loss:.4f} at step {ev.step}", file=sys.stderr)
        if not job.alive and cursor >= len(job.events):
            return


def _progress(ev) -> str:
    """``[####................] 2/10 | loss 1.2345 | lr 2.00e-04 | 1,234 tok/s | ETA 00:07`` for a Log event."""
    from studio.formatting import progress_parts

    from studio.training.methods.signals import progress_signal

    extra = [f"lr {ev.learning_rate:.2e}"] if ev.learning_rate is not None else []
    extra += progress_signal(getattr(ev, "metrics", None) or {})
    extra += [f"{ev.tokens_per_s:,.0f} tok/s"] if ev.tokens_per_s is not None else []
    from studio.training.methods.grpo import reward_progress

    extra += reward_progress(getattr(ev, "metrics", None) or {})
    return " | ".join(progress_parts(ev.step, ev.total_steps, loss=ev.loss, eta_s=ev.eta_s, extra=extra, bar=True))
