"""The bounded request queue: requests past ``max_pending`` (waiting plus generating) are answered 429 at once;
the admitted ones wait for the engine (its lock runs one generation at a time)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from studio.serving.schemas import ApiError

MAX_PENDING = 16


@dataclass
class RequestQueue:
    max_pending: int = MAX_PENDING
    in_flight: int = 0
    answered: int = 0
    cancelled: int = 0
    """Answers stopped because the client went away."""
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self) -> None:
        """Take a place in the queue for one request (give it back with :meth:`leave`).

        Raises:
            ApiError: 429, the queue is full.
        """
        with self._lock:
            if self.in_flight >= self.max_pending:
                self.refused += 1
                raise ApiError(429, f"the server is busy: {self.in_flight} requests are queued (the limit is "
                               f"{self.max_pending}); retry shortly", "rate_limit_exceeded", type="rate_limit_error")
            self.in_flight += 1

    def leave(self, *, answered: bool = True, cancelled: bool = False) -> None:
        with self._lock:
            self.in_flight -= 1
            self.answered += answered and not cancelled
            self.cancelled += cancelled

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"in_flight": self.in_flight, "max_pending": self.max_pending, "answered": self.answered,
                    "cancelled": self.cancelled, "refused": self.refused}
