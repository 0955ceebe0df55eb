"""What the runs of ``studio bench gpu`` share: model shapes, budgets, synthetic rows, a random-init checkpoint,
a word-level tokenizer, the probe loss, and each run's figures."""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

# Real architectures, written out so nothing is downloaded. Values from the public config.json files.
SHAPES: dict[str, dict[str, Any]] = {
    "llama-1b": {
        "quantization": "none",
        "config": dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
                       max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
                       tie_word_embeddings=True, hidden_act="silu", bos_token_id=128000, eos_token_id=128001,
                       rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
        "smoke": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, vocab_size=512, max_position_embeddings=512,
                      bos_token_id=1, eos_token_id=2),
    },
    "mistral-7b": {
        "quantization": "4bit",
        "config": dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=32000,
                       max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=1000000.0,
                       sliding_window=None, tie_word_embeddings=False, hidden_act="silu", bos_token_id=1,
                       eos_token_id=2),
        "smoke": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, vocab_size=512, max_position_embeddings=512),
    },
}
GPU = dict(min_len=64, max_len=2048, rows=4096, tokens={"llama-1b": 300_000, "mistral-7b": 60_000},
           warmup=3, max_seconds=40.0, batch_size=8)
SMOKE = dict(min_len=16, max_len=128, rows=96, tokens={"llama-1b": 1_200, "mistral-7b": 800},
             warmup=1, max_seconds=30.0, batch_size=4)
LORA = dict(r=16, alpha=32, dropout=0.05, target_modules="all-linear")


def synthetic_rows(n: int, min_len: int, max_len: int, vocab: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """Tokenized chats with realistic skew: log-normal lengths (median ~ max/6) clipped to [min_len, max_len];
    the prompt is the first 30-70%, the loss mask covers the answer."""
    import random

    rng = random.Random(seed)
    mu = math.log(max(min_len * 2, max_len / 6))
    rows = []
    for _ in range(n):
        length = int(min(max_len, max(min_len, rng.lognormvariate(mu, 0.9))))
        prompt = max(1, int(length * rng.uniform(0.3, 0.7)))
        ids = [rng.randrange(4, vocab) for _ in range(length)]
        rows.append({"input_ids": ids, "completion_mask": [0] * prompt + [1] * (length - prompt)})
    return rows


def model_config(shape: str, smoke: bool) -> Any:
    from transformers import AutoConfig

    spec = dict(SHAPES[shape]["config"])
    if smoke:
        spec.update(SHAPES[shape]["smoke"])
        spec.pop("rope_scaling", None)
    model_type = spec.pop("model_type")
    return AutoConfig.for_model(model_type, **spec)


def checkpoint(shape: str, smoke: bool, dtype: Any, workdir: Path) -> Path:
    """A random-init checkpoint of ``shape`` on disk (built once per bench call, reused by its three runs)."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = workdir / f"{shape}{'-smoke' if smoke else ''}"
    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(model_config(shape, smoke), dtype=dtype)
    model.save_pretrained(str(folder))
    del model
    return folder


def word_tokenizer(vocab: int) -> Any:
    """A word-level tokenizer over ``vocab`` ids, ``t<id>`` words split on whitespace (pad t0, bos t1, eos t2)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t3"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="t0", eos_token="t2", bos_token="t1",
                                   unk_token="t3")


def probe_loss(model: Any, rows: list[dict[str, list[int]]], padding_free: bool, device: str) -> float:
    """Mean answer-token loss of the first rows through this run's forward (before training)."""
    import torch

    model_device = next(p for p in model.parameters()).device
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
        if padding_free:
            ids = torch.tensor([t for r in rows for t in r["input_ids"]], device=model_device)[None]
            pos = torch.tensor([i for r in rows for i in range(len(r["input_ids"]))], device=model_device)[None]
            logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0].float()
            chunks = []
            off = 0
            for r in rows:
                n = len(r["input_ids"])
                chunks.append((logits[off:off + n], r))
                off += n
        else:
            chunks = [(model(input_ids=torch.tensor([r["input_ids"]], device=model_device),
                             use_cache=False).logits[0].float(), r) for r in rows]
        for logit, r in chunks:
            labels = torch.tensor(r["input_ids"], device=logit.device)
            mask = torch.tensor(r["completion_mask"], device=logit.device).bool()
            lp = torch.log_softmax(logit[:-1], -1).gather(-1, labels[1:, None])[:, 0]
            sel = mask[1:]
            total += float(-lp[sel].sum())
            count += int(sel.sum())
    model.train(was_training)
    return total / max(count, 1)


def figures(run: str, shape: str, *, device: str, times: list[float], tokens: list[int], warmup: int,
            rows: list[dict[str, list[int]]], model_config: Any, lora_params: int) -> dict[str, Any]:
    """Real tokens/s, step time p50/p95, peak memory and MFU of the steps after ``warmup``."""
    import torch

    from studio.speed.flops import effective_seq, flops_per_token, mfu, peak_flops

    measured_t, measured_n = times[warmup:], tokens[warmup:]
    seconds = sum(measured_t)
    tps = sum(measured_n) / seconds if seconds > 0 else 0.0
    fpt = flops_per_token(model_config, effective_seq(len(r["input_ids"]) for r in rows), lora_params=lora_params)
    peak = peak_flops(device=device)
    if device == "cuda":
        alloc, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        device_name = torch.cuda.get_device_name(0)
    else:
        import resource

        alloc = reserved = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        device_name = "cpu"
    q = sorted(measured_t) or [0.0]
    return {"name": run, "model": shape, "device": device_name, "tokens_per_s": round(tps, 1),
            "step_time_p50": round(statistics.median(q), 4),
            "step_time_p95": round(q[min(len(q) - 1, int(0.95 * len(q)))], 4),
            "peak_mem_bytes": int(alloc), "peak_reserved_bytes": int(reserved), "mfu": round(mfu(tps, fpt, peak), 4),
            "steps": len(measured_t), "tokens": int(sum(measured_n)), "warmup_steps": warmup,
            "lora_params": lora_params, "flops_per_token": fpt, "peak_flops": peak.flops}
