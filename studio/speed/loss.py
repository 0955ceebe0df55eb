"""The LM head and loss of a training step without Triton (CPU): only the trained positions go through the head.

TRL 1.16 patches the model with ``add_fused_lm_head(outputs=("log_probs", "entropy", "is_top1"))``. Where Triton
is missing it scores *every* position (prompt and padding included) through the whole vocabulary, computes entropy
and top-1 accuracy on every step, and recomputes the head's matmul in backward. SmolLM2's head is 49,152 x 576, so
that is most of a CPU step's LM-head time. :func:`head_loss` computes the same loss (the summed negative
log-likelihood of the trained next tokens over ``num_items_in_batch``) from the decoder's hidden states at the
trained positions only, keeps those logits for backward instead of recomputing them, and computes the entropy and
accuracy metrics only when asked (the trainer asks on logging steps). :func:`fast_path_reason` says when the
trainer must keep TRL's own path (multi-process, custom losses, logit scaling, prompt learning, a Triton device).
"""
from __future__ import annotations

from typing import Any

KEEP_LOGITS = 2 ** 27
"""Most logits (fp32 elements, 512 MB) kept from forward to backward; above it, chunks recompute theirs."""
CHUNK = 2 ** 25
"""Logits per chunk in recompute mode (128 MB fp32)."""
_SCALES = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def fast_path_reason(trainer: Any, model: Any) -> str | None:
    """None when :func:`head_loss` computes exactly what TRL's ``compute_loss`` would; else why not."""
    import torch

    args = trainer.args
    if trainer.accelerator.num_processes != 1:
        return "several processes (TRL gathers the token counts)"
    if trainer.compute_loss_func is not None or trainer.label_smoother is not None or args.loss_type != "nll":
        return "a custom loss, label smoothing or DFT"
    if getattr(trainer, "aux_loss_enabled", False):
        return "a mixture-of-experts auxiliary loss"
    base = _base(model)
    if base is None or not isinstance(base.get_output_embeddings(), torch.nn.Linear):
        return "no plain linear LM head"
    text = base.config.get_text_config()
    if any(getattr(text, k, None) not in (None, 1, 1.0) for k in _SCALES):
        return "scaled or soft-capped logits"
    peft_cfg = getattr(model, "peft_config", None)
    if peft_cfg and any(getattr(c, "is_prompt_learning", False) for c in peft_cfg.values()):
        return "prompt-learning adapters"
    if base.get_output_embeddings().weight.device.type != "cpu":
        return "a GPU: TRL's Triton kernel scores only the trained positions already"
    return None


def _base(model: Any) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base if hasattr(base, "get_output_embeddings") and hasattr(base, "base_model") else None


def head_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None, *,
              metrics: bool = False) -> tuple[Any, dict[str, Any]]:
    """``(loss, stats)`` for one micro-batch: the decoder forward (LoRA active), then the head on trained positions.

    ``stats`` holds ``num_valid`` (trained tokens) and, with ``metrics``, ``entropy_sum`` and ``num_correct``
    (the label is the first argmax, as TRL's ``is_top1``), all detached tensors.
    """
    import torch

    base = _base(model)
    kwargs = {k: v for k, v in inputs.items() if k not in ("labels", "num_items_in_batch")}
    kwargs["use_cache"] = False
    hidden = base.base_model(**kwargs).last_hidden_state[:, :-1]
    labels = inputs["labels"][:, 1:].to(hidden.device)
    mask = labels != -100
    head = base.get_output_embeddings()
    h, t = hidden[mask], labels[mask]
    n, vocab = h.shape[0], head.weight.shape[0]
    stats: dict[str, Any] = {"num_valid": mask.sum()}
    if n * vocab <= KEEP_LOGITS:
        parts = [HeadNLL.apply(h, head.weight, head.bias, t, metrics, True)]
    else:
        step = max(1, CHUNK // vocab)
        parts = [HeadNLL.apply(h[i:i + step], head.weight, head.bias, t[i:i + step], metrics, False)
                 for i in range(0, n, step)]
    nll = sum(p[0] for p in parts) if n else hidden.sum() * 0.0
    if metrics:
        stats["entropy_sum"] = sum(p[1] for p in parts) if n else torch.zeros(())
        stats["num_correct"] = sum(p[2] for p in parts) if n else torch.zeros(())
    denom = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    return nll / torch.as_tensor(denom, device=nll.device), stats


def _autograd_function() -> type:
    import torch

    class _HeadNLL(torch.autograd.Function):
        """Summed NLL of ``targets`` under ``hidden @ weight.T (+ bias)``; optional entropy sum and top-1 count.

        Forward keeps the fp32 logits (``keep``) and backward turns them into the softmax gradient in place; without
        ``keep`` backward recomputes them (bounded memory). Frozen head weights get no gradient work.
        """

        @staticmethod
        def forward(ctx, hidden, weight, bias, targets, metrics: bool, keep: bool):
            logits = _fp32_logits(hidden, weight, bias)
            lse = torch.logsumexp(logits, dim=-1)
            nll = (lse - logits.gather(1, targets.unsqueeze(1)).squeeze(1)).sum()
            ent = top1 = None
            if metrics:
                probs = torch.softmax(logits, dim=-1)
                ent = (lse - torch.linalg.vecdot(probs, logits)).sum()
                del probs
                top1 = (logits.argmax(dim=-1) == targets).sum()
            ctx.save_for_backward(hidden, weight, bias, targets, lse)
            ctx.logits = logits if keep else None
            outs = (nll, ent if ent is not None else nll.new_zeros(()),
                    top1 if top1 is not None else targets.new_zeros(()))
            ctx.mark_non_differentiable(outs[1], outs[2])
            return outs

        @staticmethod
        def backward(ctx, grad_nll, *_):
            hidden, weight, bias, targets, lse = ctx.saved_tensors
            logits = ctx.logits
            ctx.logits = None
            if logits is None:
                logits = _fp32_logits(hidden, weight, bias)
            grad = logits.sub_(lse.unsqueeze(1)).exp_()  # softmax, in place
            grad[torch.arange(grad.shape[0], device=grad.device), targets] -= 1.0
            grad.mul_(grad_nll)
            with torch.autocast(device_type=hidden.device.type, enabled=False):
                gh = (grad @ weight.float()).to(hidden.dtype) if ctx.needs_input_grad[0] else None
                gw = (grad.t() @ hidden.float()).to(weight.dtype) if ctx.needs_input_grad[1] else None
            gb = grad.sum(0).to(bias.dtype) if bias is not None and ctx.needs_input_grad[2] else None
            return gh, gw, gb, None, None, None

    def _fp32_logits(hidden, weight, bias):
        """The head in fp32 whatever the base's dtype and autocast say: with a bf16 base (CPU bf16) the logits and
        the loss keep fp32 precision; only the trained positions come here, so it costs little."""
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return torch.nn.functional.linear(hidden.float(), weight.float(),
                                              bias.float() if bias is not None else None)

    return _HeadNLL


class _Lazy:
    """Builds the autograd Function on first use, so importing this module does not import torch."""

    _fn: Any = None

    def apply(self, *args: Any) -> Any:
        if _Lazy._fn is None:
            _Lazy._fn = _autograd_function()
        return _Lazy._fn.apply(*args)


HeadNLL = _Lazy()
