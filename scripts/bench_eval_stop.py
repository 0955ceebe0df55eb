"""Held-out evaluation with answers stopped at their ``#### n`` line against full-length answers, on one run.

    python scripts/bench_eval_stop.py runs/my-run --rows 20

Loads the run once, evaluates the first N held-out rows both ways (full length first), prints the ratio of the
times and whether the answers agree (each early answer must equal the full one cut at its end).
"""
from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="A run directory (its config and adapter).")
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from studio.evaluate import answer_end, evaluate_run
    from studio.inference import ChatEngine

    engine = ChatEngine.from_run(args.run, device=args.device)
    seconds, reports = {}, {}
    for stop in (False, True):
        t = time.perf_counter()
        reports[stop] = evaluate_run(args.run, rows=args.rows, engine=engine, max_new_tokens=args.max_new_tokens,
                                     device=args.device, stop_at_answer=stop)
        seconds[stop] = time.perf_counter() - t
    same = True
    for full, early in zip(reports[False].per_row, reports[True].per_row):
        for side in ("base", "tuned"):
            text = getattr(full, f"{side}_output") or ""
            end = answer_end(text)
            same &= getattr(early, f"{side}_output") == (text[:end] if end is not None else text)
            same &= getattr(early, f"{side}_answer") == getattr(full, f"{side}_answer")
    print(f"rows {args.rows}: stopped at the answer / full length = {seconds[True] / seconds[False]:.2f} of the time "
          f"({seconds[False] / seconds[True]:.1f}x faster); answers identical: {same}")


if __name__ == "__main__":
    main()
