"""Typed errors with a message a person can act on.

The UI shows ``str(err)`` in a warning box, the CLI prints it on one line and exits non-zero.
Tracebacks go to the run log, never to the user's face.
"""
from __future__ import annotations


class StudioError(Exception):
    """Base class: ``str(err)`` is the whole user-facing sentence."""

    exit_code = 2


class ConfigError(StudioError):
    """A config value, key or type is wrong."""


class DataError(StudioError):
    """A dataset can't be loaded, parsed or mapped."""


class TemplateError(StudioError):
    """A template is malformed or names a column the data lacks."""


class ModelError(StudioError):
    """A model can't be found, loaded or configured as asked."""


class TrainingError(StudioError):
    """Training could not start or failed."""


class BusyError(StudioError):
    """Another run holds the GPU."""


class HubError(StudioError):
    """Talking to the Hugging Face Hub failed."""


class DiskFullError(StudioError):
    """No space left on the device while writing (checkpoint, events, log, export)."""


class StorageError(StudioError):
    """A folder can't be created or written (a file in the way, read-only, no permission)."""


def hub_unreachable(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the Hugging Face Hub can't be reached.

    The typed errors of huggingface_hub and its HTTP client, never the message text: offline mode
    (``OfflineModeIsEnabled``), a file neither cached nor downloadable (``LocalEntryNotFoundError``), no connection
    or a timeout (``httpx.TransportError``, the builtin ``ConnectionError``/``TimeoutError`` that datasets raises).
    transformers and datasets wrap these in ``OSError``/``ConnectionError``, so the ``__cause__``/``__context__``
    chain is walked.
    """
    import importlib

    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    kinds: list[type] = [LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):  # huggingface_hub 2.x speaks httpx2, 1.x httpx
        try:
            kinds.append(importlib.import_module(name).TransportError)
        except ImportError:
            continue
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, tuple(kinds)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


class DamagedFileError(StudioError):
    """A file Studio reads is cut short or damaged (the sentence names it and what to do)."""


class RewardError(StudioError):
    """A reward is unknown, misconfigured, refused (user code on a shared app) or failed on a sample."""
