"""`studio bench data`: the data path's speed, printed as ratios against a baseline in the same call.

* **cache speed-up**: ``prepare_datasets`` cold (render + tokenize + stats + split, written to the cache) vs warm
  (the same call again: read from the cache).
* **tokenization throughput ratio**: rows/s of Studio's cold path (several processes for large datasets) vs a plain
  ``datasets.map`` of the same render-and-tokenize function over the same rows in one call, one process.

No pass/fail: the numbers are printed (they depend on the machine).
"""
from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

WORDS = ("the", "a", "model", "answer", "solve", "equation", "python", "list", "value", "question", "because",
         "first", "then", "x", "y", "=", "+", "2", "3", "7", "function", "returns", "data", "train", "token")


def write_synthetic_chats(path: Path, rows: int, seed: int = 0) -> Path:
    """A jsonl of ``messages`` chats with skewed lengths (log-normal word counts)."""
    rng = random.Random(seed)

    def text(mu: float) -> str:
        n = max(3, min(600, int(rng.lognormvariate(mu, 0.8))))
        return " ".join(rng.choice(WORDS) for _ in range(n))

    with path.open("w", encoding="utf-8") as fh:
        for _ in range(rows):
            fh.write(json.dumps({"messages": [{"role": "user", "content": text(3.0)},
                                              {"role": "assistant", "content": text(3.5)}]}) + "\n")
    return path


def run_data_bench(rows: int = 20_000, *, report: Callable[[str], None] = print,
                   workdir: str | None = None) -> dict[str, Any]:
    """Measure the cache speed-up and the tokenization throughput ratio on ``rows`` synthetic chats (demo
    tokenizer). Returns the figures; prints one line each through ``report``."""
    import datasets

    from studio.config import RunConfig
    from studio.data import prepare_datasets
    from studio.data.prepare import load_data, spec_for
    from studio.data.render import render
    from studio.modeling.tokenizer import load_tokenizer

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="studio-bench-data-") as tmp:
        root = Path(workdir or tmp)
        old_cache = os.environ.get("STUDIO_CACHE_DIR")
        os.environ["STUDIO_CACHE_DIR"] = str(root / "cache")  # a cold cache for this call
        try:
            data = write_synthetic_chats(root / "chats.jsonl", rows)
            cfg = RunConfig.from_dict({"data": {"sources": [{"path": str(data)}], "format": "messages",
                                                "eval_fraction": 0.0},
                                       "train": {"max_length": 1024}})
            tok, _ = load_tokenizer(cfg.model)
            t0 = time.perf_counter()
            cold = prepare_datasets(cfg, tok)
            t_cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            warm = prepare_datasets(cfg, tok)
            t_warm = time.perf_counter() - t0
            assert len(warm.train) == len(cold.train)

            loaded = load_data(cfg.data)
            spec = spec_for(cfg, loaded, tok)

            def fn(row):
                r = render(row, tok, spec)
                return {"input_ids": r.input_ids, "completion_mask": r.loss_mask}

            t0 = time.perf_counter()
            loaded.dataset.map(fn, remove_columns=loaded.columns, load_from_cache_file=False)
            t_plain = time.perf_counter() - t0
        finally:
            if old_cache is None:
                os.environ.pop("STUDIO_CACHE_DIR", None)
            else:
                os.environ["STUDIO_CACHE_DIR"] = old_cache
    out = {"rows": rows, "cold_s": round(t_cold, 3), "warm_s": round(t_warm, 4), "plain_map_s": round(t_plain, 3),
           "cache_speedup": round(t_cold / t_warm, 1) if t_warm > 0 else None,
           "studio_rows_per_s": round(rows / t_cold, 1), "plain_rows_per_s": round(rows / t_plain, 1),
           "tokenization_ratio": round(t_plain / t_cold, 3), "cpus": os.cpu_count()}
    report(f"data cache: cold {t_cold:.2f} s, warm {t_warm:.3f} s -> speed-up {out['cache_speedup']}x "
           f"({rows} rows)")
    report(f"tokenization: studio {out['studio_rows_per_s']:.0f} rows/s (cold, incl. stats/split/cache write) vs "
           f"plain datasets.map {out['plain_rows_per_s']:.0f} rows/s -> ratio {out['tokenization_ratio']} "
           f"({out['cpus']} CPUs)")
    return out
