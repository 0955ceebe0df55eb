"""The task metric at each evaluation during training: greedy answers to the first held-out rows, their final answer
extracted as ``studio eval`` does (after ``####``, or the run's regex), compared with the reference's; the share
correct is added to the evaluation's metrics as ``eval_accuracy`` (so the best checkpoint can be chosen by it), and
the seconds spent answering as ``eval_accuracy_runtime`` (``eval_runtime`` is measured before the answers)."""
from __future__ import annotations

import math
import time
from typing import Any

GEN_BATCH = 8
"""Rows answered together (``generate_texts``' batch)."""


def held_out_questions(eval_dataset: Any, tokenizer: Any, rows: int) -> list[tuple[list[int], str]]:
    """``(prompt ids, reference answer text)`` of the first ``rows`` SFT rows that have trained tokens (the prompt is
    everything before the first trained token)."""
    out = []
    if eval_dataset is None or "completion_mask" not in eval_dataset.column_names:
        return out
    for row in eval_dataset:
        ids, mask = list(row["input_ids"]), list(row["completion_mask"])
        if 1 not in mask:
            continue
        start = mask.index(1)
        answer = [t for t, m in zip(ids, mask) if m]
        out.append((ids[:start], tokenizer.decode(answer, skip_special_tokens=True)))
        if len(out) >= rows:
            break
    return out


def task_metric_callback(eval_dataset: Any, tokenizer: Any, *, rows: int, extractor: Any = None) -> Any:
    """A ``TrainerCallback`` whose ``on_evaluate`` adds ``eval_accuracy`` to the evaluation's metrics."""
    from transformers import TrainerCallback

    from studio.data.checks import token_budget
    from studio.evaluate import AnswerExtractor
    from studio.inference.batch import generate_texts
    from studio.inference.params import GenerationParams

    extractor = extractor or AnswerExtractor()
    questions = [(p, r, extractor.extract(r)) for p, r in held_out_questions(eval_dataset, tokenizer, rows)]
    questions = [q for q in questions if q[2] is not None]
    budget = token_budget([r for _, r, _ in questions], tokenizer)

    class TaskMetric(TrainerCallback):
        answer_passes = math.ceil(len(questions) / GEN_BATCH) * budget
        """Sequential decoding passes of one evaluation's answers (batches x new tokens), for the ETA's cost model."""

        def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
            if metrics is None or model is None or not questions:
                return
            import torch

            was_training = model.training
            model.eval()
            began = time.perf_counter()
            try:
                with torch.no_grad():
                    texts = generate_texts(model, tokenizer, [p for p, _, _ in questions],
                                           GenerationParams(max_new_tokens=budget), batch_size=GEN_BATCH,
                                           answer_end=extractor.end_finder())
            finally:
                if was_training:
                    model.train()
            metrics["eval_accuracy_runtime"] = round(time.perf_counter() - began, 4)
            correct = sum(extractor.extract(t) == ref for t, (_, _, ref) in zip(texts, questions))
            metrics["eval_accuracy"] = correct / len(questions)

    return TaskMetric()
