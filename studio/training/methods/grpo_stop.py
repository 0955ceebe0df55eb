"""GRPO's stop at the ``####`` line: a completion ends (with a real end-of-sequence token) once its
``#### <number>`` line is complete, instead of running on to ``max_completion_length``.

The ``answer`` reward reads the first ``####`` part and ``format`` wants that line last, so nothing sampled after it
can earn a reward; ``studio eval`` stops its answers at the same point (:func:`studio.evaluate.answer_end`). The end
token is forced (not merely a stopping criterion) so TRL sees a terminated completion: it keeps the ``####`` line and
the end token, counts it as not clipped, and the policy is taught to end there.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

from studio.evaluate import answer_end

STOP_REWARDS = ("answer", "format")
"""Rewards that read only up to the first complete ``####`` line: with one of them, generation stops there."""


def stops_at_answer(reward_names: Sequence[str]) -> bool:
    """Whether a run with these rewards stops its completions at the ``####`` line."""
    return any(name in STOP_REWARDS for name in reward_names)


class EndAtAnswer:
    """A logits processor: forces the end token for each row whose completion has a complete ``####`` answer
    (``answer_end(text)`` not None); rows that ended by themselves are left alone.

    The completion of a row starts at the width of the first ``input_ids`` it sees (left-padded prompts)."""

    def __init__(self, tokenizer: Any, eos_ids: Sequence[int],
                 end_finder: Callable[[str], int | None] = answer_end) -> None:
        self.tokenizer, self.eos_ids, self.end_finder = tokenizer, [int(i) for i in eos_ids], end_finder
        self.width: int | None = None
        self.ended: list[bool] = []
        self.forced: list[bool] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.width is None:
            self.width = input_ids.shape[1]
            self.ended = [False] * input_ids.shape[0]
            self.forced = [False] * input_ids.shape[0]
        if input_ids.shape[1] == self.width:
            return scores
        last = input_ids[:, -1].tolist()
        for row, token in enumerate(last):
            if self.ended[row]:
                continue
            if token in self.eos_ids:
                self.ended[row] = True
                continue
            # a decode per open row and step: microseconds against the forward pass of the step
            text = self.tokenizer.decode(input_ids[row, self.width:], skip_special_tokens=True)
            if self.end_finder(text) is not None:
                scores[row, :] = float("-inf")
                scores[row, self.eos_ids[0]] = 0.0
                self.ended[row] = self.forced[row] = True
        return scores


def answer_stop(model: Any, tokenizer: Any, eos_ids: Sequence[int]) -> Any:
    """While open, ``model.generate`` (this instance only) adds a fresh :class:`EndAtAnswer` to the logits
    processors of each call; the original ``generate`` is back on exit."""
    return generation_processors(model, [lambda: EndAtAnswer(tokenizer, eos_ids)])


@contextlib.contextmanager
def generation_processors(model: Any, makers: Sequence[Callable[[], Any]]) -> Iterator[None]:
    """While open, each ``model.generate`` call (this instance only) adds one fresh processor from each maker to its
    logits processors; the original ``generate`` is back on exit."""
    own = "generate" in vars(model)
    original = model.generate

    def generate(*args: Any, **kwargs: Any) -> Any:
        from transformers import LogitsProcessorList

        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.extend(make() for make in makers)
        return original(*args, logits_processor=processors, **kwargs)

    model.generate = generate
    try:
        yield
    finally:
        if own:
            model.generate = original
        else:
            del model.generate
