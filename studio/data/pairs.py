"""Preference rows: a pair (prompt, chosen, rejected) or a labelled answer (prompt, completion, label), rendered into
token ids the way TRL 1.16's DPO/KTO trainers tokenize them, so the preview, the trainer and the eval agree.

The rule (TRL's ``DPOTrainer._prepare_dataset``): the prompt is tokenized alone (with the generation prompt for chat
rows) and with each answer; the answer starts where the two token lists diverge; every answer token is trained;
``max_length`` cuts prompt + answer from the end (``truncation_mode="keep_start"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.data.chat_masks import common_prefix
from studio.data.formats import PAIRED, UNPAIRED, _as_text, _is_messages, _value, pair_messages
from studio.errors import DataError

__all__ = ["RenderedAnswer", "RenderedPair", "pair_messages", "render_pair", "unpair"]


@dataclass(frozen=True)
class RenderedAnswer:
    """One answer after its prompt: its whole token ids (before the cut) and its text."""

    ids: list[int]
    text: str
    label: bool
    """True: chosen (paired) or desirable (KTO); False: rejected / undesirable."""
    room: int
    """Answer tokens that fit in ``max_length`` after the prompt (the rest is cut and not trained)."""
    blank: bool = False
    """The answer's own text is empty (only the template's end tokens would be trained)."""

    @property
    def kept_ids(self) -> list[int]:
        return self.ids[: self.room]

    @property
    def trained(self) -> int:
        return min(len(self.ids), self.room)

    @property
    def cut(self) -> int:
        """Answer tokens cut by ``max_length``."""
        return max(0, len(self.ids) - self.room)


@dataclass(frozen=True)
class RenderedPair:
    """A rendered preference row: the prompt once and its answers (``rejected`` is None for an unpaired KTO row,
    whose one answer is ``chosen`` with its label). ``*_ids``/``*_mask`` are the kept sequences the trainer sees:
    prompt + answer cut to ``max_length``, mask 1 on the answer tokens (the trainer's labels)."""

    prompt_ids: list[int]
    prompt_text: str
    chosen: RenderedAnswer
    rejected: RenderedAnswer | None
    max_length: int

    def sequence(self, side: str = "chosen") -> tuple[list[int], list[int]]:
        """``(input_ids, trained mask)`` of prompt + one answer, cut to ``max_length``."""
        answer = getattr(self, side)
        ids = (self.prompt_ids + answer.ids)[: self.max_length]
        mask = ([0] * len(self.prompt_ids) + [1] * len(answer.ids))[: self.max_length]
        return ids, mask

    @property
    def chosen_ids(self) -> list[int]:
        return self.sequence("chosen")[0]

    @property
    def chosen_mask(self) -> list[int]:
        return self.sequence("chosen")[1]

    @property
    def rejected_ids(self) -> list[int]:
        return self.sequence("rejected")[0] if self.rejected is not None else []

    @property
    def rejected_mask(self) -> list[int]:
        return self.sequence("rejected")[1] if self.rejected is not None else []

    @property
    def texts(self) -> dict[str, str]:
        out = {"prompt": self.prompt_text, "chosen": self.chosen.text}
        if self.rejected is not None:
            out["rejected"] = self.rejected.text
        return out

    @property
    def prompt_cut(self) -> bool:
        """The prompt alone fills ``max_length``: nothing of the answers is trained (TRL drops such rows)."""
        return len(self.prompt_ids) >= self.max_length

    def trainer_row(self) -> dict[str, Any]:
        """The pre-tokenized row TRL's DPO collator takes (answers cut so prompt + answer fits ``max_length``)."""
        row = {"prompt_ids": self.prompt_ids, "chosen_ids": self.chosen.kept_ids}
        if self.rejected is not None:
            row["rejected_ids"] = self.rejected.kept_ids
        return row


def _text_of(value: Any) -> str:
    if _is_messages(value):
        return "".join(_as_text(m.get("content", m.get("value", ""))) for m in value)
    return "" if value is None else _as_text(value)


def _tokenize_chat(tokenizer: Any, messages: list[dict[str, str]], chat_template: str | None, where: str,
                   generation_prompt: bool = False) -> list[int]:
    kwargs = {"chat_template": chat_template} if chat_template else {}
    try:
        out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            add_generation_prompt=generation_prompt, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a template's own refusal, as one line
        raise DataError(f"{where}: the chat template refused this row: {exc}") from None
    return list(out["input_ids"])


def render_pair(row: dict[str, Any], tokenizer: Any, spec: Any, where: str = "row") -> RenderedPair:
    """Render a ``preference`` row (or a ``kto`` row: one answer with its label) into a :class:`RenderedPair`.

    ``spec`` is the run's :class:`~studio.data.render.RenderSpec` (format, mapping, system prompt, max_length,
    chat template); chat templates are used where the tokenizer has one, plain text otherwise.

    Raises:
        DataError: missing columns, malformed messages, no prompt, or a text template (preference rows use the
            chat template or plain text).
    """
    if spec.template is not None:
        raise DataError("preference rows are rendered with the chat template (or as plain text); clear "
                        "data.template")
    unpaired = spec.format == UNPAIRED
    if spec.format not in (PAIRED, UNPAIRED):
        raise DataError(f"render_pair needs preference or kto rows, got the {spec.format} format")
    answers = ("completion",) if unpaired else ("chosen", "rejected")
    labels = [_label(row, spec.mapping, where)] if unpaired else [True, False]
    use_chat = bool(spec.chat_template or getattr(tokenizer, "chat_template", None))
    if use_chat:
        prompt, *outs = pair_messages(row, spec.mapping, spec.system_prompt, where, answers)
        outs = outs[: len(answers)]
        blanks = [not "".join(m["content"] for m in o).strip() for o in outs]
        prompt_ids = _tokenize_chat(tokenizer, prompt, spec.chat_template, where, generation_prompt=True)
        fulls = [_tokenize_chat(tokenizer, prompt + o, spec.chat_template, where) for o in outs]
    else:
        if "prompt" not in spec.mapping:
            raise DataError(f"{where}: plain-text pairs need a prompt column (this tokenizer has no chat template)")
        prompt_text = (spec.system_prompt + "\n\n" if spec.system_prompt else "") + _text_of(
            _value(row, spec.mapping, "prompt", where))
        raw = [_value(row, spec.mapping, a, where) for a in answers]
        if any(v is None for v in raw):
            raise DataError(f"{where}: {answers[[v is None for v in raw].index(True)]} is empty; every row needs "
                            f"{' and '.join(answers)} (mixed paired and unpaired rows can't train together)")
        texts = [_text_of(v) for v in raw]
        blanks = [not t.strip() for t in texts]
        eos = tokenizer.eos_token or ""
        texts = [t if t.endswith(eos) else t + eos for t in texts]
        prompt_ids = list(tokenizer(prompt_text)["input_ids"])
        fulls = [list(tokenizer(prompt_text + t)["input_ids"]) for t in texts]
    start = min(common_prefix(prompt_ids, f) for f in fulls)
    prompt_ids = prompt_ids[:start]
    room = max(0, spec.max_length - start)
    rendered = [RenderedAnswer(ids=f[start:], text=tokenizer.decode(f[start:], skip_special_tokens=False),
                               label=lab, room=room, blank=b) for f, lab, b in zip(fulls, labels, blanks)]
    return RenderedPair(prompt_ids=prompt_ids, prompt_text=tokenizer.decode(prompt_ids, skip_special_tokens=False),
                        chosen=rendered[0], rejected=rendered[1] if len(rendered) > 1 else None,
                        max_length=spec.max_length)


def _label(row: dict[str, Any], mapping: dict[str, str], where: str) -> bool:
    value = _value(row, mapping, "label", where)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    raise DataError(f"{where}: label must be true or false (desirable or not), got {value!r:.40}")


def unpair(row: dict[str, Any], mapping: dict[str, str]) -> list[dict[str, Any]]:
    """A paired row as two KTO rows: ``{prompt, completion, label}`` with the chosen answer desirable (True) and the
    rejected one undesirable (False). An implicit prompt stays implicit (each completion keeps the shared turns)."""
    prompt = row.get(mapping.get("prompt", "prompt")) if "prompt" in mapping else None
    out = []
    for role, label in (("chosen", True), ("rejected", False)):
        out.append({"prompt": prompt, "completion": row.get(mapping.get(role, role)), "label": label})
    return out
