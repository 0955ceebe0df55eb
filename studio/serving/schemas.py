"""Requests of the OpenAI API as Studio values, and errors as OpenAI-style JSON.

Sampling maps onto :class:`GenerationParams`: ``temperature`` 0 or absent is greedy (the answer ``studio chat``
gives), above 0 samples with ``seed`` (default 0); ``top_p``, ``max_tokens`` (``max_completion_tokens``) and
``stop`` (a string or a list of up to 4) carry over.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from studio.errors import StudioError

DEFAULT_MAX_TOKENS = 128
"""As ``studio chat`` (GenerationParams' default)."""


class ApiError(StudioError):
    """An error answered as ``{"error": {"message", "type", "code", "param"}}`` with HTTP ``status``."""

    def __init__(self, status: int, message: str, code: str, *, type: str = "invalid_request_error",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.type, self.param = status, code, type, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.type, "code": self.code, "param": self.param}}


@dataclass
class ApiRequest:
    """One parsed request: chat (``messages``) or completion (``prompt``)."""

    model: str
    params: Any
    stream: bool = False
    include_usage: bool = False
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt: str | None = None

    def split(self) -> tuple[str | None, list[dict[str, str]], str]:
        """``(system prompt or None, history messages, the last user message)`` of a chat request."""
        from studio.inference.prompt import flatten_content

        msgs = [{"role": m["role"], "content": flatten_content(m.get("content"))} for m in self.messages]
        systems = [m["content"] for m in msgs if m["role"] in ("system", "developer")]
        rest = [m for m in msgs if m["role"] not in ("system", "developer")]
        if not rest or rest[-1]["role"] != "user":
            raise ApiError(400, "the last message must come from the user", "invalid_messages", param="messages")
        return ("\n\n".join(systems) if systems else None), rest[:-1], rest[-1]["content"]


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not JSON", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", "invalid_json")
    return body


def _number(body: dict[str, Any], name: str, kind: type, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise ApiError(400, f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}",
                       "invalid_type", param=name)
    if low is not None and (value <= low if low_open else value < low) or high is not None and value > high:
        bound = f"> {low}" if low_open else f">= {low}"
        raise ApiError(400, f"{name} must be {bound}" + (f" and <= {high}" if high is not None else "")
                       + f", got {value!r}", "invalid_value", param=name)
    return kind(value)


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        return tuple(stop)
    raise ApiError(400, f"stop must be a string or a list of up to 4 strings, got {type(stop).__name__} "
                   f"{json.dumps(stop)[:60]}", "invalid_type", param="stop")


def parse_request(body: dict[str, Any], *, chat: bool) -> ApiRequest:
    """An :class:`ApiRequest` from a JSON body.

    Raises:
        ApiError: 422 for a missing field, 400 for a wrong type or value.
    """
    from studio.errors import ConfigError
    from studio.inference.params import GenerationParams

    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(422, "model is required (a name from GET /v1/models)", "missing_field", param="model")
    req = ApiRequest(model=model, params=None, stream=bool(body.get("stream", False)))
    options = body.get("stream_options") or {}
    req.include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(422, "messages is required: a non-empty list of {role, content}", "missing_field",
                           param="messages")
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
                raise ApiError(400, f"each message needs a role of system, user or assistant, got {m!r}"[:200],
                               "invalid_messages", param="messages")
        req.messages = messages
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ApiError(422 if prompt is None else 400, "prompt is required: one string", "missing_field"
                           if prompt is None else "invalid_type", param="prompt")
        req.prompt = prompt
    max_tokens = _number(body, "max_completion_tokens", int)
    max_tokens = _number(body, "max_tokens", int) if max_tokens is None else max_tokens
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(400, f"max_tokens must be at least 1, got {max_tokens}", "invalid_value", param="max_tokens")
    temperature = _number(body, "temperature", float, 0, 2)
    top_p = _number(body, "top_p", float, 0, 1, low_open=True)
    seed = _number(body, "seed", int)
    values: dict[str, Any] = {"max_new_tokens": DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
                              "stop": _stop(body), "do_sample": bool(temperature), "seed": seed or 0}
    if temperature:
        values["temperature"] = temperature
    if top_p is not None:
        values["top_p"] = top_p
    try:
        req.params = GenerationParams(**values)
    except ConfigError as err:
        raise ApiError(400, str(err), "invalid_value") from None
    return req
