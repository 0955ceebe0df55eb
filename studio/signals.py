"""SIGINT, SIGTERM and SIGHUP stop a run gracefully (what Ctrl-C, systemd, Docker, a scheduler or a closed
terminal send): the first calls ``on_stop(signum)``, a second one raises ``KeyboardInterrupt`` (abort)."""
from __future__ import annotations

import signal
import threading
from typing import Any, Callable

STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class GracefulStop:
    """``with GracefulStop(on_stop) as gs: ...``; ``gs.received`` is the first signal (or None) and
    ``gs.exit_code`` is ``128 + signum`` once one arrived. Outside the main thread it installs nothing. The app
    starts a run's process with SIGTERM blocked, so a Stop sent before the handler is in place waits for it here."""

    def __init__(self, on_stop: Callable[[int], Any], signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self.on_stop = on_stop
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def exit_code(self) -> int:
        return 128 + self.received if self.received else 0

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        self.on_stop(signum)

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                try:
                    self._previous[s] = signal.signal(s, self._handle)
                except (OSError, ValueError):  # pragma: no cover - a signal this platform can't catch
                    pass
            if hasattr(signal, "pthread_sigmask"):  # a stop the app sent before this process could take it
                signal.pthread_sigmask(signal.SIG_UNBLOCK, self.signals)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous.clear()
