"""`studio preview`: detected format, mapping, rendered rows with trained spans, and statistics."""
from __future__ import annotations

import argparse
import json
import sys

from studio.config import load_config
from studio.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="Run config YAML (see assets/configs/).")
    parser.add_argument("--rows", type=int, default=3, help="How many rendered rows to show.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="Override a config value, e.g. --set train.max_length=256 (repeatable).")
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")


def run(args: argparse.Namespace) -> int:
    from studio.data import preview, trained_text
    from studio.modeling.tokenizer import load_tokenizer

    if args.rows < 0:
        raise ConfigError(f"--rows must be >= 0, got {args.rows}")
    cfg = load_config(args.config).with_overrides(args.overrides)
    tokenizer, _ = load_tokenizer(cfg.model)
    result = preview(cfg, tokenizer, n_rows=args.rows)
    rows = [{"text": r.text, "trained_text": trained_text(tokenizer, r), "tokens": len(r.input_ids),
             "trained_tokens": r.trained_tokens, "truncated": r.truncated} for r in result.rows]
    if args.json:
        out = {"format": result.format, "mapping": result.mapping, "columns": result.columns, "rows": rows,
               "stats": result.stats.to_dict(), "warnings": result.warnings}
        json.dump(out, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    print(f"format: {result.format}   mapping: " + ", ".join(f"{k} <- {v}" for k, v in result.mapping.items()))
    for i, (r, row) in enumerate(zip(result.rows, rows), start=1):
        print(f"\n--- row {i}: {row['tokens']} tokens, {row['trained_tokens']} trained"
              f"{' (truncated)' if r.truncated else ''} ---")
        print("".join(f"[[{t}]]" if trained else t for t, trained in r.segments))
    s = result.stats
    print(f"\nrows {s.n_rows} | tokens p50 {s.p50_tokens} p95 {s.p95_tokens} max {s.max_tokens} | truncated "
          f"{s.truncated_fraction:.1%} | trained tokens {s.trained_token_fraction:.1%} | zero-trained rows "
          f"{s.zero_trained_rows} | duplicates {s.duplicate_rows}")
    print("([[...]] marks the tokens that carry loss)")
    for w in result.warnings:
        print(f"warning: {w}")
    return 0
