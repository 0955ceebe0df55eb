"""``studio push``: publish a run's adapter, merged model or checked GGUF to the Hugging Face Hub, or export it to a
folder.

The token comes from HF_TOKEN or the stored ``hf auth login``; there is deliberately no ``--token`` flag, because a
token typed on the command line lands in the shell history.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from studio.config import ModelConfig, TrainConfig, choices_of

EPILOG = """\
token: set HF_TOKEN (e.g. `read -s HF_TOKEN && export HF_TOKEN`) or run `hf auth login` once; there is no
--token flag because a token typed on the command line ends up in your shell history.
HF_ENDPOINT points the push at a private Hub mirror.

examples:
  studio push --run runs/my-run                                 # the run's default repo (as the Publish tab names it)
  studio push --run runs/my-run --repo my-adapter               # private adapter repo under your account
  studio push --run runs/my-run --repo my-org/my-model --merged --public
  studio push --run runs/my-run --export-only exports/my-run    # no network needed
  studio push --run runs/my-run --repo my-model-gguf --format gguf --outtype q8_0
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="The run directory (runs/<name>).")
    parser.add_argument("--repo", metavar="NAME",
                        help="Hub repo: 'name' (under your account) or 'owner/name'. Default: the run's hub.repo_id, "
                             "else the name the Publish tab offers (model-data-method) under your account.")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--merged", action="store_true", default=None,
                      help="Publish the adapter merged into a 16-bit copy of the base (a 4-bit base is reloaded in "
                           "16-bit first). Default: the run's hub.push setting, else the adapter only.")
    kind.add_argument("--adapter", dest="merged", action="store_false", help="Publish the adapter only.")
    parser.add_argument("--format", choices=("adapter", "merged", "gguf"),
                        help="What to publish (overrides --merged/--adapter): gguf is a llama.cpp/Ollama file with a "
                             "Modelfile, pushed only when it passes its parity check against the merged model.")
    parser.add_argument("--outtype", default="q8_0", choices=("f16", "bf16", "q8_0"),
                        help="GGUF tensor type (with --format gguf).")
    vis = parser.add_mutually_exclusive_group()
    vis.add_argument("--private", dest="private", action="store_true", default=None,
                     help="Create the repo private (default: the run's hub.private, which defaults to private).")
    vis.add_argument("--public", dest="private", action="store_false", help="Create the repo public.")
    parser.add_argument("--export-only", metavar="DIR", type=Path,
                        help="Only write the export (weights, tokenizer, README.md, loss curve) into DIR; no upload.")
    parser.add_argument("--card", metavar="FILE", type=Path,
                        help="Use this README.md instead of the generated model card.")
    parser.add_argument("--keep-merged", action="store_true",
                        help="With --format gguf: keep the intermediate merged model (RUN/export/merged) instead of "
                             "removing it once the GGUF is written.")
    parser.add_argument("--message", metavar="TEXT", help="Commit message.")
    parser.add_argument("--max-shard-size", default="2GB", help="Largest safetensors shard of a merged model.")
    parser.add_argument("--dtype", default="auto", choices=choices_of(ModelConfig, "compute_dtype"),
                        help="Merge dtype (never quantized): auto is bf16, or fp32 for an fp32 base.")
    parser.add_argument("--device", default="auto", choices=choices_of(TrainConfig, "device"), help="Where to merge.")


def run(args: argparse.Namespace) -> int:
    from studio.commands.export import progress_lines
    from studio.errors import HubError
    from studio.hub import export, load_facts, push

    facts = load_facts(args.run)
    hub_cfg = facts.config.hub
    progress = progress_lines()
    merged = args.merged if args.merged is not None else hub_cfg.push == "merged"
    asked = args.format or (None if args.merged is not None else hub_cfg.push)
    gguf = args.outtype if asked == "gguf" else None
    if args.format in ("adapter", "merged"):
        merged = args.format == "merged"
    private = args.private if args.private is not None else hub_cfg.private
    card = None
    if args.card is not None:
        try:
            card = args.card.read_text(encoding="utf-8")
        except OSError as exc:
            raise HubError(f"can't read the card {args.card}: {exc.strerror or exc}") from None
    if args.export_only is not None and gguf:
        from studio.commands.export import _report_gguf
        from studio.hub.gguf_export import export_gguf

        res = export_gguf(args.run, args.export_only, gguf, repo_id=args.repo or hub_cfg.repo_id, card=card,
                          device=args.device, progress=progress, keep_merged=args.keep_merged)
        return _report_gguf(res)
    if args.export_only is not None:
        result = export(args.run, args.export_only, merged=merged, card=card, repo_id=args.repo or hub_cfg.repo_id,
                        max_shard_size=args.max_shard_size, dtype=args.dtype, device=args.device,
                        progress=progress)
        from studio.commands.export import print_export

        return print_export(result)
    repo = args.repo or default_repo(facts, "gguf" if gguf else "merged" if merged else "adapter")
    url = push(args.run, repo, None, private=private, merged=merged, card=card, progress=progress,
               commit_message=args.message, max_shard_size=args.max_shard_size, dtype=args.dtype,
               device=args.device, gguf=gguf, keep_merged=args.keep_merged)
    print(url)
    return 0


def default_repo(facts: Any, kind: str) -> str:
    """The repo a push without ``--repo`` goes to, said on stderr: the run's ``hub.repo_id``, else the name the
    Publish tab offers for ``kind`` (``default_repo_name``), under the token's account.

    Raises:
        HubError: no username can be known (no token, a rejected token, no Hub), so there is no default repo.
    """
    from studio.errors import HubError
    from studio.hub import whoami
    from studio.hub.facts import default_repo_name
    from studio.hub.push import full_repo_id

    name = facts.config.hub.repo_id or default_repo_name(facts, kind)
    try:
        account = whoami()
    except HubError as err:
        raise HubError(f"no --repo given, and the default repo {name!r} needs your Hugging Face username, which "
                       f"can't be known: {err}; or use --export-only DIR to write a folder without pushing") from None
    repo = full_repo_id(name, account)
    print(f"no --repo given: pushing to {repo} (the run's default repo)", file=sys.stderr, flush=True)
    return repo
