"""``studio chat --docs PATH``: the question answered from the documents' closest chunks (``--compare``: base and
tuned on the same chunks). The chunks go to stderr (or into ``--json``)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from studio.errors import ConfigError
from studio.retrieval.index import TOP_K, open_index
from studio.retrieval.splitter import CHUNK_OVERLAP, CHUNK_SIZE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--docs`` and its retrieval settings (shared by ``studio chat`` and ``studio serve``)."""
    parser.add_argument("--docs", default=None, metavar="PATH",
                        help="Ground answers on these documents (.txt .md .html .pdf files or a folder).")
    parser.add_argument("--docs-top-k", type=int, default=TOP_K, help="Chunks retrieved per question (with --docs).")
    parser.add_argument("--retriever", choices=("auto", "embed", "bm25"), default="auto",
                        help="auto: all-MiniLM-L6-v2 embeddings when the rag extra is installed, else BM25.")
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, help="Characters per chunk (with --docs).")
    parser.add_argument("--chunk-overlap", type=int, default=CHUNK_OVERLAP, help="Characters shared by neighbours.")


def index_from_args(args: argparse.Namespace) -> Any:
    """The document index ``--docs`` names (its notice, if any, on stderr)."""
    if getattr(args, "prompt", "") is None:
        raise ConfigError("--docs needs --prompt (one grounded question)")
    if args.docs_top_k < 1:
        raise ConfigError(f"--docs-top-k must be >= 1, got {args.docs_top_k}")
    if not 0 <= args.chunk_overlap < args.chunk_size:
        raise ConfigError(f"--chunk-overlap must be >= 0 and below --chunk-size ({args.chunk_size}), "
                          f"got {args.chunk_overlap}")
    index = open_index(args.docs, retriever=args.retriever, chunk_size=args.chunk_size,
                       chunk_overlap=args.chunk_overlap)
    if index.notice:
        print(f"note: {index.notice}", file=sys.stderr)
    return index


def run_grounded(engine: Any, index: Any, args: argparse.Namespace, params: Any, adapter: str | None) -> int:
    """Answer ``--prompt`` from the documents of ``index``."""
    from studio.retrieval.grounding import Grounding, context_budget

    g = Grounding.retrieve(index, args.prompt, args.docs_top_k)
    limit = args.max_input_tokens or context_budget(engine, params.max_new_tokens)
    kw = dict(params=params, system_prompt=args.system, max_input_tokens=limit)
    chunks = [h.to_dict() for h in g.hits]
    if args.compare:
        stream = engine.stream_compare(g.message, **kw)
        for _ in stream:
            pass
        answers = {"base": stream.base.text, "tuned": stream.tuned.text}
    else:
        answers = {"text": engine.stream(g.message, adapter=adapter, **kw).reply().text}
    if args.json:
        json.dump({**answers, "chunks": chunks, "retriever": index.retriever,
                   "retrieval_s": round(g.seconds, 4)}, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    for h in g.hits:
        print(f"[{h.rank}] {h.source} (score {h.score:.3f}): {h.text[:100]!r}", file=sys.stderr)
    if args.compare:
        print(f"--- tuned ---\n{answers['tuned']}\n--- base ---\n{answers['base']}")
    else:
        print(answers["text"])
    return 0
