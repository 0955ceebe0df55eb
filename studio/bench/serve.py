"""The OpenAI-compatible endpoint against ``studio chat``'s engine, and retrieval with and without the index cache,
in one call (figures are ratios against the baseline measured in the same process):

    python -m studio.bench.serve --run RUN_DIR [--docs PATH] [--rounds 3] [--max-tokens 48] [--json]

Chat: the same engine answers the same prompt greedily, alternately straight (what ``studio chat`` does) and through
the server (openai client, streamed over HTTP); first-token latency and tokens/s of each, medians. Retrieval: per
question, the index built from nothing (load, split, embed, search), read back from the disk cache, and kept in
memory (embed the question, search).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from studio.paths import ASSETS

PROMPT = "A baker makes 5 trays of 12 cookies. How many cookies?"
QUESTIONS = ("How do I serve a run over the OpenAI API?", "Which files can ground an answer?",
             "What does the Chat tab compare?")


def bench_chat(run_dir: str, rounds: int, max_tokens: int) -> dict[str, Any]:
    from openai import OpenAI

    from studio.inference import ChatEngine, GenerationParams
    from studio.serving.app import ServeOptions, Server, create_app

    engine = ChatEngine.from_run(run_dir, device="cpu")
    params = GenerationParams(max_new_tokens=max_tokens)
    server = Server(create_app(lambda: engine, ServeOptions()), "127.0.0.1", 0).start()
    client = OpenAI(base_url=server.url, api_key="none", max_retries=0, timeout=600)
    runs: dict[str, list[tuple[float, float, int]]] = {"studio chat engine": [], "endpoint (SSE)": []}
    try:
        engine.generate(PROMPT, params=params)  # warm-up
        for _ in range(rounds):
            t0 = time.perf_counter()
            stream, first = engine.stream(PROMPT, params=params), None
            for _piece in stream:
                first = first or time.perf_counter() - t0
            runs["studio chat engine"].append((first or 0.0, time.perf_counter() - t0, stream.n_tokens))
            t0, first, n = time.perf_counter(), None, 0
            for chunk in client.chat.completions.create(
                    model=engine.active, messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens,
                    temperature=0, stream=True, stream_options={"include_usage": True}):
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter() - t0
                if chunk.usage:
                    n = chunk.usage.completion_tokens
            runs["endpoint (SSE)"].append((first or 0.0, time.perf_counter() - t0, n))
    finally:
        server.stop()
    out = {}
    for name, rows in runs.items():
        out[name] = {"first_token_s": statistics.median(r[0] for r in rows),
                     "tokens_per_s": statistics.median(r[2] / r[1] for r in rows if r[1] > 0),
                     "tokens": rows[-1][2]}
    base, api = out["studio chat engine"], out["endpoint (SSE)"]
    out["ratios"] = {"first_token endpoint/chat": api["first_token_s"] / base["first_token_s"],
                     "tokens_per_s endpoint/chat": api["tokens_per_s"] / base["tokens_per_s"]}
    return out


def bench_retrieval(docs: str, retriever: str) -> dict[str, Any]:
    from studio.retrieval.grounding import Grounding
    from studio.retrieval.index import forget_memory, open_index

    times: dict[str, list[float]] = {"no cache (build + search)": [], "disk cache (read + search)": [],
                                     "memory cache (search)": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i, q in enumerate(QUESTIONS):
            forget_memory()
            t0 = time.perf_counter()
            Grounding.retrieve(open_index(docs, retriever=retriever, cache_dir=Path(tmp) / str(i)), q)
            times["no cache (build + search)"].append(time.perf_counter() - t0)
        for i, q in enumerate(QUESTIONS):
            forget_memory()
            t0 = time.perf_counter()
            Grounding.retrieve(open_index(docs, retriever=retriever, cache_dir=Path(tmp) / str(i)), q)
            times["disk cache (read + search)"].append(time.perf_counter() - t0)
        for i, q in enumerate(QUESTIONS):
            t0 = time.perf_counter()
            index = open_index(docs, retriever=retriever, cache_dir=Path(tmp) / str(i))
            Grounding.retrieve(index, q)
            times["memory cache (search)"].append(time.perf_counter() - t0)
        chunks = len(index.chunks)
    out: dict[str, Any] = {k: statistics.median(v) for k, v in times.items()}
    cold = out["no cache (build + search)"]
    out["ratios"] = {f"no cache / {k.split(' (')[0]}": cold / v for k, v in out.items() if k != "no cache (build "
                     "+ search)" and v > 0}
    out.update(retriever=index.retriever, chunks=chunks)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.bench.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="A run directory to serve.")
    parser.add_argument("--docs", default=str(ASSETS.parent / "docs"), help="Documents (default: Studio's docs/).")
    parser.add_argument("--retriever", default="auto", choices=("auto", "embed", "bm25"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    result = {"chat": bench_chat(args.run, args.rounds, args.max_tokens),
              "retrieval_per_question_s": bench_retrieval(args.docs, args.retriever)}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for section, values in result.items():
        print(f"== {section}")
        for k, v in values.items():
            print(f"  {k}: {json.dumps(v) if isinstance(v, dict) else v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
