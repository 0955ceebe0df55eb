"""`studio serve`: an OpenAI-compatible API for a run's base model and adapters (no merging).

    studio serve --run runs/wp                               # http://127.0.0.1:8000/v1, models: base + wp
    studio serve --run runs/wp --run runs/wp2 --port 9000    # two adapters on one copy of the base
    studio serve --run runs/wp --host 0.0.0.0 --api-key KEY  # beyond loopback a key is required
    studio serve --run runs/wp --docs notes/                 # chat answers grounded on documents
"""
from __future__ import annotations

import argparse
import os
import sys

from studio.config import ModelConfig, TrainConfig, choices_of
from studio.errors import ConfigError

KEY_ENV = "STUDIO_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from studio.retrieval import chat_docs

    parser.add_argument("--run", action="append", required=True, metavar="RUN_DIR",
                        help="A run to serve (repeatable: further runs' adapters share the first one's base).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default: loopback only).")
    parser.add_argument("--port", type=int, default=8000, help="Port (0: any free one).")
    parser.add_argument("--api-key", default=None,
                        help=f"Clients must send 'Authorization: Bearer KEY' (default: ${KEY_ENV}); required "
                             f"when --host is not a loopback address.")
    parser.add_argument("--max-pending", type=int, default=16,
                        help="Requests queued or answering at once; more are answered 429.")
    parser.add_argument("--device", default="auto", choices=choices_of(TrainConfig, "device"), help="Where to run.")
    parser.add_argument("--quantization", choices=choices_of(ModelConfig, "quantization"), default=None,
                        help="Load the base quantized (default: as trained).")
    chat_docs.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from studio.imports import quiet_libraries
    from studio.inference import ChatEngine
    from studio.serving.app import ServeOptions, Server, create_app, is_loopback, model_names

    key = args.api_key or os.environ.get(KEY_ENV) or None
    if not is_loopback(args.host) and not key:
        raise ConfigError(f"listening on {args.host} (beyond this machine) needs an API key: pass --api-key or set "
                          f"${KEY_ENV}")
    if args.max_pending < 1:
        raise ConfigError(f"--max-pending must be >= 1, got {args.max_pending}")
    index = None
    if args.docs:
        from studio.retrieval.chat_docs import index_from_args

        index = index_from_args(args)
    holder: dict[str, object] = {}
    server = Server(create_app(lambda: holder.get("engine"), ServeOptions(key, args.max_pending, index,
                                                                           args.docs_top_k)), args.host, args.port)
    try:
        quiet_libraries()
        engine = ChatEngine.from_run(args.run[0], device=args.device, quantization=args.quantization)
        for extra in args.run[1:]:
            engine.load_adapter(extra)
        holder["engine"] = engine
        names = ", ".join(model_names(engine))
        print(f"serving {names} at {server.url} (OpenAI API{', key required' if key else ''}); Ctrl-C stops",
              file=sys.stderr, flush=True)
        server.run()
    finally:
        server.sock.close()
    return 0
