"""Merge a run's LoRA adapter into its base, checked: the merged model must answer a probe as the adapter did.

Never into quantized weights: a 4-bit QLoRA base is reloaded unquantized in 16-bit (bf16, or fp16 where bf16 is
unsupported; a base shipped in fp32 stays fp32), the adapter is attached, a greedy answer to a probe prompt is taken,
``merge_and_unload()`` folds the LoRA update in, and the merged model must give the same greedy answer (up to a
near-tie flipped by rounding) before it is saved as sharded safetensors with the tokenizer.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import HubError, StudioError
from studio.hub.facts import RunFacts

DEFAULT_PROBE = "Hello! Who are you?"
PROBE_TOKENS = 24
TIE_TOLERANCE = {"fp32": 1e-3, "bf16": 0.1, "fp16": 0.05}
"""Largest logit gap at the first differing token that still counts as a near-tie flipped by rounding."""

Progress = Callable[[float, str], None]


@dataclass
class ProbeCheck:
    """The merged model's greedy answer next to the adapter model's.

    ``same``: identical token ids. ``passed`` also accepts answers that agree up to a near-tie: at the first
    differing token the adapter model itself scored both candidates within ``tolerance`` (16-bit rounding of the
    merged weights can flip such a tie; a broken merge differs from the first token by a wide margin).
    """

    prompt: str
    adapter_answer: str
    merged_answer: str
    same: bool
    agreed_tokens: int = 0
    gap: float | None = None
    """Adapter-model logit of its own token minus that of the merged model's token, at the first difference."""
    tolerance: float = 0.0

    @property
    def passed(self) -> bool:
        return self.same or (self.gap is not None and self.gap <= self.tolerance)

    def describe(self) -> str:
        if self.same:
            return f"merged and adapter models give the same greedy answer to {self.prompt!r}"
        if self.passed:
            return (f"merged and adapter answers agree for {self.agreed_tokens} tokens, then split at a near-tie "
                    f"(logit gap {self.gap:.3g} <= {self.tolerance:g}): 16-bit rounding, not a broken merge")
        return (f"the merged model answers {self.prompt!r} differently from the adapter model after "
                f"{self.agreed_tokens} tokens ({self.adapter_answer[:60]!r} vs {self.merged_answer[:60]!r}; "
                f"logit gap {self.gap:.3g} > {self.tolerance:g})")


def compare_answers(adapter_ids: list[int], adapter_logits: list[Any],
                    merged_ids: list[int]) -> tuple[int, float | None]:
    """``(tokens agreed, logit gap at the first difference)``; the gap is None when the answers are identical.

    ``adapter_logits[k]`` are the adapter model's logits for token ``k`` (conditioned on the prompt and
    ``adapter_ids[:k]``, which is also the merged model's prefix up to the first difference).
    """
    agreed = 0
    for a, m in zip(adapter_ids, merged_ids):
        if a != m:
            break
        agreed += 1
    if agreed == len(adapter_ids) == len(merged_ids):
        return agreed, None
    if agreed >= min(len(adapter_ids), len(merged_ids)) or agreed >= len(adapter_logits):
        return agreed, float("inf")  # one answer stopped early: not a near-tie
    row = adapter_logits[agreed]
    return agreed, float(row[adapter_ids[agreed]] - row[merged_ids[agreed]])


def merge_dtype(facts: RunFacts, dtype: str, device: str) -> str:
    """The dtype to merge in: never a quantized one. ``auto``: fp32 when the base checkpoint is fp32 (as the demo
    model is), else bf16 (fp16 on a GPU without bf16)."""
    if dtype != "auto":
        if dtype not in ("bf16", "fp16", "fp32"):
            raise HubError(f"merge dtype must be auto, bf16, fp16 or fp32, got {dtype!r}")
        return dtype
    stored = None
    try:
        from transformers import AutoConfig

        from studio.modeling.sources import resolve_model_path

        conf = AutoConfig.from_pretrained(resolve_model_path(facts.base_id), revision=facts.config.model.revision,
                                          trust_remote_code=facts.config.model.trust_remote_code)
        stored = str(getattr(conf, "dtype", None) or getattr(conf, "torch_dtype", None) or "")
    except (OSError, ValueError, StudioError):
        pass
    if stored and "float32" in stored:
        return "fp32"
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16"


def greedy(model: Any, tok: Any, prompt: str, ids: list[int] | None = None) -> tuple[list[int], list[Any]]:
    """Greedy answer ids to ``prompt`` (or to the prompt token ``ids`` rendered in the trained format) and the raw
    logits (float32, CPU) at each generated position."""
    import torch

    if ids is not None:
        enc = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    elif getattr(tok, "chat_template", None):
        enc = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
    else:
        enc = tok(prompt, return_tensors="pt")
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=PROBE_TOKENS, do_sample=False, num_beams=1, output_logits=True,
                             return_dict_in_generate=True,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    ids = out.sequences[0, enc["input_ids"].shape[1]:].tolist()
    return ids, [step[0].float().cpu() for step in out.logits]


def probe_prompt(facts: RunFacts, prompt: str | None = None) -> str:
    if prompt:
        return prompt
    if facts.config.train.probe_prompts:
        return facts.config.train.probe_prompts[0]
    samples = facts.eval_results.get("samples") or []
    if samples and isinstance(samples[0], dict) and samples[0].get("prompt"):
        return str(samples[0]["prompt"])
    return DEFAULT_PROBE


def export_merged(facts: RunFacts, adapter: Path, out_dir: Path, notes: list[str], progress: Progress, *,
                  rows: int | None, dtype: str, device: str, max_shard_size: str | int,
                  prompt: str | None) -> tuple[list[str], ProbeCheck]:
    """Merge ``adapter`` into an unquantized copy of the base and save it (sharded) with the tokenizer in ``out_dir``,
    after the greedy probe answers of both models agree; ``rows``: the adapter's full embedding rows (added tokens).

    Raises:
        HubError: the merged model answers the probe differently (nothing is saved).
    """
    import gc

    progress(0.02, "loading torch, transformers and peft")
    from peft import PeftModel
    from transformers import AutoTokenizer

    from studio.modeling import load_base, resolve_device

    dev = resolve_device(device)
    chosen = merge_dtype(facts, dtype, dev)
    mcfg = facts.config.model
    if mcfg.quantization != "none":
        notes.append(f"the run trained on a {mcfg.quantization} base (QLoRA); the base was reloaded unquantized in "
                     f"{chosen} for the merge, because merging into quantized weights rounds the LoRA update away "
                     "and cannot be saved as a plain checkpoint")
    progress(0.1, f"loading the base model in {chosen} (unquantized)")
    model, base_tok = load_base(dataclasses.replace(mcfg, quantization="none", compute_dtype=chosen), device=dev)
    tok = AutoTokenizer.from_pretrained(adapter) if (adapter / "tokenizer_config.json").is_file() else base_tok
    if rows and model.get_input_embeddings().num_embeddings != rows:
        model.resize_token_embeddings(rows)
    progress(0.35, "attaching the adapter")
    model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    question = probe_prompt(facts, prompt)
    from studio.inference.prompt import builder_for
    from studio.prompt_format import load as load_prompt_format

    trained = load_prompt_format(facts.run_dir)  # older runs: the chat template when there is one, as before
    ids = builder_for(trained, tok).build(question).input_ids if trained is not None else None
    progress(0.45, "greedy answer from the adapter model")
    before, before_logits = greedy(model, tok, question, ids)
    progress(0.55, "merging the adapter into the base weights")
    merged = model.merge_and_unload()
    del model
    progress(0.65, "greedy answer from the merged model")
    after, _ = greedy(merged, tok, question, ids)
    agreed, gap = compare_answers(before, before_logits, after)
    check = ProbeCheck(question, tok.decode(before, skip_special_tokens=True),
                       tok.decode(after, skip_special_tokens=True), same=gap is None, agreed_tokens=agreed,
                       gap=gap, tolerance=TIE_TOLERANCE[chosen])
    if not check.passed:
        del merged
        gc.collect()
        raise HubError(f"{check.describe()}, so it was not saved; merge in fp32 (dtype fp32) or publish the "
                       "adapter instead")
    if not check.same:
        notes.append(check.describe())
    progress(0.75, f"saving sharded safetensors (max shard {max_shard_size})")
    before_files = {p.name for p in out_dir.iterdir()}
    merged.save_pretrained(out_dir, max_shard_size=max_shard_size)
    tok.save_pretrained(out_dir)
    del merged
    gc.collect()
    if dev == "cuda":
        import torch

        torch.cuda.empty_cache()
    return sorted({p.name for p in out_dir.iterdir()} - before_files), check
