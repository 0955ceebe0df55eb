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
