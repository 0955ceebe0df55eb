"""Benchmark: memory of the playground's compare mode (one base + adapter, base answers inside
``disable_adapter()``) against the naive way (the base model loaded twice, one copy with the adapter).

Each side runs in its own fresh process, so peaks don't mix: the process loads the model(s), answers the same
prompt base and tuned, and reports parameter bytes (unique storages), the peak resident memory while answering
(Linux ``VmHWM``, reset after loading) and the peak over the whole process including loading; on a GPU, the peak
allocated GPU memory. The model is a random Llama (~150M parameters, about 600 MB in fp32) with the demo
tokenizer, so weights dominate the process and nothing is downloaded.

    studio bench chat-memory            # wire: studio.bench.chat.chat_memory(report=print)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

TARGET = 0.55
SIZES = {
    "small": dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2),
    "medium": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=12, num_attention_heads=16,
                   num_key_value_heads=8),
}
PROMPT = "A farmer has 12 cows and buys 7 more. How many cows does the farmer have now?"


@dataclass
class ChatMemoryResult:
    """Both sides' numbers (bytes) and the ratios compare / twice."""

    device: str
    compare: dict[str, Any]
    twice: dict[str, Any]
    param_ratio: float
    serve_ratio: float | None
    """Peak memory while answering (RSS on CPU, allocated on GPU), over the process's memory before loading."""
    load_ratio: float | None
    """Peak over the whole process, loading included."""

    @property
    def ratio(self) -> float:
        """The headline ratio: serving peak where measured, else parameter bytes."""
        return self.serve_ratio if self.serve_ratio is not None else self.param_ratio

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "target": TARGET}


def chat_memory(*, device: str = "auto", size: str = "medium", max_new_tokens: int = 16,
                report: Callable[[str], None] = print, workdir: str | Path | None = None) -> ChatMemoryResult:
    """Run both sides in fresh processes and report the ratios (target: compare <= 0.55x of twice).

    Args:
        device: auto, cpu or cuda.
        size: ``small`` (quick) or ``medium`` (weights dominate the process; the default).
        report: where progress and result lines go.
    """
    from studio.modeling import resolve_device

    dev = resolve_device(device)
    with tempfile.TemporaryDirectory(prefix="studio-bench-chat-", dir=workdir) as tmp:
        report(f"building a random Llama ({size}) and a LoRA adapter in {tmp}")
        model_dir, adapter_dir = _build(Path(tmp), SIZES[size])
        sides = {}
        for mode in ("compare", "twice"):
            report(f"{mode}: loading and answering in a fresh process on {dev}")
            sides[mode] = _child_run(mode, model_dir, adapter_dir, dev, max_new_tokens)
    c, t = sides["compare"], sides["twice"]
    key = "gpu_peak" if dev == "cuda" else "serve_peak"
    serve = _ratio(c.get(key), t.get(key))
    result = ChatMemoryResult(device=dev, compare=c, twice=t, param_ratio=c["param_bytes"] / t["param_bytes"],
                              serve_ratio=serve, load_ratio=_ratio(c.get("load_peak"), t.get("load_peak")))
    mb = 1024 ** 2
    report(f"parameters: compare {c['param_bytes'] / mb:.1f} MB vs base twice {t['param_bytes'] / mb:.1f} MB -> "
           f"{result.param_ratio:.3f}x")
    what = "peak GPU memory allocated" if dev == "cuda" else "peak RSS while answering (over the pre-load RSS)"
    if serve is not None:
        report(f"{what}: compare {c[key] / mb:.1f} MB vs base twice {t[key] / mb:.1f} MB -> {serve:.3f}x")
    if result.load_ratio is not None and dev != "cuda":
        report(f"peak RSS including loading: compare {c['load_peak'] / mb:.1f} MB vs base twice "
               f"{t['load_peak'] / mb:.1f} MB -> {result.load_ratio:.3f}x")
    same = c["base_text"] == t["base_text"] and c["tuned_text"] == t["tuned_text"]
    report(f"answers identical on both sides: {same}; base != tuned: {c['base_text'] != c['tuned_text']}")
    verdict = "meets" if result.ratio <= TARGET else "misses"
    report(f"chat-memory ratio {result.ratio:.3f}x ({verdict} the <= {TARGET}x target)")
    return result


def _ratio(a: Any, b: Any) -> float | None:
    return a / b if a and b else None


def _build(root: Path, shape: dict[str, int]) -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from studio.demo import ensure_demo_model

    tok = AutoTokenizer.from_pretrained(ensure_demo_model())
    config = LlamaConfig(vocab_size=len(tok), max_position_embeddings=512, tie_word_embeddings=False,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         **shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        model_dir = root / "base"
        model.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                init_lora_weights=False))  # random B: tuned answers differ
        adapter_dir = root / "adapter"
        peft.save_pretrained(adapter_dir)
    del model, peft
    return model_dir, adapter_dir


def _child_run(mode: str, model_dir: Path, adapter_dir: Path, device: str, max_new_tokens: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "studio.bench.chat", mode, str(model_dir), str(adapter_dir), device,
           str(max_new_tokens)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"bench child '{mode}' failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------- child side
def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _child(mode: str, model_dir: str, adapter_dir: str, device: str, max_new_tokens: int) -> dict[str, Any]:
    import resource

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.data import RenderSpec
    from studio.inference import BASE, ChatEngine, GenerationParams, PromptBuilder

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    tok = AutoTokenizer.from_pretrained(model_dir)
    builder = PromptBuilder(RenderSpec(format="text", mapping={"text": "text"}), tok, max_input_tokens=256)
    import peft  # noqa: F401 - imported before the baseline, like the model classes: only weights are measured
    from transformers.models.llama import modeling_llama  # noqa: F401

    rss0 = _status_kb("VmRSS") or 0

    def load() -> Any:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        return model.to(device).eval()

    params = GenerationParams(max_new_tokens=max_new_tokens)
    if mode == "compare":
        engine = ChatEngine(load(), tok, builder)
        engine.load_adapter(adapter_dir)
        models = [engine.model]
        can_reset = _reset_peak()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()  # loading and answering both count on the GPU below
        replies = engine.compare(PROMPT, params=params)
        base_text, tuned_text = replies["base"].text, replies["tuned"].text
    else:
        plain = ChatEngine(load(), tok, builder)
        tuned = ChatEngine(load(), tok, builder)
        tuned.load_adapter(adapter_dir)
        models = [plain.model, tuned.model]
        can_reset = _reset_peak()
        base_text = plain.generate(PROMPT, params=params, adapter=BASE).text
        tuned_text = tuned.generate(PROMPT, params=params).text
    storages: dict[int, int] = {}
    for m in models:
        for p in m.parameters():
            storages[p.untyped_storage().data_ptr()] = p.untyped_storage().nbytes()
    out = {"param_bytes": sum(storages.values()), "rss_before_load": rss0, "base_text": base_text,
           "tuned_text": tuned_text,
           "load_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0}
    hwm = _status_kb("VmHWM")
    if can_reset and hwm:
        out["serve_peak"] = hwm - rss0
    if device == "cuda":
        out["gpu_peak"] = torch.cuda.max_memory_allocated()
    return out


if __name__ == "__main__":  # the child process: python -m studio.bench.chat MODE MODEL ADAPTER DEVICE N
    import warnings

    warnings.filterwarnings("ignore")
    _mode, _model, _adapter, _device, _n = sys.argv[1:6]
    print(json.dumps(_child(_mode, _model, _adapter, _device, int(_n))))
