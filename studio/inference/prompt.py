"""Prompts for the playground, built with exactly the template a run trained with.

A message (plus history and a system prompt) becomes a training row whose answer is a sentinel; the row goes
through :func:`studio.data.render`, and the prompt is the rendered token ids up to the first trained token, i.e.
exactly what the model saw before every answer it learned. Chat-formatted runs use the same chat template with
``add_generation_prompt=True``. History is trimmed from the oldest turn so the prompt fits the input limit; the
system prompt and the newest message are always kept.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from studio.data import RenderSpec, render, to_messages
from studio.data.formats import normalize_messages
from studio.errors import StudioError
from studio.prompt_format import PromptFormat
from studio.prompt_format import load as load_prompt_format
from studio.templates import placeholders

SENTINEL = "@@answer@@"
"""Stands in for the answer while rendering a prompt; everything from the first trained token on is dropped."""

ANSWER_ROLE = {"prompt_completion": "completion", "instruction": "output"}
QUESTION_ROLE = {"prompt_completion": "prompt", "instruction": "instruction", "text": "text"}


class PromptTooLong(StudioError):
    """The newest message alone does not fit the input limit."""


@dataclass(frozen=True)
class Prompt:
    """What is sent to the model, and what trimming did."""

    input_ids: list[int]
    text: str
    turns_kept: int
    turns_dropped: int
    limit: int

    @property
    def trimmed(self) -> bool:
        return self.turns_dropped > 0

    @property
    def notice(self) -> str | None:
        """A sentence for the user when history was trimmed, else None."""
        if not self.trimmed:
            return None
        n = self.turns_dropped
        return (f"Trimmed the conversation: dropped the {n} oldest turn{'s' if n != 1 else ''} to fit "
                f"{self.limit} input tokens (the system prompt and the newest turns are kept).")


Turn = tuple[str, str]


def flatten_content(content: Any) -> str:
    """Gradio 6 content blocks (``[{'type': 'text', 'text': ...}]``), a dict or a string, as plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", content.get("content", "")))
    if isinstance(content, (list, tuple)):
        return "".join(flatten_content(c) for c in content)
    return str(content)


def normalize_history(history: Iterable[Any] | None) -> list[Turn]:
    """``(user, assistant)`` pairs from pairs or from a role/content message list (Gradio's messages format).

    System messages are skipped (the system prompt is passed separately); an unanswered user message is dropped.
    """
    turns: list[Turn] = []
    pending: str | None = None
    for item in history or ():
        if isinstance(item, dict):
            role, text = item.get("role"), flatten_content(item.get("content"))
            if role == "user":
                pending = text
            elif role == "assistant" and pending is not None:
                turns.append((pending, text))
                pending = None
            elif role == "assistant" and turns:  # several assistant messages in a row (e.g. streamed parts)
                turns[-1] = (turns[-1][0], turns[-1][1] + text)
        else:
            user, assistant = item
            turns.append((flatten_content(user), flatten_content(assistant)))
    return turns


class PromptBuilder:
    """Builds prompts in a run's training format.

    Args:
        spec: the run's RenderSpec (``studio.data.spec_for``).
        tokenizer: the run's tokenizer (chat template installed as trained).
        max_input_tokens: the input limit history is trimmed to (the run's ``train.max_length`` by default).
        system_prompt: the default system prompt (the run's ``data.system_prompt``).
    """

    def __init__(self, spec: RenderSpec, tokenizer: Any, *, max_input_tokens: int = 1024,
                 system_prompt: str | None = None) -> None:
        self.spec = dataclasses.replace(spec, loss_on="completion", max_length=10 ** 9)
        self.tokenizer = tokenizer
        self.max_input_tokens = max_input_tokens
        self._system_prompt = system_prompt

    @property
    def uses_chat(self) -> bool:
        return self.spec.uses_chat(self.tokenizer)

    @property
    def template_has_system(self) -> bool:
        return self.spec.template is not None and "system" in placeholders(self.spec.template)

    @property
    def default_system_prompt(self) -> str:
        """The system prompt training used: for chat runs and templates with a ``{system}`` field, else empty."""
        if self.uses_chat or self.template_has_system:
            return self._system_prompt or self.spec.system_prompt or ""
        return ""

    # ------------------------------------------------------------------------------------------------- build
    def build(self, message: str, history: Iterable[Any] | None = None, system_prompt: str | None = None,
              *, max_input_tokens: int | None = None) -> Prompt:
        """The prompt for ``message`` after ``history``, trimmed from the oldest turn to the input limit.

        ``system_prompt=None`` uses :attr:`default_system_prompt`; ``""`` means none.

        Raises:
            PromptTooLong: the system prompt and the message alone exceed the limit.
        """
        limit = int(max_input_tokens or self.max_input_tokens)
        turns = normalize_history(history)
        system = self.default_system_prompt if system_prompt is None else system_prompt
        message = flatten_content(message)
        if self.uses_chat:
            return self._build_chat(message, turns, system, limit)
        return self._build_text(message, turns, system, limit)

    def _build_chat(self, message: str, turns: list[Turn], system: str, limit: int) -> Prompt:
        for dropped in range(len(turns) + 1):
            messages = [{"role": "system", "content": system}] if system else []
            for user, assistant in turns[dropped:]:
                messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
            messages.append({"role": "user", "content": message})
            ids = self._chat_ids(messages)
            if len(ids) <= limit:
                return Prompt(ids, self._decode(ids), len(turns) - dropped, dropped, limit)
        raise self._too_long(len(ids), limit)

    def _chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        kwargs = {"chat_template": self.spec.chat_template} if self.spec.chat_template else {}
        out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True, **kwargs)
        return list(out["input_ids"])

    def _build_text(self, message: str, turns: list[Turn], system: str, limit: int) -> Prompt:
        use_field = self.template_has_system
        current = self._row_prompt_ids(self._row(message, None, system if use_field else ""))
        past = [self._row_ids(self._row(u, a, system if use_field else "")) for u, a in turns]
        prefix = [] if use_field or not system else \
            self.tokenizer(system + "\n\n", add_special_tokens=False)["input_ids"]
        total = len(prefix) + len(current) + sum(map(len, past))
        dropped = 0
        while total > limit and dropped < len(past):
            total -= len(past[dropped])
            dropped += 1
        if total > limit:
            raise self._too_long(total, limit)
        ids = [t for p in past[dropped:] for t in p] + current
        if prefix:
            bos = self.tokenizer.bos_token_id
            at = 1 if ids and bos is not None and ids[0] == bos else 0
            ids = ids[:at] + list(prefix) + ids[at:]
        return Prompt(ids, self._decode(ids), len(turns) - dropped, dropped, limit)

    # ------------------------------------------------------------------------------------------------ rows
    def _row(self, question: str, answer: str | None, system: str) -> dict[str, Any]:
        """A training row in the run's format with ``question`` and ``answer`` (the sentinel when None)."""
        spec = self.spec
        row: dict[str, Any] = {}
        if spec.template is not None:  # other placeholders (extra columns) stay empty
            roles = set(ANSWER_ROLE.values()) | set(QUESTION_ROLE.values()) | {"input", "system"}
            row.update({p: "" for p in placeholders(spec.template) if p not in roles})
            row["system"] = system
        for role, column in spec.mapping.items():
            row.setdefault(column, "")
        q_role, a_role = QUESTION_ROLE.get(spec.format), ANSWER_ROLE.get(spec.format)
        if q_role is not None:
            row[spec.mapping[q_role]] = question
        if a_role is not None:
            row[spec.mapping[a_role]] = SENTINEL if answer is None else answer
        elif answer is not None and spec.format == "text":
            row[spec.mapping["text"]] = question + answer
        return row

    def _row_ids(self, row: dict[str, Any]) -> list[int]:
        return list(render(row, self.tokenizer, self.spec, where="chat turn").input_ids)

    def _row_prompt_ids(self, row: dict[str, Any]) -> list[int]:
        """Rendered ids up to the first trained token: the exact prompt the model learned to answer."""
        r = render(row, self.tokenizer, self.spec, where="chat prompt")
        ids, mask = list(r.input_ids), list(r.loss_mask)
        if ANSWER_ROLE.get(self.spec.format) is None:  # plain text: continue it (drop the end-of-text token)
            return ids[:-1] if ids and ids[-1] == self.tokenizer.eos_token_id else ids
        if 1 in mask:
            start = mask.index(1)
            if SENTINEL not in self._decode(ids[:start]):
                return ids[:start]
        at = r.text.find(SENTINEL)  # the template has no answer marker: cut the text before the sentinel
        return list(self.tokenizer(r.text[:at] if at >= 0 else r.text)["input_ids"])

    def for_row(self, row: dict[str, Any]) -> tuple[Prompt, str | None]:
        """The prompt of a dataset row (its answer removed) and the reference answer text (None if it has none)."""
        spec = self.spec
        if self.uses_chat:
            messages = to_messages(spec.format, row, spec.mapping, spec.system_prompt)
            last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
            reference = messages[last]["content"] if last is not None else None
            ids = self._chat_ids(messages[:last] if last is not None else messages)
            return Prompt(ids, self._decode(ids), 0, 0, len(ids)), reference
        a_role = ANSWER_ROLE.get(spec.format)
        if a_role is None:
            ids = self._row_prompt_ids(dict(row))
            return Prompt(ids, self._decode(ids), 0, 0, len(ids)), None
        column = spec.mapping[a_role]
        reference = row.get(column)
        ids = self._row_prompt_ids({**row, column: SENTINEL})
        return Prompt(ids, self._decode(ids), 0, 0, len(ids)), None if reference is None else str(reference)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def _too_long(self, n: int, limit: int) -> PromptTooLong:
        return PromptTooLong(f"the message is {n} tokens with the system prompt, over the input limit of {limit} "
                             f"tokens; shorten it or raise the max input tokens")


def builder_for(fmt: PromptFormat, tokenizer: Any, *, max_input_tokens: int | None = None) -> PromptBuilder:
    """A PromptBuilder that renders prompts as the run whose saved format is ``fmt`` trained."""
    return PromptBuilder(fmt.spec(), tokenizer, max_input_tokens=max_input_tokens or fmt.max_length,
                         system_prompt=fmt.default_system_prompt)


def messages_of(row: dict[str, Any], spec: RenderSpec) -> list[dict[str, str]]:
    """A row's chat messages (for showing a held-out row)."""
    if spec.format == "messages":
        return normalize_messages(row[spec.mapping["messages"]])
    return to_messages(spec.format, row, spec.mapping, spec.system_prompt)


def run_prompt_setup(cfg: Any, tokenizer: Any, run_dir: str | Path | None = None) -> tuple[PromptBuilder, Any]:
    """The PromptBuilder of a run (its data spec, input limit and system prompt) and its loaded data (or None).

    A run folder with a saved ``prompt_format.json`` renders exactly as trained without reading the data (None is
    returned for it). Older runs: the data is loaded to resolve the format and column mapping as training did; if
    it can't be read (moved file, Hub offline) the format is taken from the config alone.
    """
    from studio.data import load_data, make_spec, spec_for
    from studio.data.formats import ROLES
    saved = load_prompt_format(run_dir)
    if saved is not None:
        return builder_for(saved, tokenizer, max_input_tokens=cfg.train.max_length), None
    loaded = None
    try:
        loaded = load_data(cfg.data)
        spec = spec_for(cfg, loaded, tokenizer)
    except StudioError:
        fmt = cfg.data.format
        if fmt == "auto":
            fmt = "prompt_completion" if cfg.data.template else "messages"
        columns = cfg.data.sources[0].columns if cfg.data.sources else {}
        mapping = {r: columns.get(r, r) for r in ROLES[fmt]}
        spec = make_spec(cfg.data, fmt, mapping, cfg.train.loss_on, cfg.train.max_length)
    system = cfg.data.system_prompt
    if not system and loaded is not None and spec.format == "messages" and len(loaded.dataset):
        from studio.data.formats import normalize_messages

        first = normalize_messages(loaded.dataset[0][spec.mapping["messages"]])
        system = first[0]["content"] if first and first[0]["role"] == "system" else None
    builder = PromptBuilder(spec, tokenizer, max_input_tokens=cfg.train.max_length, system_prompt=system)
    return builder, loaded
