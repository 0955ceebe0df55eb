"""``studio bench gpu-memory``: LoRA on a random ~1B Llama (bf16 and 4-bit) through the engine on a GPU: tokens/s,
peak memory and the memory estimate's error against it."""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Callable


def build_random_llama(folder: Path, *, hidden: int = 2048, layers: int = 16, intermediate: int = 5632,
                       heads: int = 16, kv_heads: int = 8, vocab: int = 32000) -> Path:
    """A random-init Llama-architecture model (~1B parameters by default) with the demo tokenizer (no Hub)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from studio.demo import ensure_demo_model

    tok = AutoTokenizer.from_pretrained(str(ensure_demo_model()))
    config = LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, intermediate_size=intermediate,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=max(vocab, len(tok)),
                         max_position_embeddings=4096, tie_word_embeddings=False,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    del model
    return folder


def gpu_memory(*, steps: int = 50, max_length: int = 1024, batch_size: int = 4, quantizations=("none", "4bit"),
               arch: dict | None = None, report: Callable[[str], None] = print) -> list[dict]:
    """On a GPU: LoRA on a random ~1B Llama (bf16 and 4-bit), packed to ``max_length`` with SDPA; reports tokens/s,
    peak memory and the memory estimate's error for each."""
    from studio.config import RunConfig
    from studio.events import Failed, Log, Note, Started
    from studio.paths import ASSETS
    from studio.training import TrainingJob

    rows = []
    with tempfile.TemporaryDirectory(prefix="studio-gpu-") as tmp:
        folder = build_random_llama(Path(tmp) / "llama-1b", **(arch or {}))
        for quant in quantizations:
            cfg = RunConfig.from_dict({
                "data": {"sources": [{"path": str(ASSETS / "datasets" / "word_problems.jsonl")}],
                         "format": "prompt_completion", "template": "{question}\n### Solution: {answer}",
                         "response_template": "### Solution:", "eval_fraction": 0.0},
                "model": {"name_or_path": str(folder), "quantization": quant, "compute_dtype": "bf16",
                          "attn_implementation": "sdpa"},
                "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
                "train": {"max_steps": steps, "batch_size": batch_size, "max_length": max_length, "packing": True,
                          "loss_on": "all", "gradient_checkpointing": False, "save_steps": 10_000,
                          "tensorboard": False, "logging_steps": min(5, steps), "output_dir": str(Path(tmp) / "runs")},
            })
            job = TrainingJob(cfg)
            job.run()
            events = job.events.all()
            if isinstance(job.result, Failed):
                report(f"{quant}: failed: {job.result.message} {job.result.suggestion}")
                continue
            logs = [e for e in events if isinstance(e, Log)]
            started = next(e for e in events if isinstance(e, Started))  # after the phase notes (preparing...)
            note = next((e for e in events if isinstance(e, Note) and "estimate error" in e.message), None)
            tps = statistics.median([e.tokens_per_s for e in logs[1:] if e.tokens_per_s] or [0])
            row = {"quantization": quant, "tokens_per_s": round(tps, 1),
                   "peak_gb": round(max(e.peak_memory_bytes or 0 for e in logs) / 1024 ** 3, 2),
                   "estimate_gb": job.estimate.total_gb if job.estimate else None,
                   "estimate_error": note.data.get("error") if note else None,
                   "trainable_params": started.loaded.get("trainable_params"),
                   "total_params": started.loaded.get("total_params"), "device": started.device}
            rows.append(row)
            report(f"{quant}: {row}")
    return rows
