"""`studio arena`: judge two models blind in the terminal, see the standings, export the votes as training data.

    studio arena --a base --b runs/wp                        # rounds until Ctrl-D: prompt, two answers, your vote
    studio arena --a runs/wp --b runs/wp/checkpoints/checkpoint-10 --prompt "..." --vote left
    studio arena stats [--json]                              # win rates (95 % interval) and a ranking
    studio arena export --out pairs.jsonl [--sft-out sft.jsonl]   # prompt/chosen/rejected for DPO & co

Votes go to ``<runs>/arena/votes.jsonl`` (``--runs-dir``, default: the folder holding the first run named, else
``$STUDIO_RUNS_DIR`` or ./runs). The sides are shuffled and named "A" and "B" until you vote.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from studio.config import TrainConfig, choices_of
from studio.errors import ConfigError
from studio.inference import params as generation

_KEYS = {"a": "left", "b": "right", "t": "tie", "x": "both_bad"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="play", choices=("play", "stats", "export"),
                        help="play (default): judge rounds; stats: the standings; export: votes as training data.")
    parser.add_argument("--a", metavar="MODEL", help="One side: 'base', base@RUN_DIR, a run, a checkpoint or an "
                                                       "adapter folder.")
    parser.add_argument("--b", metavar="MODEL", help="The other side (same forms).")
    parser.add_argument("--prompt", help="Judge this one prompt and exit (without it: rounds until Ctrl-D).")
    parser.add_argument("--vote", choices=("left", "right", "tie", "both_bad"),
                        help="With --prompt: the verdict without asking (scripts).")
    parser.add_argument("--edit", default=None, help="With --vote: the better answer as you would have it.")
    parser.add_argument("--system", default=None, help="System prompt (default: the run's).")
    parser.add_argument("--sides-seed", dest="round_seed", type=int, default=None,
                        help="Seed for shuffling the sides (default: random).")
    parser.add_argument("--runs-dir", default=None, help="The runs folder whose arena/votes.jsonl is used.")
    parser.add_argument("--out", help="export: the pairs file (JSONL).")
    parser.add_argument("--sft-out", help="export: also write edited answers as prompt/completion rows here.")
    parser.add_argument("--json", action="store_true", help="stats/play: print JSON.")
    parser.add_argument("--device", default="auto", choices=choices_of(TrainConfig, "device"), help="Where to run.")
    generation.add_arguments(parser)


def runs_dir_of(args: argparse.Namespace) -> Path:
    from studio.arena.match import BASE_PREFIX, _run_of
    from studio.paths import default_runs_dir

    if args.runs_dir:
        return Path(args.runs_dir)
    for spec in (args.a, args.b):
        if spec and spec != "base":
            run = _run_of(Path(spec[len(BASE_PREFIX):] if spec.startswith(BASE_PREFIX) else spec))
            if run is not None:
                return run.parent
    return default_runs_dir()


def run(args: argparse.Namespace) -> int:
    from studio.arena.votes import problems_line, read_votes

    runs_dir = runs_dir_of(args)
    if args.action in ("stats", "export"):
        vf = read_votes(runs_dir)
        if (line := problems_line(vf)) is not None:
            print(f"warning: {line}", file=sys.stderr)
        return _stats(vf.votes, args) if args.action == "stats" else _export(vf.votes, args, runs_dir)
    return _play(args, runs_dir)


def _stats(votes, args) -> int:
    from studio.arena.stats import pair_results, ranking

    pairs, ranked = pair_results(votes), ranking(votes)
    if args.json:
        json.dump({"votes": len(votes), "pairs": [p.to_dict() for p in pairs],
                   "ranking": [r.to_dict() for r in ranked]}, sys.stdout, ensure_ascii=False)
        print()
        return 0
    if not votes:
        print("no arena votes yet: `studio arena --a base --b runs/RUN` judges a first round")
        return 0
    print(f"{len(votes)} vote(s)")
    for p in pairs:
        rate = "n/a" if p.win_rate_a is None else f"{p.win_rate_a:.0%} [95% CI {p.low:.0%}-{p.high:.0%}]"
        print(f"  {p.a} vs {p.b}: {p.wins_a}-{p.wins_b}, {p.ties} tie(s), {p.both_bad} both bad; "
              f"{p.a} wins {rate}")
    if len(ranked) > 2:
        print("ranking (Bradley-Terry, Elo scale):")
        for i, r in enumerate(ranked, 1):
            print(f"  {i}. {r.model}: {r.rating:.0f} ({r.votes} votes)")
    return 0


def _export(votes, args, runs_dir: Path) -> int:
    from studio.arena.export import export_votes

    if not args.out:
        raise ConfigError("export needs --out FILE (the prompt/chosen/rejected JSONL to write)")
    done = export_votes(votes, args.out, sft_out=args.sft_out)
    print(done.line())
    return 0


def _play(args: argparse.Namespace, runs_dir: Path) -> int:
    from studio.arena.match import new_round, normalize_specs, play, reveal, vote
    from studio.inference import ChatEngine

    if not args.a or not args.b:
        raise ConfigError("name the two models: --a and --b ('base', a run folder, a checkpoint or an adapter folder)")
    if args.vote is None and args.prompt is not None and not sys.stdin.isatty():
        raise ConfigError("--prompt without --vote needs a terminal to ask for the vote; add --vote left|right|tie|"
                          "both_bad")
    a, b = normalize_specs(args.a, args.b)
    params = generation.from_args(args)
    rng = random.Random(args.round_seed)
    engines: dict[Path, ChatEngine] = {}

    def open_run(run: Path) -> ChatEngine:
        if run not in engines:
            print(f"loading the base model of {run.name}…", file=sys.stderr, flush=True)
            engines[run] = ChatEngine.from_run(run, device=args.device)
        return engines[run]

    from studio.arena.match import open_round_engine

    if a == b:
        print("note: the same model is on both sides", file=sys.stderr)
    while True:
        prompt = args.prompt
        if prompt is None:
            try:
                prompt = input("prompt> ")
            except EOFError:
                print(file=sys.stderr)
                return 0
            if not prompt.strip():
                continue
        rnd = new_round(prompt, a, b, rng=rng, system_prompt=args.system)
        engine = open_round_engine(open_run, rnd)
        for _ in play(engine, rnd, params):
            pass
        if not args.json:
            print(f"--- A ---\n{rnd.left_answer}\n--- B ---\n{rnd.right_answer}", flush=True)
        choice, edited = args.vote, args.edit
        if choice is None:
            choice, edited = _ask()
            if choice is None:
                return 0
        v = vote(rnd, choice, runs_dir, edited_answer=edited)
        if args.json:
            json.dump({"left": rnd.left.label, "right": rnd.right.label, "left_answer": rnd.left_answer,
                       "right_answer": rnd.right_answer, "vote": v.vote}, sys.stdout, ensure_ascii=False)
            print()
        else:
            print(reveal(rnd, v).replace("**", ""))
        if args.prompt is not None:
            return 0


def _ask() -> tuple[str | None, str | None]:
    while True:
        try:
            key = input("better? a / b / t (tie) / x (both bad) > ").strip().lower()[:1]
        except EOFError:
            return None, None
        if key in _KEYS:
            break
    edited = None
    if key in ("a", "b"):
        try:
            edited = input("edit the better answer (Enter keeps it) > ").strip() or None
        except EOFError:
            edited = None
    return _KEYS[key], edited
