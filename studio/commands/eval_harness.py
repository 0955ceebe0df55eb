"""`studio eval --harness`: the run's held-out rows and the general-skills set through lm-evaluation-harness, base
vs tuned (see :mod:`studio.harness`)."""
from __future__ import annotations

import argparse
import json
import sys


def run_harness_command(args: argparse.Namespace) -> int:
    from studio.harness import run_harness

    def progress(fraction: float, label: str) -> None:
        print(f"[{fraction:4.0%}] {label}", file=sys.stderr, flush=True)

    report = run_harness(args.run, rows=args.rows, device=args.device, batch_size=args.batch_size,
                         progress=progress)
    if args.json:
        json.dump(report.to_dict(), sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"lm-evaluation-harness on {args.run} (task files in {args.run}/harness/)")
    for name, base, tuned in report.table():
        fmt = (lambda v: "n/a" if v is None else f"{v:.4g}")
        print(f"  {name:<40} base {fmt(base):>10}  tuned {fmt(tuned):>10}")
    return 0
