"""`studio forgetting`: score the base model, each checkpoint and the final adapter on a general-skills set (and your
own "must not break" prompts) beside the run's task, and optionally keep the best checkpoint that did not forget.

    studio forgetting --run runs/wp [--must-not-break prompts.txt] [--task-rows 8] [--json]
    studio forgetting --run runs/wp --keep --max-drop 5     # adapter/ := best task score, general drop <= 5 points

A must-not-break file has one ``prompt => expected text`` per line (the reply must contain the text).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio.config import TrainConfig, choices_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="A run directory with checkpoints.")
    parser.add_argument("--must-not-break", metavar="FILE", help="Your own prompts: 'prompt => expected' per line.")
    parser.add_argument("--task-rows", type=int, default=8, help="Held-out rows for the task score (default 8).")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="Answer length on the general set.")
    parser.add_argument("--keep", action="store_true",
                        help="Make the chosen checkpoint's adapter the run's adapter/ (the old one is kept).")
    parser.add_argument("--max-drop", type=float, default=5.0,
                        help="With --keep: the most the general score may fall, in points (default 5).")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    parser.add_argument("--device", default="auto", choices=choices_of(TrainConfig, "device"), help="Where to run.")


def run(args: argparse.Namespace) -> int:
    from studio.errors import ConfigError
    from studio.forgetting import check_run, keep_checkpoint, parse_must_not_break

    if args.task_rows < 1 or args.max_new_tokens < 1:
        raise ConfigError("--task-rows and --max-new-tokens must be >= 1")
    extra = []
    if args.must_not_break:
        path = Path(args.must_not_break)
        if not path.is_file():
            raise ConfigError(f"--must-not-break file not found: {path}")
        extra = parse_must_not_break(path.read_text(encoding="utf-8"))

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    report = check_run(args.run, extra=extra, task_rows=args.task_rows, max_new_tokens=args.max_new_tokens,
                       device=args.device, progress=progress)
    report.save(args.run)
    kept = None
    if args.keep:
        chosen = report.choose(args.max_drop)
        if chosen is None:
            raise ConfigError(f"no checkpoint kept its general score within {args.max_drop} points of the base; "
                              f"raise --max-drop or keep the final adapter")
        if chosen.step is not None:
            reason = (f"best task {report.task_metric} with a general-score drop of {report.drop(chosen):+.1f} points "
                      f"(at most {args.max_drop})")
            keep_checkpoint(args.run, chosen, reason)
        kept = chosen.name
    if args.json:
        json.dump({**report.to_dict(), "kept": kept}, sys.stdout, ensure_ascii=False)
        print()
        return 0
    print(f"{'model':<20} {'step':>5}  {'general':<16} {'drop':>6}  task {report.task_metric}")
    for name, step, general, drop, task in report.rows():
        print(f"{name:<20} {step!s:>5}  {general:<16} {drop:>6}  {task}")
    if kept:
        print(f"kept: {kept}")
    return 0
