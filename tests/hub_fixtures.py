"""Run directories for the publish tests, built without training: demo model + a saved LoRA adapter whose B matrices
are non-zero (so merging changes the weights), a config.yaml, events.jsonl, environment.json and eval results."""
from __future__ import annotations

import contextlib
import json
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.paths import ASSETS

PROBE = "What is 2 + 2?"


def run_config(**model: Any) -> Any:
    from studio.config import RunConfig

    return RunConfig.from_dict({
        "data": {"sources": [{"path": "openai/gsm8k", "name": "main"},
                             {"path": str(ASSETS / "datasets" / "word_problems.jsonl")}]},
        "model": {"name_or_path": "studio/demo-tiny", **model},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"max_steps": 12, "probe_prompts": [PROBE], "learning_rate": 3e-3},
    })


def events(run_dir: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"type": "started", "time": 1.0, "run_dir": str(run_dir), "model": "studio/demo-tiny",
                                  "total_steps": 12, "train_rows": 36, "eval_rows": 4}]
    out.append({"type": "probe", "time": 1.0, "step": 0, "prompt": PROBE, "answer": "five, probably"})
    out += [{"type": "log", "time": 2.0, "step": s, "loss": round(6.0 - 0.08 * s, 3), "learning_rate": 3e-3}
            for s in range(1, 13)]
    out.append({"type": "eval", "time": 3.0, "step": 12, "eval_loss": 5.25, "metrics": {"eval_loss": 5.25}})
    out.append({"type": "probe", "time": 3.0, "step": 12, "prompt": PROBE, "answer": "4"})
    out.append({"type": "finished", "time": 4.0, "step": 12, "adapter_path": str(run_dir / "adapter"),
                "train_loss": 5.4, "runtime_s": 30.0})
    return out


EVAL_RESULTS = {  # the shape of studio.evaluate.EvalReport.to_dict()
    "base": {"loss": 6.1, "perplexity": 445.9, "accuracy": 0.0, "unclear_rate": 1.0},
    "tuned": {"loss": 5.25, "perplexity": 190.6, "accuracy": 0.5, "unclear_rate": 0.0},
    "rows": 4,
    "run_dir": "/somewhere/runs/demo-run",
    "adapter": "",
    "per_row": [
        {"index": 0, "prompt": "Tom has 3 apples and buys 2 more. How many?", "reference": "5",
         "reference_answer": "5", "base_output": "apples apples", "base_answer": None, "base_correct": False,
         "tuned_output": "He has 5 apples. #### 5", "tuned_answer": "5", "tuned_correct": True},
        {"index": 1, "prompt": "What is 10 - 4?", "reference": "6", "reference_answer": "6", "base_output": "10",
         "base_answer": None, "base_correct": False, "tuned_output": "#### 6", "tuned_answer": "6",
         "tuned_correct": True},
    ],
}

ENVIRONMENT = {"python": "3.11.9", "platform": "Linux-x86_64", "device": "cuda", "world_size": 1, "cpu_count": 16,
               "packages": {"torch": "2.13.0", "transformers": "5.24.0", "peft": "0.21.2", "trl": "1.16.0",
                            "flash-attn": None},
               "gpu": {"name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.1, "capability": "9.0", "count": 1,
                       "cuda": "12.8"}}


def make_run_dir(run_dir: Path, *, add_token: str | None = None, eval_results: bool = True, **model: Any) -> Path:
    """Write a complete run directory; ``add_token`` grows the vocabulary like a ChatML run on a base without it."""
    import torch
    from peft import LoraConfig, get_peft_model

    from studio.modeling import load_base

    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = run_config(**model)
    cfg.save(run_dir / "config.yaml")
    base, tok = load_base(run_config().model, device="cpu")
    kwargs: dict[str, Any] = {}
    if add_token:
        tok.add_special_tokens({"additional_special_tokens": [add_token]})
        base.resize_token_embeddings(len(tok))
        kwargs = {"trainable_token_indices": {"embed_tokens": [len(tok) - 1]}, "modules_to_save": ["lm_head"]}
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM",
                                            **kwargs))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    model.save_pretrained(run_dir / "adapter")
    tok.save_pretrained(run_dir / "adapter")
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events(run_dir)), encoding="utf-8")
    (run_dir / "environment.json").write_text(json.dumps(ENVIRONMENT), encoding="utf-8")
    if eval_results:
        (run_dir / "eval_results.json").write_text(json.dumps(EVAL_RESULTS), encoding="utf-8")
    return run_dir


def set_config(run_dir: Path, **model: Any) -> None:
    run_config(**model).save(run_dir / "config.yaml")


def skip_retry_waits(mp: Any) -> None:
    """huggingface_hub's own retries (``http_backoff``: 1+2+4+8+8 s on preupload, commit, downloads) keep
    retrying but stop sleeping, through the MonkeyPatch ``mp``."""
    from huggingface_hub.utils import _http

    mp.setattr(_http, "time", types.SimpleNamespace(sleep=lambda s: None, time=time.time, monotonic=time.monotonic))


@contextlib.contextmanager
def local_hub(mp: Any, home: Path) -> Iterator[Any]:
    """A local Hub (tests/hub_server.py) at HF_ENDPOINT through the MonkeyPatch ``mp``: offline mode off
    (huggingface_hub reads HF_HUB_OFFLINE once, at import, into ``constants``), no ambient token (HF_TOKEN unset, the
    stored-login path under ``home``), and :func:`skip_retry_waits`."""
    import huggingface_hub.constants as constants

    from hub_server import TEST_TOKEN, HubServer

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        mp.delenv(name, raising=False)
    mp.setattr(constants, "HF_HUB_OFFLINE", False)
    mp.setattr(constants, "HF_TOKEN_PATH", str(home / "hf-home" / "token"))
    skip_retry_waits(mp)
    with HubServer(token=TEST_TOKEN) as server:
        mp.setenv("HF_ENDPOINT", server.url)
        yield server
