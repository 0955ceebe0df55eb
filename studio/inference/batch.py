"""Non-streamed, batched generation and held-out loss: what evaluation and training probes use.

Prompts are left-padded into batches (``tokenizer.pad(..., padding_side="left")`` per call: the shared tokenizer is
not changed); the same private-seed sampler and stop strings as the playground apply.
``base=True`` runs inside ``model.disable_adapter()``. Callers that share the model with the playground hold
the engine's lock (``ChatEngine.generate_batch`` / ``ChatEngine.loss``).
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Callable, Sequence

from studio.inference.params import GREEDY, GenerationParams, cut_at_stop, generate_kwargs
from studio.modeling.kbit_cpu import readable_errors


def adapter_context(model: Any, base: bool) -> Any:
    """``model.disable_adapter()`` when ``base`` and the model has adapters, else a no-op context."""
    if base and hasattr(model, "disable_adapter"):
        return model.disable_adapter()
    return contextlib.nullcontext()


def _device(model: Any) -> Any:
    return model.get_input_embeddings().weight.device


def generate_texts(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]],
                   params: GenerationParams = GREEDY, *, base: bool = False, batch_size: int = 8,
                   progress: Callable[[int], None] | None = None, stop_event: Any = None,
                   answer_end: Callable[[str], int | None] | None = None) -> list[str]:
    """Answers (decoded, special tokens skipped, cut at stop strings) to token-id prompts.

    Args:
        model: a model or PeftModel (its active adapter answers unless ``base``).
        prompts: token ids per prompt.
        progress: called with the number of prompts finished, as each one finishes.
        stop_event: a ``threading.Event`` that ends the remaining work early (answers so far are returned).
        answer_end: ``answer_end(text)`` -> where a complete answer ends, or None while it is not complete (e.g.
            :func:`studio.evaluate.answer_end`); each row stops generating there and is cut there. Rows are
            computed as in a full-length batch, so the answers equal the full-length ones cut at that point.
    """
    import torch

    out: list[str] = []
    for start in range(0, len(prompts), max(1, batch_size)):
        if stop_event is not None and stop_event.is_set():
            break
        chunk = [list(p) for p in prompts[start:start + batch_size]]
        # left padding, so every answer starts at the same column
        batch = tokenizer.pad({"input_ids": chunk}, padding=True, padding_side="left", return_tensors="pt",
                              return_attention_mask=True)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        width = ids.shape[1]
        device = _device(model)
        kwargs = generate_kwargs(params, tokenizer, model, (stop_event,) if stop_event is not None else ())
        kwargs["stopping_criteria"].append(RowsDone(tokenizer, width, kwargs["generation_config"].eos_token_id,
                                                    answer_end, None if progress is None else
                                                    (lambda k, s=start: progress(s + k))))
        with adapter_context(model, base), torch.inference_mode(), warnings.catch_warnings(), readable_errors():
            warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
        for row in gen[:, width:].tolist():
            text = cut_at_stop(tokenizer.decode(row, skip_special_tokens=True), params.stop)[0]
            end = answer_end(text) if answer_end is not None else None
            out.append(text[:end] if end is not None else text)
        if progress is not None:
            progress(len(out))
    return out


class RowsDone:
    """A stopping criterion for a batch of answers: a row is done at eos or, with ``answer_end``, once its answer
    is complete (kept by hand: ``#### 42`` is complete only once the number has ended, which no fixed stop string
    for ``StopStringCriteria`` says); ``on_done(n)`` hears how many rows of the batch are done each time one more is."""

    def __init__(self, tokenizer: Any, prompt_len: int, eos: Any, answer_end: Callable[[str], int | None] | None,
                 on_done: Callable[[int], None] | None = None) -> None:
        self.tokenizer, self.prompt_len, self.answer_end, self.on_done = tokenizer, prompt_len, answer_end, on_done
        self.eos = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
        self.done: list[bool] = []

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch

        if not self.done:
            self.done = [False] * input_ids.shape[0]
        before = sum(self.done)
        last = input_ids[:, -1].tolist()
        for row, token in enumerate(last):
            if self.done[row]:
                continue
            if token in self.eos:
                self.done[row] = True
            elif self.answer_end is not None:  # a decode per row and step: microseconds against a forward pass
                text = self.tokenizer.decode(input_ids[row, self.prompt_len:], skip_special_tokens=True)
                self.done[row] = self.answer_end(text) is not None
        if self.on_done is not None and sum(self.done) > before:
            self.on_done(sum(self.done))
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def token_nll(model: Any, rows: Sequence[tuple[Sequence[int], Sequence[int]]], *, pad_id: int, base: bool = False,
              batch_size: int = 4, progress: Callable[[int], None] | None = None) -> list[tuple[float, int]]:
    """Summed negative log-likelihood and token count of the trained tokens of each row.

    Args:
        rows: ``(input_ids, loss_mask)`` per row, as ``studio.data.render`` gives them; the loss is taken on the
            tokens whose mask is 1 (predicted from the tokens before them), exactly as in training.
    """
    import torch

    out: list[tuple[float, int]] = []
    for start in range(0, len(rows), max(1, batch_size)):
        chunk = rows[start:start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        for i, (row_ids, row_mask) in enumerate(chunk):
            n = len(row_ids)
            ids[i, :n] = torch.tensor(list(row_ids))
            attn[i, :n] = 1
            m = torch.tensor(list(row_mask), dtype=torch.bool)
            labels[i, :n] = torch.where(m, ids[i, :n], torch.full_like(ids[i, :n], -100))
        device = _device(model)
        with adapter_context(model, base), torch.inference_mode(), warnings.catch_warnings(), readable_errors():
            warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
            logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits
        shift_logits = logits[:, :-1, :].float()
        shift_labels = labels[:, 1:].to(logits.device)
        nll = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                                                shift_labels.reshape(-1), ignore_index=-100, reduction="none")
        nll = nll.view(shift_labels.shape)
        valid = shift_labels != -100
        for i in range(len(chunk)):
            out.append((float(nll[i][valid[i]].sum()), int(valid[i].sum())))
        del logits
        if progress is not None:
            progress(len(out))
    return out


def mean_loss(parts: Sequence[tuple[float, int]]) -> tuple[float | None, float | None]:
    """Token-weighted mean loss and its perplexity (None when there are no tokens)."""
    total, n = sum(p[0] for p in parts), sum(p[1] for p in parts)
    if n == 0:
        return None, None
    loss = total / n
    return loss, math.exp(loss) if loss < 700 else float("inf")
