"""Whether the Hugging Face Hub can be reached, asked in one short request and remembered for a little while.

Offline, every Hub call of transformers retries for ~25 s before it fails; a Model tab that asks the Hub on each
keystroke froze for that long. :func:`hub_reach` answers at once in offline mode (``HF_HUB_OFFLINE``), else after
one HEAD request to the endpoint with a short timeout (any HTTP answer means reachable), and keeps the answer for
:data:`REMEMBER_S` seconds per endpoint. The answer is a fact about this machine's network, the same for every
browser session, so it is kept per process (never anything a user typed).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

REACH_TIMEOUT_S = 2.0
"""How long one probe waits for the Hub's answer (``STUDIO_HUB_REACH_TIMEOUT_S`` overrides)."""
REMEMBER_S = 30.0
"""How long an answer is reused before the Hub is asked again."""
DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class Reach:
    """``ok``: the Hub answered; ``why``: when not, a few words on why (for the one-line message)."""

    ok: bool
    endpoint: str
    why: str = ""


_lock = threading.Lock()
_answers: dict[str, tuple[float, Reach]] = {}


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_reach(*, fresh: bool = False) -> Reach:
    """Whether the Hub answers (at most one request per :data:`REMEMBER_S`; ``fresh`` asks again now)."""
    url = endpoint()
    if offline_mode():
        return Reach(False, url, "offline mode: HF_HUB_OFFLINE is set")
    now = time.monotonic()
    with _lock:
        known = _answers.get(url)
        if known is not None and not fresh and now - known[0] < REMEMBER_S:
            return known[1]
    reach = _probe(url)
    with _lock:
        _answers[url] = (time.monotonic(), reach)
    return reach


def forget() -> None:
    """Drop the remembered answers (the next :func:`hub_reach` asks the Hub)."""
    with _lock:
        _answers.clear()


def _probe(url: str) -> Reach:
    timeout = float(os.environ.get("STUDIO_HUB_REACH_TIMEOUT_S") or REACH_TIMEOUT_S)
    try:
        from huggingface_hub.utils import get_session

        get_session().head(url, timeout=timeout, follow_redirects=False)
        return Reach(True, url)
    except Exception as err:  # noqa: BLE001 - DNS, refused, timeout, proxy: all mean "not reachable now"
        first = (str(err).splitlines() or [""])[0].strip()[:120] or type(err).__name__
        return Reach(False, url, f"no answer from {url}: {first}")
