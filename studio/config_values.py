"""Setting values ``studio.config`` checks that other layers share: the gradient-checkpointing words (YAML,
``--set``, the Train tab's radio) and Hub repo ids. Kept below ``config`` so the config never imports upward."""
from __future__ import annotations

from typing import Any

from studio.errors import ConfigError

CHECKPOINTING_WORDS: dict[str, Any] = {"auto": "auto", "true": True, "on": True, "false": False, "off": False}
"""Every way to write ``train.gradient_checkpointing`` -> ``"auto"``, True or False."""
CHECKPOINTING_SHOWN = ("auto", "on", "off")
"""The words the UI offers, in order."""


def parse_checkpointing(value: Any) -> Any:
    """``"auto"``, True or False from a bool or one of :data:`CHECKPOINTING_WORDS` (any case).

    Raises:
        ConfigError: any other value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in CHECKPOINTING_WORDS:
        return CHECKPOINTING_WORDS[value.strip().lower()]
    raise ConfigError(f"train.gradient_checkpointing must be auto, true or false; got {value!r}")


def checkpointing_word(value: Any) -> str:
    """The word of :data:`CHECKPOINTING_SHOWN` for a setting (``"auto"``, True/False or any word)."""
    setting = parse_checkpointing(value)
    return "auto" if setting == "auto" else ("on" if setting else "off")


def repo_id_problem(repo_id: str) -> str | None:
    """Why ``repo_id`` (spaces and outer slashes stripped) is not ``name`` or ``owner/name``, or None when it is.

    huggingface_hub's ``validate_repo_id`` decides (the Hub's own rules: letters, digits, ``-_.``, no ``--``/``..``).
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id.strip().strip("/"))
    except HFValidationError as exc:
        return str(exc)
    return None
