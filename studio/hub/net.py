"""Timeouts, retries and repo ids for every call to the Hub.

huggingface_hub's shared HTTP client has no timeout (``timeout=None``): a Hub that accepts a connection and never
answers would hold a push forever. :func:`install_timeouts` gives the shared client one (connect and each read or
write). The library retries 429/5xx itself on preupload and commit (``http_backoff``); :func:`with_backoff` does the
same for the calls it leaves unretried (``whoami``, ``create_repo``). ``STUDIO_HUB_TIMEOUT`` (seconds, default 60),
``STUDIO_HUB_RETRIES`` (default 4) and ``STUDIO_HUB_BACKOFF_S`` (first wait, default 1) tune them.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")
RETRY_STATUS = (429, 500, 502, 503, 504)


def timeout_s() -> float:
    return float(os.environ.get("STUDIO_HUB_TIMEOUT") or 60)


def retries() -> int:
    return int(os.environ.get("STUDIO_HUB_RETRIES") or 4)


def backoff_s() -> float:
    return float(os.environ.get("STUDIO_HUB_BACKOFF_S") or 1)


class TimeoutClientFactory:
    """The client factory :func:`install_timeouts` gives huggingface_hub: one we own, so the installed timeout is
    read back from it (``seconds``) instead of from an attribute hung on a function."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> Any:
        from huggingface_hub.utils import _http

        httpx = _http.httpx2 if hasattr(_http, "httpx2") else __import__("httpx")
        from studio.hub.deadline import request_hook

        return httpx.Client(event_hooks={"request": [_http.hf_request_event_hook, request_hook]}, follow_redirects=True,
                            timeout=httpx.Timeout(self.seconds, connect=min(self.seconds, 15.0)))


def install_timeouts(seconds: float | None = None) -> float:
    """Make huggingface_hub's shared client time out after ``seconds`` without progress; returns the value."""
    import huggingface_hub
    from huggingface_hub.utils import _http

    seconds = float(seconds or timeout_s())
    current = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None)
    if isinstance(current, TimeoutClientFactory) and current.seconds == seconds:
        return seconds
    huggingface_hub.set_client_factory(TimeoutClientFactory(seconds))
    return seconds


def status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def with_backoff(fn: Callable[[], T], *, max_retries: int | None = None, base_wait: float | None = None,
                 max_wait: float = 8.0) -> T:
    """``fn()``, retried on 429/5xx answers (``Retry-After`` honoured up to ``max_wait``).

    Kept by hand: huggingface_hub's ``http_backoff`` retries one raw request, not an ``HfApi`` call, and
    ``HfApi.whoami``/``create_repo`` do not retry at all.
    """
    from huggingface_hub.errors import HfHubHTTPError

    tries = retries() if max_retries is None else max_retries
    wait = backoff_s() if base_wait is None else base_wait
    for attempt in range(tries + 1):
        try:
            return fn()
        except HfHubHTTPError as exc:
            if status_of(exc) not in RETRY_STATUS or attempt == tries:
                raise
            after = (exc.response.headers.get("Retry-After") or "") if exc.response is not None else ""
            pause = min(max_wait, float(after)) if after.replace(".", "", 1).isdigit() else wait
            time.sleep(pause)
            wait = min(max_wait, wait * 2)
    raise AssertionError("unreachable")  # pragma: no cover
