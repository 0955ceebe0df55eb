"""``studio export``: write a run's adapter, merged model or checked GGUF (with an Ollama Modelfile) into a folder.

No network. A GGUF export runs the parity check; a failed check exits with code 1 (the files stay, flagged).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from studio.config import TrainConfig, choices_of

EPILOG = """\
examples:
  studio export --run runs/my-run                                # the adapter, into runs/my-run/export/adapter
  studio export --run runs/my-run --format merged --out exports/my-model
  studio export --run runs/my-run --format gguf --outtype q8_0   # GGUF + Modelfile + README, checked
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="The run directory (runs/<name>).")
    parser.add_argument("--format", default="adapter", choices=("adapter", "merged", "gguf"),
                        help="adapter (small, loads on the base), merged (16-bit standalone) or gguf (llama.cpp and "
                             "Ollama, checked against the merged model).")
    parser.add_argument("--outtype", default="q8_0", choices=("f16", "bf16", "q8_0"),
                        help="GGUF tensor type (with --format gguf).")
    parser.add_argument("--out", metavar="DIR", type=Path,
                        help="Export folder (default: RUN/export/<adapter|merged|gguf>).")
    parser.add_argument("--repo", metavar="NAME", help="The Hub repo the card should name (title, usage lines, the "
                        "GGUF file's name). Default: the run's hub.repo_id, else a name from its model and data.")
    parser.add_argument("--keep-merged", action="store_true",
                        help="With --format gguf: keep the intermediate merged model (RUN/export/merged) instead of "
                             "removing it once the GGUF is written.")
    parser.add_argument("--device", default="auto", choices=choices_of(TrainConfig, "device"), help="Where to merge.")


def progress_lines() -> Any:
    """A ``progress(fraction, message)`` printing ``[ 40%] merge: ... · elapsed 00:12`` lines on stderr."""
    from studio.commands.phases import PhaseLines

    clock = PhaseLines()

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction * 100:3.0f}%] {message} · elapsed {clock.elapsed()}", file=sys.stderr, flush=True)
    return progress


def _report_gguf(result: object) -> int:
    """Print a GGUF export's stages and check; exit 1 when the check failed."""
    for stage in result.stages:
        print(f"stage {stage.describe()}", file=sys.stderr)
    for line in result.check.lines():
        print(f"  {line}", file=sys.stderr)
    print(result.check.summary(), file=sys.stderr)
    for name in result.files:
        print(f"  wrote {result.path / name}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(result.path)
    return 0 if result.passed else 1


def run(args: argparse.Namespace) -> int:
    from studio.hub import default_export_dir, export, load_facts

    if args.format != "adapter":  # merging loads the base: an offline Hub is one sentence now
        from studio.commands.base_reach import check_run_base

        check_run_base(args.run)
    repo = args.repo or load_facts(args.run).config.hub.repo_id  # as the Publish tab and studio push name it
    if args.format == "gguf":
        from studio.hub.gguf_export import export_gguf

        return _report_gguf(export_gguf(args.run, args.out, args.outtype, repo_id=repo, device=args.device,
                                        progress=progress_lines(), keep_merged=args.keep_merged))
    merged = args.format == "merged"
    out = args.out or default_export_dir(args.run, merged)
    result = export(args.run, out, merged=merged, repo_id=repo, device=args.device, progress=progress_lines())
    return print_export(result)


def print_export(result: Any) -> int:
    """An adapter/merged export's notes and probe check on stderr, its folder on stdout (exit code 0)."""
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.probe is not None:
        print(f"probe check: {result.probe.describe()}", file=sys.stderr)
    print(result.path)
    return 0
