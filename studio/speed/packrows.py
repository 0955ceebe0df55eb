"""Packed bins as rows: the padding-free collation for attention kernels that build a dense mask (SDPA, eager).

TRL's padding-free collator flattens a micro-batch of ``P`` packed bins into ONE row of ``sum(L)`` tokens and
relies on ``position_ids`` for the boundaries. With SDPA on CPU transformers turns those boundaries into a dense
block-diagonal ``(sum L) x (sum L)`` mask, so attention costs ``(sum L)^2`` although each bin only needs ``L^2``.
:class:`PacksAsRows` keeps each bin its own row (right-padded to the longest bin; bfd bins are nearly full), still
without an attention mask: transformers then finds the packed sequences per row from ``position_ids`` (the pad tail
is a sequence of its own, with labels -100, after every real token), so attention costs ``sum(L^2)``. The trained
tokens, labels and loss are the same as the flattened row's. ``studio_real_tokens`` carries the batch's real token
count (the trainer pops it before the forward).
"""
from __future__ import annotations

from typing import Any

REAL_TOKENS = "studio_real_tokens"


class PacksAsRows:
    """Wraps TRL's padding-free ``DataCollatorForLanguageModeling``: each packed example becomes one row, for the
    batches where that costs fewer FLOPs (``token_cost`` per position, ``pair_cost`` per attention pair, as the
    dense mask computes them) than one flattened row; other batches stay flattened."""

    def __init__(self, inner: Any, token_cost: float = 1.0, pair_cost: float = 0.0) -> None:
        self.inner = inner
        self.pad_token_id = inner.pad_token_id
        self.token_cost, self.pair_cost = token_cost, pair_cost

    def rows_cheaper(self, lengths: list[int]) -> bool:
        total, width, n = sum(lengths), max(lengths), len(lengths)
        flat = self.token_cost * total + self.pair_cost * total * total
        rows = n * (self.token_cost * width + self.pair_cost * width * width)
        return n > 1 and rows < flat

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        if not self.rows_cheaper([len(ex["input_ids"]) for ex in examples]):
            return self.inner(examples)
        parts = [self.inner([ex]) for ex in examples]  # TRL's own collation per bin: labels, position ids
        width = max(p["input_ids"].shape[1] for p in parts)
        ids, labels, pos = [], [], []
        for p in parts:
            n = p["input_ids"].shape[1]
            tail = width - n
            ids.append(torch.nn.functional.pad(p["input_ids"], (0, tail), value=self.pad_token_id))
            labels.append(torch.nn.functional.pad(p["labels"], (0, tail), value=-100))
            pos.append(torch.cat([p["position_ids"], torch.arange(tail, dtype=p["position_ids"].dtype)[None]], 1))
        return {"input_ids": torch.cat(ids), "labels": torch.cat(labels), "position_ids": torch.cat(pos),
                REAL_TOKENS: torch.tensor(sum(p["input_ids"].shape[1] for p in parts))}


def costs(model_config: Any) -> tuple[float, float]:
    """``(per position, per attention pair)`` forward FLOPs of the decoder (the LM head is not per position here)."""
    from studio.modeling import arch_of
    from studio.speed.flops import attention_dims, matmul_params

    a = arch_of(model_config)
    d_attn, layers = attention_dims(model_config)
    return 2.0 * (matmul_params(model_config) - a.vocab_size * a.hidden_size), 4.0 * d_attn * layers


def packs_as_rows_reason(trainer: Any) -> str | None:
    """None when the trainer's padding-free batches should be collated as rows; else why not."""
    if not getattr(trainer, "padding_free", False):
        return "not padding-free"
    if not hasattr(trainer.data_collator, "pad_token_id"):
        return "a custom data collator"
    attn = getattr(trainer.model.config, "_attn_implementation", None)
    if attn not in ("sdpa", "eager"):
        return f"{attn} handles the flattened row without a dense mask"
    return None
