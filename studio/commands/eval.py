"""`studio eval`: base vs tuned on a run's held-out rows: loss, perplexity, accuracy, "no clear answer" rate.

    studio eval --run runs/wp --rows 50
    studio eval --run runs/wp --json            # {"base": {...}, "tuned": {...}, "rows": N}
    studio eval --run runs/wp --answer-regex "answer is (-?[0-9.,]+)" --per-row rows.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys

from studio.config import TrainConfig, choices_of
from studio.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="A run directory (its adapter and config).")
    parser.add_argument("--rows", type=int, default=None, help="Use the first N held-out rows (default: all).")
    parser.add_argument("--json", action="store_true",
                        help='Print one JSON object {"base": {...}, "tuned": {...}, "rows": N}.')
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--answer-regex", metavar="PATTERN",
                       help="Extract answers with this regex (group 1 if any) instead of after '####'.")
    group.add_argument("--exact", action="store_true", help="Compare whole answers instead of extracting one.")
    parser.add_argument("--no-accuracy", action="store_true", help="Loss and perplexity only (no generation).")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="Answer length for accuracy (greedy; default: sized to the held-out answers).")
    parser.add_argument("--batch-size", type=int, default=8, help="Rows per batch.")
    parser.add_argument("--per-row", metavar="FILE", help="Also write per-row results (JSON lines) to FILE.")
    parser.add_argument("--harness", action="store_true",
                        help="Score base and tuned with lm-evaluation-harness on lm-eval task files written for the "
                             "held-out rows and the general-skills set (offline; needs lm-eval installed).")
    parser.add_argument("--device", default="auto", choices=choices_of(TrainConfig, "device"), help="Where to run.")


def run(args: argparse.Namespace) -> int:
    from studio.imports import quiet_libraries
    from studio.evaluate import AnswerExtractor, evaluate_run

    if (args.max_new_tokens is not None and args.max_new_tokens < 1) or args.batch_size < 1:
        raise ConfigError("--max-new-tokens and --batch-size must be >= 1")
    extractor = AnswerExtractor("regex", args.answer_regex) if args.answer_regex else \
        AnswerExtractor("exact") if args.exact else AnswerExtractor()
    from studio.commands.base_reach import check_run_base

    check_run_base(args.run)  # an offline Hub: one sentence now, not the libraries' retries
    quiet_libraries()
    if args.harness:
        from studio.commands.eval_harness import run_harness_command

        return run_harness_command(args)
    from studio.commands.phases import PhaseLines

    progress = PhaseLines()  # phase, rows done/total and elapsed time on stderr (stdout keeps the table or JSON)
    if _is_preference(args.run):
        return _pairs(args, progress)

    report = evaluate_run(args.run, rows=args.rows, extractor=extractor, max_new_tokens=args.max_new_tokens,
                          batch_size=args.batch_size, device=args.device, accuracy=not args.no_accuracy,
                          progress=progress)
    progress.end_line()
    if args.per_row:
        from dataclasses import asdict

        with open(args.per_row, "w", encoding="utf-8") as fh:
            for r in report.per_row:
                fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    if args.json:
        json.dump(report.summary(), sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"{report.rows} held-out rows of {args.run} (answers: {extractor.mode})")
    width = max(len(r[0]) for r in report.table())
    print(f"{'':{width}}  {'base':>12}  {'tuned':>12}")
    for name, base, tuned in report.table():
        print(f"{name:{width}}  {base:>12}  {tuned:>12}")
    if report.base.scored == 0 and not args.no_accuracy:
        print("no held-out row has an extractable reference answer: accuracy is n/a")
    return 0


def _is_preference(run_dir: str) -> bool:
    from pathlib import Path

    from studio import runs
    from studio.config import load_config
    from studio.evaluate_pairs import is_preference_run

    config = Path(run_dir) / runs.CONFIG
    return config.is_file() and is_preference_run(load_config(config))


def _pairs(args: argparse.Namespace, progress) -> int:
    """A preference run: base vs tuned preference accuracy, margins and reward accuracy on the held-out pairs."""
    from studio.evaluate_pairs import evaluate_pairs

    report = evaluate_pairs(args.run, rows=args.rows, batch_size=args.batch_size, device=args.device,
                            progress=progress)
    progress.end_line()
    if args.per_row:
        from dataclasses import asdict

        with open(args.per_row, "w", encoding="utf-8") as fh:
            for r in report.per_row:
                fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    if args.json:
        json.dump(report.summary(), sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"{report.rows} held-out pairs of {args.run} ({report.method}, n={report.rows})")
    table = report.table()
    width = max(len(r[0]) for r in table)
    print(f"{'':{width}}  {'base':>12}  {'tuned':>12}")
    for name, base, tuned in table:
        print(f"{name:{width}}  {base:>12}  {tuned:>12}")
    return 0
