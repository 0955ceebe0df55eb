"""Assistant-only loss masks for chat rows, with or without ``{% generation %}`` markers.

With markers, transformers computes the mask (``return_assistant_tokens_mask``, what TRL's ``assistant_only_loss``
trains). Without them (most shipped templates), each assistant turn's span is found in the rendered *text*:

1. the turn starts where ``messages[:i]`` rendered with ``add_generation_prompt=True`` stops agreeing with the
   whole conversation, and ends where ``messages[:i + 1]`` does (a token-level comparison when the texts diverge);
2. inside that window, the assistant content (as given, or stripped, for templates that ``| trim``) is located;
3. the trained span is the content plus the turn's end marker: the first non-blank run after it (``<|im_end|>``,
   ``<|eot_id|>``, ``</s>``, ``<end_of_turn>``), never the next turn's header nor the generation-prompt header.

Fallbacks: a turn the template renders differently when it is last (Qwen3's empty think block) is searched after
the window, and its end marker is the special token that follows it; a template refusing partial conversations
has its turns found in order after the messages before them; content the template rewrites (``| upper``) trains
the turn's rendered text. A turn found nowhere is a :class:`DataError`, never a silent zero.

Chars become tokens through the tokenizer's offsets: a token is trained when it overlaps a trained span (so a
token merging a header's space with the first word still trains). The ids are ``tokenizer(text,
add_special_tokens=False)``, exactly what ``apply_chat_template(tokenize=True)`` gives.
"""
from __future__ import annotations

import re
from typing import Any

from studio.errors import DataError

GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
"""The block tag transformers (and TRL) look for: ``{% generation %}``, ``{%- generation -%}``."""

_END_RUN = re.compile(r"[ \t]*\S+")
"""What may follow the content and still belong to the turn: optional spaces then one non-blank run."""

Span = tuple[int, int]


def has_generation_markers(template: Any) -> bool:
    """Whether a chat template (a string, or a dict of named variants) has ``{% generation %}`` block tags."""
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), "")
    return bool(template) and GENERATION_TAG.search(str(template)) is not None


def render_chat(messages: list[dict[str, str]], tokenizer: Any, chat_template: str | None, where: str = "row"
                ) -> tuple[str, list[int], list[int]]:
    """``(text, input_ids, loss_mask)`` of a conversation; the mask trains every assistant turn.

    Raises:
        DataError: the template refuses the conversation, or an assistant turn can't be found in its output.
    """
    kwargs = {"chat_template": chat_template} if chat_template else {}
    text = _render(messages, tokenizer, kwargs, where)
    if has_generation_markers(chat_template or tokenizer.chat_template):
        out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True, **kwargs)
        return text, list(out["input_ids"]), list(out["assistant_masks"])
    ids, offsets = _tokenize(tokenizer, text)
    spans = assistant_spans(messages, text, tokenizer, kwargs, ids, offsets, where)
    return text, ids, _mask_from_spans(tokenizer, text, ids, offsets, spans)


def assistant_spans(messages: list[dict[str, str]], text: str, tokenizer: Any, kwargs: dict[str, Any],
                    ids: list[int], offsets: list[Span] | None, where: str = "row") -> list[Span]:
    """Character spans of ``text`` (the whole render) to train: each assistant content plus its end marker.

    Raises:
        DataError: an assistant turn can't be located in ``text``.
    """
    spans: list[Span] = []
    cursor = 0  # the end of the last span: turns are in order
    turn = last = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        turn += 1
        before = _try_render(messages[:i], tokenizer, {**kwargs, "add_generation_prompt": True}) if i else ""
        upto = _try_render(messages[: i + 1], tokenizer, kwargs)
        if before is None:  # the template refuses a conversation ending before this turn: skip what precedes it
            lo = _skip(messages[last:i], text, cursor)
        else:
            lo = max(cursor, _agree(before, text, tokenizer, ids, offsets))
        hi = len(text) if upto is None else _agree(upto, text, tokenizer, ids, offsets)
        found = _locate(message["content"], text, lo, hi, reverse=upto is not None)
        if found is None and upto is not None:  # the render up to this turn differs (e.g. it is the last one)
            found = _locate(message["content"], text, lo, len(text), reverse=False)
        if found is not None:
            start, end = found
            end += _end_marker(text, end, hi if upto is not None and end <= hi else None, tokenizer)
        elif before and upto is not None and text[lo:hi].strip():  # content rewritten: train the turn's text
            start, end = lo, lo + len(text[lo:hi].rstrip())
        else:
            raise DataError(f"{where}: can't find assistant turn {turn} ({message['content']!r:.40}) in the chat "
                            "template's output, so its loss mask is unknown; use a chat template with "
                            "{% generation %} markers or set train.loss_on to all")
        spans.append((start, end))
        cursor, last = end, i + 1
    return spans


def _skip(messages: list[dict[str, str]], text: str, pos: int) -> int:
    """Past the rendered contents of ``messages``, found in order from ``pos`` (those not found are passed over)."""
    for m in messages:
        found = _locate(m["content"], text, pos, len(text), reverse=False) if m["content"].strip() else None
        pos = found[1] if found else pos
    return pos


def _render(messages: list[dict[str, str]], tokenizer: Any, kwargs: dict[str, Any], where: str) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    except Exception as exc:  # jinja's TemplateError from raise_exception(), or a template bug
        raise DataError(f"{where}: the chat template refuses this conversation "
                        f"({type(exc).__name__}: {exc}); roles: {', '.join(m['role'] for m in messages)}") from None


def _try_render(messages: list[dict[str, str]], tokenizer: Any, kwargs: dict[str, Any]) -> str | None:
    """A prefix render, or None where the template refuses it (e.g. it insists on a final assistant turn)."""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    except Exception:
        return None


def _tokenize(tokenizer: Any, text: str) -> tuple[list[int], list[Span] | None]:
    """Ids as ``apply_chat_template(tokenize=True)`` makes them, with char offsets where the tokenizer has them."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, ValueError, TypeError, KeyError):  # a slow tokenizer: no offsets
        return list(tokenizer(text, add_special_tokens=False)["input_ids"]), None


def _agree(partial: str, text: str, tokenizer: Any, ids: list[int], offsets: list[Span] | None) -> int:
    """How many chars of ``text`` a partial render reproduces.

    A plain prefix counts whole; otherwise the agreement is cut at a token boundary, so a shared first char of two
    different tokens (``<|user|>`` vs ``<|endoftext|>``) does not count.
    """
    if text.startswith(partial):
        return len(partial)
    chars = 0
    for a, b in zip(partial, text):
        if a != b:
            break
        chars += 1
    if offsets is None:
        return chars
    theirs = list(tokenizer(partial, add_special_tokens=False)["input_ids"])
    same = 0
    for x, y in zip(theirs, ids):
        if x != y:
            break
        same += 1
    return min(chars, offsets[same - 1][1]) if same else 0


def _locate(content: str, text: str, lo: int, hi: int, reverse: bool) -> Span | None:
    """Where the content (as given, else stripped) sits in ``text[lo:hi]``; the last occurrence when ``reverse``."""
    for needle in dict.fromkeys((content, content.strip())):
        if not needle:
            continue
        at = text.rfind(needle, lo, hi) if reverse else text.find(needle, lo, hi)
        if at >= 0:
            return at, at + len(needle)
    if not content.strip() and lo <= hi:  # an empty answer: only its end marker is trained
        return lo, lo
    return None


def _end_marker(text: str, pos: int, hi: int | None, tokenizer: Any) -> int:
    """Length of the turn's end marker at ``pos``.

    With a trusted end (``hi``: where the render up to this turn stops agreeing), it is the first non-blank run
    before ``hi``. Without one, it is a special token starting right there (``<|im_end|>``, ``</s>``), if any.
    """
    if hi is not None:
        m = _END_RUN.match(text, pos, hi)
        return m.end() - pos if m else 0
    rest = text[pos:]
    specials = sorted({t for t in getattr(tokenizer, "all_special_tokens", []) if t and not t.isspace()},
                      key=len, reverse=True)
    return next((len(t) for t in specials if rest.startswith(t)), 0)


def _mask_from_spans(tokenizer: Any, text: str, ids: list[int], offsets: list[Span] | None,
                     spans: list[Span]) -> list[int]:
    """1 for every token overlapping a span (by offsets, else by tokenizing the text before each span edge)."""
    if offsets is None:
        return _mask_by_prefix_tokens(tokenizer, text, ids, spans)
    mask = [0] * len(ids)
    k = 0
    for t, (a, b) in enumerate(offsets):
        while k < len(spans) and a >= spans[k][1]:
            k += 1
        if k == len(spans):
            break
        if b > spans[k][0] and b > a:
            mask[t] = 1
    return mask


def _mask_by_prefix_tokens(tokenizer: Any, text: str, ids: list[int], spans: list[Span]) -> list[int]:
    """Without offsets: a span runs from the first token ``text[:a]`` doesn't reproduce to the last one ``text[:b]``
    touches (a token cut by either edge overlaps the span, so it trains, as with offsets)."""
    mask = [0] * len(ids)
    for a, b in spans:
        start = common_prefix(tokenizer(text[:a], add_special_tokens=False)["input_ids"], ids)
        upto = tokenizer(text[:b], add_special_tokens=False)["input_ids"]
        end = common_prefix(upto, ids)
        end += len(upto) > end  # the token cut at b
        mask[start:end] = [1] * max(0, end - start)
    return mask


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading items ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
