"""`studio` command line: one subcommand per job, all reading the same RunConfig.

Each subcommand lives in ``studio/commands/<name>.py`` with ``add_arguments(parser)`` and ``run(args) -> int``;
they are imported only when called so ``studio --help`` stays instant. A ``StudioError`` becomes one line on
stderr and exit code 2; any other exception is logged in full to ``~/.cache/fine-tune-studio/cli-errors.log``
and summarised in one line.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "app": "Serve the Fine-Tune Studio app in the browser.",
    "preview": "Show the detected format, rendered rows with trained spans, and token statistics.",
    "train": "Fine-tune a LoRA/QLoRA adapter from a config file.",
    "chat": "Ask a trained run (and its base model) a prompt.",
    "eval": "Score a run's base and tuned model on its held-out split.",
    "export": "Write a run's adapter, merged model or checked GGUF (with an Ollama Modelfile) into a folder.",
    "push": "Publish a run's adapter, merged model or GGUF to the Hugging Face Hub, or export it.",
    "serve": "Serve runs' adapters and their base model over an OpenAI-compatible HTTP API.",
    "bench": "Benchmarks printed as ratios against a baseline run in the same call.",
    "launch-script": "Write a Slurm sbatch file or a SkyPilot task that trains a config over N nodes.",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Fine-Tune Studio: LoRA/QLoRA fine-tuning.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(_module=f"studio.commands.{name.replace('-', '_')}")
        p.set_defaults(_needs_args=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help()
        return 0
    module = importlib.import_module(f"studio.commands.{argv[0].replace('-', '_')}")
    sub = argparse.ArgumentParser(prog=f"studio {argv[0]}", description=COMMANDS[argv[0]])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    from studio.errors import StudioError

    if getattr(module, "QUIET", True):
        quiet_libraries()

    try:
        return int(module.run(args) or 0)
    except StudioError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        from studio.diskspace import is_disk_full, storage_error

        if not (is_disk_full(err) or isinstance(err, (PermissionError, NotADirectoryError, IsADirectoryError,
                                                      FileExistsError))):
            return _unexpected(err)
        typed = storage_error(err, err.filename or ".", "file")
        print(f"error: {typed}", file=sys.stderr)
        return typed.exit_code
    except Exception as err:  # noqa: BLE001
        return _unexpected(err)


def quiet_libraries() -> None:
    """Library progress bars and log records would interleave with (or stand in for) our one-line messages."""
    import logging
    import warnings

    from studio.imports import silence_unactionable

    silence_unactionable()
    for name in ("datasets", "transformers", "huggingface_hub", "peft", "accelerate"):
        # datasets logs the same failure we explain (a bad parquet file) at error level: ours is the one line
        logging.getLogger(name).setLevel(logging.CRITICAL if name == "datasets" else logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
    try:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        datasets.utils.logging.set_verbosity(logging.CRITICAL)
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def _unexpected(err: BaseException) -> int:
    """Last resort: one line for the user, the full traceback to a log."""
    try:
        path = _log_traceback()
    except OSError:
        path = "no log: the cache folder is not writable"
    print(f"error: {type(err).__name__}: {err} (details in {path})", file=sys.stderr)
    return 1


def _log_traceback() -> str:
    import traceback
    from pathlib import Path

    from studio.paths import cache_root

    path = Path(cache_root()) / "cli-errors.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(traceback.format_exc() + "\n")
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
