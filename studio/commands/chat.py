"""`studio chat`: ask a trained run (and, with --compare, its base model) a prompt, or chat interactively.

    studio chat --run runs/wp --prompt "Tom has 3 apples..."              # the tuned answer, streamed
    studio chat --run runs/wp --prompt "..." --compare --json             # {"base": "...", "tuned": "..."}
    studio chat --run runs/wp                                             # interactive; /reset, /exit
    studio chat --run runs/wp --docs notes/ --prompt "..." --compare      # grounded on documents (RAG)

Defaults are deterministic (greedy), so the same prompt gives the same answer twice; --sample uses --seed.
"""
from __future__ import annotations

import argparse
import json
import sys

from studio.config import ModelConfig, TrainConfig, choices_of
from studio.errors import ConfigError
from studio.inference import params as generation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="A run directory (its adapter and config).")
    parser.add_argument("--prompt", help="Ask this and exit (without it: an interactive loop).")
    parser.add_argument("--compare", action="store_true", help="Also answer with the base model (adapter off).")
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of streamed text.")
    parser.add_argument("--system", default=None, help="System prompt (default: the run's; '' for none).")
    parser.add_argument("--adapter", action="append", default=[], metavar="PATH_OR_HUB_ID",
                        help="Load another adapter too (another run, folder or Hub id); the last one answers.")
    parser.add_argument("--base-only", action="store_true", help="Answer with the base model only.")
    generation.add_arguments(parser)  # --max-new-tokens, --sample, --temperature, ..., --stop: GenerationParams
    parser.add_argument("--max-input-tokens", type=int, default=None,
                        help="Trim history to this many prompt tokens (default: the run's train.max_length).")
    parser.add_argument("--device", default="auto", choices=choices_of(TrainConfig, "device"), help="Where to run.")
    parser.add_argument("--quantization", choices=choices_of(ModelConfig, "quantization"), default=None,
                        help="Load the base quantized (default: as trained).")
    from studio.retrieval import chat_docs

    chat_docs.add_arguments(parser)  # --docs PATH, --top-k, --retriever, --chunk-size, --chunk-overlap


def params_from_args(args: argparse.Namespace) -> generation.GenerationParams:
    return generation.from_args(args)


def run(args: argparse.Namespace) -> int:
    from studio.imports import quiet_libraries
    from studio.inference import BASE, ChatEngine

    if args.compare and args.base_only:
        raise ConfigError("--compare and --base-only exclude each other")
    params = params_from_args(args)
    from studio.commands.base_reach import check_run_base

    check_run_base(args.run)  # an offline Hub: one sentence now, before documents are read or anything loads
    index = None
    if args.docs:  # bad documents are said before the model loads
        from studio.retrieval.chat_docs import index_from_args

        index = index_from_args(args)
    quiet_libraries()
    phases = None
    if args.compare:  # two answers one after the other: minutes on a CPU, each phase said on stderr
        from studio.commands.phases import PhaseLines

        phases = PhaseLines()
        phases.say(f"loading the model of {args.run}")
    engine = ChatEngine.from_run(args.run, device=args.device, quantization=args.quantization)
    if phases is not None:
        phases.say(f"loaded {engine.base_model} + {engine.active}")
    args.phases = phases
    for extra in args.adapter:
        engine.set_adapter(engine.load_adapter(extra))
    adapter = BASE if args.base_only else None
    try:
        if index is not None:
            from studio.retrieval.chat_docs import run_grounded

            return run_grounded(engine, index, args, params, adapter)
        if args.prompt is not None:
            return _one(engine, args, params, adapter)
        return _interactive(engine, args, params, adapter)
    except KeyboardInterrupt:  # the answer's thread ends before the interpreter does (else: SIGABRT)
        engine.stop_and_wait()
        print("\ninterrupted", file=sys.stderr)
        return 130


def _one(engine, args, params, adapter) -> int:
    kw = dict(params=params, system_prompt=args.system)
    if args.compare:
        stream = engine.stream_compare(args.prompt, **kw)
        phases = getattr(args, "phases", None)
        if args.json:
            for side, reply in (("tuned", stream.tuned), ("base", stream.base)):
                _answer(phases, side, reply, lambda r: [None for _ in r])
            _json({"base": stream.base.text, "tuned": stream.tuned.text,
                   "finish_reason": {"base": stream.base.finish_reason, "tuned": stream.tuned.finish_reason},
                   "adapter": stream.tuned.adapter})
            return 0
        for side, reply in (("tuned", stream.tuned), ("base", stream.base)):
            print(f"--- {side} ---", flush=True)
            _answer(phases, side, reply, _echo)
        return 0
    stream = engine.stream(args.prompt, **kw, adapter=adapter)
    if args.json:
        reply = stream.reply()
        _json({"text": reply.text, "finish_reason": reply.finish_reason, "adapter": reply.adapter,
               "n_tokens": reply.n_tokens})
        return 0
    _echo(stream)
    return 0


def _answer(phases, side: str, reply, consume) -> None:
    """One side of a comparison, its start and its length on stderr."""
    if phases is not None:
        phases.say(f"answering with the {side} model")
    consume(reply)
    if phases is not None:
        phases.say(f"{side} answer: {reply.n_tokens} tokens ({reply.finish_reason})")


def _echo(stream) -> None:
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    if stream.notice:
        print(f"note: {stream.notice}", file=sys.stderr)


def _json(obj) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


def _interactive(engine, args, params, adapter) -> int:
    names = ", ".join(engine.adapters)
    print(f"chatting with {engine.base_model} + {engine.active} (adapters: {names}); /reset clears the history, "
          f"/exit or Ctrl-D quits", file=sys.stderr)
    history: list[tuple[str, str]] = []
    base_history: list[tuple[str, str]] = []
    while True:
        try:
            message = input("you> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        if message.strip() in ("/exit", "/quit"):
            return 0
        if message.strip() == "/reset":
            history.clear()
            base_history.clear()
            continue
        if not message.strip():
            continue
        try:
            if args.compare:
                stream = engine.stream_compare(message, history, base_history=base_history, params=params,
                                               system_prompt=args.system,
                                               max_input_tokens=args.max_input_tokens)
                print("tuned> ", end="", flush=True)
                _echo(stream.tuned)
                print("base> ", end="", flush=True)
                _echo(stream.base)
                history.append((message, stream.tuned.text))
                base_history.append((message, stream.base.text))
            else:
                stream = engine.stream(message, history, params=params, system_prompt=args.system, adapter=adapter,
                                       max_input_tokens=args.max_input_tokens)
                print("bot> ", end="", flush=True)
                _echo(stream)
                history.append((message, stream.text))
        except KeyboardInterrupt:  # Ctrl-C ends the answer, not the session
            engine.stop()
            print("\n(stopped)", file=sys.stderr)
