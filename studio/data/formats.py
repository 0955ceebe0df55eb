"""Row formats: detect them from the columns, propose a column mapping, turn rows into chat messages."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import DataError

ROLES: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "prompt_completion": ("prompt", "completion"),
    "instruction": ("instruction", "input", "output"),
    "messages": ("messages",),
    "preference": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
}
"""The roles each format maps columns to."""

OPTIONAL_ROLES = {"input"}
PAIRED, UNPAIRED = "preference", "kto"
"""The preference formats: paired rows (prompt/chosen/rejected) and unpaired labelled rows (prompt/completion/label).
A paired row's prompt may be implicit: chosen and rejected are whole conversations sharing their first turns."""

EXTRA_ROLES = ("reference",)
"""Roles any format may map besides its own: ``reference``, the reference answer rewards compare with (GRPO)."""

CANDIDATES: dict[str, tuple[str, ...]] = {
    "messages": ("messages", "conversations", "conversation", "chat", "dialog"),
    "instruction": ("instruction", "instructions"),
    "input": ("input", "context"),
    "output": ("output", "response"),
    "prompt": ("prompt", "question", "problem", "query", "input", "instruction", "source"),
    "completion": ("completion", "answer", "solution", "response", "output", "target", "chosen"),
    "text": ("text", "content", "document", "body"),
    "chosen": ("chosen", "preferred", "accepted", "better", "chosen_response", "response_chosen"),
    "rejected": ("rejected", "dispreferred", "worse", "rejected_response", "response_rejected"),
    "label": ("label", "desirable", "kto_label", "is_good"),
}
"""Column names (case-insensitive) that suggest a role, best first."""


@dataclass(frozen=True)
class Detected:
    """A format with the column chosen for each of its roles."""

    format: str
    mapping: dict[str, str]


def _find(columns: list[str], role: str, taken: set[str]) -> str | None:
    lower = {c.lower(): c for c in columns if c not in taken}
    return next((lower[c] for c in CANDIDATES[role] if c in lower), None)


def detect_format(columns: list[str], first_row: dict[str, Any] | None = None) -> Detected:
    """Guess the format and mapping from column names (and the first row's value types).

    Raises:
        DataError: no column looks usable.
    """
    first_row = first_row or {}
    chosen, rejected = _find(columns, "chosen", set()), _find(columns, "rejected", set())
    if chosen is not None and rejected is not None:
        prompt = _find(columns, "prompt", {chosen, rejected})
        return Detected(PAIRED, {**({"prompt": prompt} if prompt else {}), "chosen": chosen, "rejected": rejected})
    label = _find(columns, "label", set())
    if label is not None and isinstance(first_row.get(label, True), bool):
        prompt = _find(columns, "prompt", {label})
        completion = _find(columns, "completion", {label, prompt} - {None})
        if prompt is not None and completion is not None:
            return Detected(UNPAIRED, {"prompt": prompt, "completion": completion, "label": label})
    msg = _find(columns, "messages", set())
    if msg is None:
        msg = next((c for c in columns if _looks_like_messages(first_row.get(c))), None)
    if msg is not None:
        return Detected("messages", {"messages": msg})
    ins, out = _find(columns, "instruction", set()), None
    if ins is not None:
        out = _find(columns, "output", {ins})
        if out is not None:
            mapping = {"instruction": ins, "output": out}
            inp = _find(columns, "input", {ins, out})
            if inp is not None:
                mapping["input"] = inp
            return Detected("instruction", mapping)
    prompt = _find(columns, "prompt", set())
    if prompt is not None:
        completion = _find(columns, "completion", {prompt})
        if completion is not None:
            return Detected("prompt_completion", {"prompt": prompt, "completion": completion})
    text = _find(columns, "text", set())
    if text is None:
        strings = [c for c in columns if isinstance(first_row.get(c), str)] if first_row else columns
        text = strings[0] if len(strings) == 1 else None
    if text is not None:
        return Detected("text", {"text": text})
    raise DataError(f"can't tell the format from the columns {', '.join(columns)}; pick a format and map "
                    f"the columns (e.g. prompt -> one column, completion -> another)")


def resolve_mapping(fmt: str, columns: list[str], proposed: dict[str, str], override: dict[str, str]
                    ) -> dict[str, str]:
    """Merge a user's column mapping over the proposed one and check every column exists.

    Raises:
        DataError: a mapped column is missing (the message lists the available ones) or a required role is unmapped.
    """
    mapping = {**proposed, **{k: v for k, v in override.items() if v}}
    roles = ROLES[fmt]
    unknown_roles = [r for r in override if r not in roles and r not in EXTRA_ROLES]
    if unknown_roles:
        raise DataError(f"{unknown_roles[0]!r} is not a role of the {fmt} format; roles: {', '.join(roles)}")
    for role, col in mapping.items():
        if (role in roles or role in EXTRA_ROLES) and col not in columns:
            raise DataError(f"column {col!r} (for {role}) is not in the data; available columns: "
                            f"{', '.join(columns)}")
    for role in roles:
        if role in OPTIONAL_ROLES or (fmt == PAIRED and role == "prompt"):  # a pair's prompt may be implicit
            continue
        if role not in mapping:
            guess = _find(columns, role, set(mapping.values()))
            if guess is None:
                raise DataError(f"the {fmt} format needs a column for {role!r}; available columns: "
                                f"{', '.join(columns)}")
            mapping[role] = guess
    return {r: mapping[r] for r in (*roles, *EXTRA_ROLES) if r in mapping}


def _looks_like_messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and (
        {"role", "content"} <= set(value[0]) or {"from", "value"} <= set(value[0]))


_SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "user": "user",
                   "assistant": "assistant", "bot": "assistant", "model": "assistant"}


def normalize_messages(value: Any, where: str = "row") -> list[dict[str, str]]:
    """Accept role/content or ShareGPT from/value lists; return role/content dicts.

    Raises:
        DataError: the value is not a list of messages.
    """
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: messages must be a non-empty list of {{role, content}}, got {value!r:.80}")
    out = []
    for m in value:
        if not isinstance(m, dict):
            raise DataError(f"{where}: each message must be a mapping with role and content, got {m!r:.80}")
        role = m.get("role", _SHAREGPT_ROLES.get(str(m.get("from", "")).lower()))
        content = m.get("content", m.get("value"))
        if role not in ("system", "user", "assistant", "tool") or content is None:
            raise DataError(f"{where}: a message needs role (system, user or assistant) and content, got "
                            f"{m!r:.80}")
        out.append({"role": role, "content": _as_text(content)})
    return out


def _as_text(content: Any) -> str:
    """Flatten content blocks (``[{'type': 'text', 'text': ...}]``) to plain text."""
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def to_messages(fmt: str, row: dict[str, Any], mapping: dict[str, str], system_prompt: str | None,
                where: str = "row") -> list[dict[str, str]]:
    """A row of any non-text format as chat messages, with the system prompt first when given."""
    if fmt == "messages":
        messages = normalize_messages(row[mapping["messages"]], where)
    elif fmt == "prompt_completion":
        messages = [{"role": "user", "content": _as_text(row[mapping["prompt"]])},
                    {"role": "assistant", "content": _as_text(row[mapping["completion"]])}]
    elif fmt == "instruction":
        user = _as_text(row[mapping["instruction"]])
        extra = row.get(mapping["input"]) if "input" in mapping else None
        if extra:
            user = f"{user}\n\n{_as_text(extra)}"
        messages = [{"role": "user", "content": user},
                    {"role": "assistant", "content": _as_text(row[mapping["output"]])}]
    elif fmt == PAIRED:  # supervised training on a pair learns its chosen answer
        prompt, chosen, _ = pair_messages(row, mapping, None, where)
        messages = prompt + chosen
    elif fmt == UNPAIRED:
        raise DataError(f"{where}: kto rows (prompt/completion/label) train with train.method kto; for sft pick "
                        f"the prompt_completion format")
    else:
        raise DataError("plain text rows can't be turned into chat messages; pick a text template instead")
    if system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return messages


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def _value(row: dict[str, Any], mapping: dict[str, str], role: str, where: str) -> Any:
    column = mapping.get(role, role)
    if column not in row:
        raise DataError(f"{where}: column {column!r} (for {role}) is missing; available columns: {', '.join(row)}")
    return row[column]


def pair_messages(row: dict[str, Any], mapping: dict[str, str], system_prompt: str | None, where: str = "row",
                  answers: tuple[str, ...] = ("chosen", "rejected")
                  ) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """A preference row as chat messages: ``(prompt, chosen, rejected)`` (``answers=("completion",)`` for a KTO
    row: ``rejected`` is then empty). Answers given as text become one assistant turn; with no prompt column the
    prompt is the turns the answers share (TRL's ``extract_prompt``).

    Raises:
        DataError: a missing column, malformed messages, or no prompt at all.
    """
    raw = [_value(row, mapping, a, where) for a in answers]
    for name, value in zip(answers, raw):
        if value is None:
            raise DataError(f"{where}: {name} is empty; every {'pair' if len(answers) == 2 else 'row'} needs "
                            f"{' and '.join(answers)} (mixed paired and unpaired rows can't train together)")
    outs = [normalize_messages(v, f"{where} ({a})") if _is_messages(v)
            else [{"role": "assistant", "content": _as_text(v)}] for a, v in zip(answers, raw)]
    if "prompt" in mapping and mapping["prompt"] in row and row[mapping["prompt"]] is not None:
        p = row[mapping["prompt"]]
        prompt = normalize_messages(p, f"{where} (prompt)") if _is_messages(p) else [
            {"role": "user", "content": _as_text(p)}]
    else:
        n = min(len(o) for o in outs) - 1
        shared = 0
        while shared < n and all(o[shared] == outs[0][shared] for o in outs):
            shared += 1
        if shared == 0:
            raise DataError(f"{where}: no prompt: map a prompt column, or give {' and '.join(answers)} as "
                            f"conversations that share their first turns")
        prompt, outs = outs[0][:shared], [o[shared:] for o in outs]
    if system_prompt and prompt[0]["role"] != "system":
        prompt = [{"role": "system", "content": system_prompt}, *prompt]
    return prompt, outs[0], outs[1] if len(outs) > 1 else []
