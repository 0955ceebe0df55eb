"""Render one row into ``(text, input_ids, loss_mask)``: the contract shared by preview, trainer and chat.

The rules follow TRL 1.16's own tokenization so that what the preview shows is what is trained:
- text rows: ``tokenizer(text + eos)``, every token trained;
- prompt/completion pairs (from a text template): ``tokenizer(prompt)`` and ``tokenizer(prompt + completion + eos)``;
  loss starts where the two diverge (TRL's ``common_prefix_length``);
- chat rows: ``apply_chat_template`` with the assistant mask from ``{% generation %}`` markers (TRL's
  ``assistant_only_loss``), or, for templates without markers, each assistant content plus its end token,
  found in the rendered text (see :mod:`studio.data.chat_masks`).
``loss_on="all"`` keeps the ids and trains every token.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.data.chat_masks import common_prefix, render_chat
from studio.data.formats import ROLES, to_messages
from studio.errors import DataError, TemplateError
from studio.templates import fill, placeholders, resolve, split_at_response


@dataclass(frozen=True)
class RenderSpec:
    """How rows become text; built from a DataConfig plus the detected format and mapping."""

    format: str
    mapping: dict[str, str]
    template: str | None = None
    response_template: str | None = None
    system_prompt: str | None = None
    loss_on: str = "completion"
    max_length: int = 1024
    chat_template: str | None = None
    """A chat template string that overrides the tokenizer's own (e.g. ChatML); None uses the tokenizer's."""

    def uses_chat(self, tokenizer: Any) -> bool:
        """Rows go through a chat template (no text template, a chat format, a template available)."""
        return (self.template is None and self.format != "text"
                and bool(self.chat_template or getattr(tokenizer, "chat_template", None)))

    def check_template(self, columns: list[str]) -> None:
        """Fail early, naming the placeholder, when a text template names a missing column.

        Raises:
            TemplateError: unknown placeholder.
        """
        if self.template is None:
            return
        available = set(columns) | set(self.mapping) | {"system"}
        for name in placeholders(self.template):
            if name not in available:
                raise TemplateError(f"template placeholder {{{name}}} matches no column; available: "
                                    f"{', '.join(sorted(available))}")


@dataclass
class Rendered:
    """One rendered row. ``input_ids``/``loss_mask`` are already cut to ``max_length``."""

    text: str
    input_ids: list[int]
    loss_mask: list[int]
    full_length: int
    segments: list[tuple[str, bool]] = field(default_factory=list)
    """``(text, trained)`` pieces of the kept tokens, for highlighting."""

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.input_ids)

    @property
    def trained_tokens(self) -> int:
        return sum(self.loss_mask)


def make_spec(data_cfg: Any, fmt: str, mapping: dict[str, str], loss_on: str, max_length: int,
              chat_template: str | None = None) -> RenderSpec:
    """A RenderSpec from a DataConfig and a resolved format/mapping."""
    template, response = resolve(data_cfg.template, data_cfg.response_template)
    return RenderSpec(format=fmt, mapping=dict(mapping), template=template, response_template=response,
                      system_prompt=data_cfg.system_prompt or None, loss_on=loss_on, max_length=max_length,
                      chat_template=chat_template)


def render(row: dict[str, Any], tokenizer: Any, spec: RenderSpec, where: str = "row", *,
           with_segments: bool = True) -> Rendered:
    """Render one row (``with_segments=False`` skips the decoded highlight pieces, which only previews need).

    Raises:
        DataError: the row lacks a mapped column or has malformed messages.
        TemplateError: the template names a missing column.
    """
    if spec.template is not None:
        text, ids, mask = _render_template(row, tokenizer, spec)
    elif spec.uses_chat(tokenizer):
        messages = to_messages(spec.format, row, spec.mapping, spec.system_prompt, where)
        text, ids, mask = render_chat(messages, tokenizer, spec.chat_template, where)
    elif spec.format == "text":
        text = _value(row, spec.mapping["text"], where) + tokenizer.eos_token
        ids = tokenizer(text)["input_ids"]
        mask = [1] * len(ids)
    else:  # a pair without chat template: plain concatenation, as TRL does for prompt/completion rows
        prompt, completion = _pair(row, spec, where)
        text, ids, mask = _render_pair(prompt, completion, tokenizer)
    if spec.loss_on == "all":
        mask = [1] * len(ids)
    full = len(ids)
    ids, mask = ids[: spec.max_length], mask[: spec.max_length]
    return Rendered(text=text, input_ids=ids, loss_mask=mask, full_length=full,
                    segments=segments(tokenizer, ids, mask) if with_segments else [])


def _value(row: dict[str, Any], column: str, where: str) -> str:
    if column not in row:
        raise DataError(f"{where}: column {column!r} is missing; available columns: {', '.join(row)}")
    value = row[column]
    return "" if value is None else str(value)


def _pair(row: dict[str, Any], spec: RenderSpec, where: str) -> tuple[str, str]:
    m = spec.mapping
    if spec.format == "prompt_completion":
        return _value(row, m["prompt"], where), _value(row, m["completion"], where)
    if spec.format == "instruction":
        prompt = _value(row, m["instruction"], where)
        if "input" in m and row.get(m["input"]):
            prompt += "\n\n" + _value(row, m["input"], where)
        return prompt + "\n\n", _value(row, m["output"], where)
    raise DataError(f"the {spec.format} format needs a chat template or a text template")


def _render_pair(prompt: str, completion: str, tokenizer: Any) -> tuple[str, list[int], list[int]]:
    if not completion.endswith(tokenizer.eos_token):
        completion += tokenizer.eos_token
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = tokenizer(prompt + completion)["input_ids"]
    start = common_prefix(prompt_ids, ids)
    return prompt + completion, ids, [0] * start + [1] * (len(ids) - start)




def _template_values(row: dict[str, Any], spec: RenderSpec) -> dict[str, Any]:
    values = dict(row)
    for role, column in spec.mapping.items():
        if column in row:
            values.setdefault(role, row[column])
    for role in ROLES.get(spec.format, ()):
        values.setdefault(role, "")
    values.setdefault("system", spec.system_prompt or "")
    return values


def _render_template(row: dict[str, Any], tokenizer: Any, spec: RenderSpec) -> tuple[str, list[int], list[int]]:
    values = _template_values(row, spec)
    text = fill(spec.template, values)
    parts = split_at_response(text, spec.response_template) if spec.response_template else None
    if parts is None and spec.response_template is None:
        parts = _split_at_answer_field(spec, values)
    if parts is None:
        if spec.response_template and spec.loss_on == "completion":  # marker missing: this row trains nothing
            full = text + tokenizer.eos_token
            ids = tokenizer(full)["input_ids"]
            return full, ids, [0] * len(ids)
        full = text + tokenizer.eos_token
        ids = tokenizer(full)["input_ids"]
        return full, ids, [1] * len(ids)
    return _render_pair(parts[0], parts[1], tokenizer)


def _split_at_answer_field(spec: RenderSpec, values: dict[str, Any]) -> tuple[str, str] | None:
    """Without a response marker, the answer starts at the completion/output placeholder if it is last."""
    names = placeholders(spec.template)
    answer_roles = {"completion", "output"}
    answer_cols = {spec.mapping[r] for r in answer_roles if r in spec.mapping}
    last = names[-1] if names else None
    if last is None or (last not in answer_roles and last not in answer_cols):
        return None
    head, _, tail = spec.template.rpartition("{" + last + "}")
    prompt = fill(head, values)
    completion = str(values[last]) + fill(tail, values)
    return prompt, completion


def segments(tokenizer: Any, ids: list[int], mask: list[int]) -> list[tuple[str, bool]]:
    """Decode runs of equally-masked tokens into ``(text, trained)`` pieces."""
    out: list[tuple[str, bool]] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or mask[i] != mask[start]:
            out.append((tokenizer.decode(ids[start:i], skip_special_tokens=False), bool(mask[start])))
            start = i
    return out


def trained_text(tokenizer: Any, rendered: Rendered) -> str:
    """The trained tokens of a row, decoded together."""
    return tokenizer.decode([t for t, m in zip(rendered.input_ids, rendered.loss_mask) if m],
                            skip_special_tokens=False)
