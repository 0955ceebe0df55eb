"""One time limit for a whole Hub operation (a push, a login check), retries included.

huggingface_hub retries a request that timed out up to five times (``http_backoff``), so a Hub that accepts an
upload and never answers would hold a push for six timeouts plus the waits. Inside :func:`deadline` every request
gets at most the time left (its connect/read/write timeouts are cut to it), and a request started after the limit
fails at once with :class:`DeadlineExceeded`, which huggingface_hub does not retry. ``STUDIO_HUB_TOTAL`` (seconds,
default 110) sets the limit.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_END: ContextVar[float | None] = ContextVar("studio_hub_deadline", default=None)


class DeadlineExceeded(TimeoutError):
    """The Hub operation ran past its total time limit."""


def total_s() -> float:
    return float(os.environ.get("STUDIO_HUB_TOTAL") or 110)


@contextlib.contextmanager
def deadline(seconds: float | None = None) -> Iterator[float]:
    """Requests made inside (in this thread or context) end by ``seconds`` from now (an outer limit still holds)."""
    seconds = float(seconds or total_s())
    end = time.monotonic() + seconds
    outer = _END.get()
    token = _END.set(end if outer is None else min(outer, end))
    try:
        yield seconds
    finally:
        _END.reset(token)


def request_hook(request: Any) -> None:
    """An httpx request event hook: cut the request's timeouts to the time left, or refuse it when none is."""
    end = _END.get()
    if end is None:
        return
    left = end - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded(f"the Hub did not answer within the {total_s():g} s limit for this operation")
    current = dict(request.extensions.get("timeout") or {"connect": None, "read": None, "write": None,
                                                         "pool": None})
    request.extensions = {**request.extensions,
                          "timeout": {k: left if v is None else min(float(v), left) for k, v in current.items()}}
