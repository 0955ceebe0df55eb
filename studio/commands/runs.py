"""`studio runs`: the runs folder from the terminal: list, compare side by side, delete, rename (never a live run).

    studio runs list [--json]
    studio runs compare runs/a runs/b [runs/c ...] [--json]   # names in --runs-dir work too
    studio runs rename runs/a better-name
    studio runs delete runs/a --yes
"""
from __future__ import annotations

import argparse
import json
import sys

from studio.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "compare", "delete", "rename"), help="What to do.")
    parser.add_argument("names", nargs="*", metavar="RUN", help="Run folders (or names in --runs-dir); rename: the "
                                                                 "run, then its new name.")
    parser.add_argument("--runs-dir", default=None, help="The runs folder (default: $STUDIO_RUNS_DIR or ./runs).")
    parser.add_argument("--json", action="store_true", help="Print JSON.")
    parser.add_argument("--yes", action="store_true", help="delete: do not ask.")


def run(args: argparse.Namespace) -> int:
    from studio import run_compare
    from studio.paths import default_runs_dir

    runs_dir = args.runs_dir or default_runs_dir()
    if args.action == "list":
        return _list(runs_dir, args.json)
    if args.action == "compare":
        if not args.names:
            raise ConfigError("name the runs to compare: studio runs compare RUN [RUN ...]")
        table = run_compare.compare_runs(args.names, runs_dir)
        if args.json:
            json.dump(table.to_dict(), sys.stdout, ensure_ascii=False, default=str)
            print()
        else:
            _print_table(table.headers(), table.rows())
        return 0
    if args.action == "rename":
        if len(args.names) != 2:
            raise ConfigError("rename takes the run and its new name: studio runs rename RUN NEW_NAME")
        print(f"renamed to {run_compare.rename_run(args.names[0], args.names[1], runs_dir)}")
        return 0
    if len(args.names) != 1:
        raise ConfigError("delete takes one run: studio runs delete RUN --yes")
    path = run_compare.resolve_run(args.names[0], runs_dir)
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"add --yes to delete {path} (its adapter and checkpoints go too)")
        if input(f"delete {path} with its adapter and checkpoints? [y/N] ").strip().lower() not in ("y", "yes"):
            print("kept")
            return 0
    print(f"deleted {run_compare.delete_run(path)}")
    return 0


def _list(runs_dir, as_json: bool) -> int:
    from studio.runs import list_runs

    views = list_runs(runs_dir)
    if as_json:
        json.dump([{"name": v.name, "path": str(v.path), "status": v.status, "step": v.step} for v in views],
                  sys.stdout)
        print()
        return 0
    if not views:
        print(f"no runs in {runs_dir}")
    for v in views:
        print(f"{v.name}\t{v.status}\tstep {v.step}")
    return 0


def _print_table(headers: list[str], rows: list[list]) -> None:
    cells = [headers, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
