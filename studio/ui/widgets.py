"""A config field's gradio widget and its value conversions, derived from the field's metadata
(``studio.config_fields``): how it is edited, widget value -> config value and back. Only :func:`widget` imports
gradio."""
from __future__ import annotations

import typing
from typing import Any

from studio.config_fields import choices_of, field_of, value_type
from studio.errors import ConfigError

Component = Any  # a gradio component; keys of the values dict


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def edit_kind(cls: type, name: str) -> str:
    """How ``cls.name`` is edited: its metadata's ``kind``, else from its type (``check``, ``dropdown`` for
    choices, ``lines`` for lists and tuples of text, ``slider`` for a bounded number, ``number``, ``text``)."""
    meta = field_of(cls, name).metadata
    if meta.get("kind"):
        return meta["kind"]
    base, _ = value_type(cls, name)
    origin = typing.get_origin(base)
    if base is bool:
        return "check"
    if choices_of(cls, name):
        return "dropdown"
    if origin in (list, tuple):
        return "lines"
    if base in (int, float):
        return "slider" if meta.get("minimum") is not None and meta.get("maximum") is not None else "number"
    return "text"


def from_widget(cls: type, name: str, value: Any, section: str = "") -> Any:
    """A widget value as the config field ``cls.name`` is built from it (``config_fields.build`` types it):
    the field's ``read``, else by its edit kind (one item per line, blanks -> None or "needs a number")."""
    meta = field_of(cls, name).metadata
    if meta.get("read"):
        return meta["read"](value)
    kind = edit_kind(cls, name)
    if kind == "lines":
        items = value.splitlines() if isinstance(value, str) else list(value or [])
        return [line.strip() for line in items if line.strip()]
    if kind == "multi":
        return list(value or [])
    base, optional = value_type(cls, name)
    if _blank(value):
        if optional:
            return None
        if base in (int, float):
            raise ConfigError(f"{section + '.' if section else ''}{name} needs a number")
        return "" if base is str else value
    if isinstance(value, str) and kind != "raw":
        return value.strip()
    return value


def to_widget(cls: type, name: str, value: Any) -> Any:
    """A config value as its widget shows it."""
    meta = field_of(cls, name).metadata
    if meta.get("show"):
        return meta["show"](value)
    if edit_kind(cls, name) == "lines":
        return "\n".join(value or [])
    if value is None:
        return "" if value_type(cls, name)[0] is str else None
    return value


def widget(cls: type, name: str, value: Any, **kw: Any) -> Component:
    """The gradio widget that edits ``cls.name`` (a config section or ``GenerationParams`` field), derived from
    its metadata: kind, choices, range, help (as ``info``) and label; ``kw`` adds or overrides arguments (layout,
    ``elem_id``; ``choices`` for a dropdown whose choices the config can't know, e.g. the model presets, or
    ``(label, value)`` pairs; ``kind`` to show a choice as a ``radio``). ``value`` is the field's value (shown
    through :func:`to_widget`)."""
    import gradio as gr

    meta = field_of(cls, name).metadata
    kind = kw.pop("kind", None) or edit_kind(cls, name)
    base, _ = value_type(cls, name)
    args: dict[str, Any] = {"value": to_widget(cls, name, value), "label": meta.get("label", name)}
    if meta.get("help"):
        args["info"] = meta["help"]
    bounds = {k: meta[k] for k in ("minimum", "maximum", "step") if meta.get(k) is not None}
    choices = list(kw.pop("choices", None) or choices_of(cls, name))
    args.update(kw)
    if kind == "check":
        return gr.Checkbox(**args)
    if kind in ("radio", "dropdown", "multi"):
        if kind == "radio":
            return gr.Radio(choices, **args)
        # a multi-select, or a dropdown whose field takes any text (no Literal): typed values are allowed too
        extra = {"multiselect": True} if kind == "multi" else {}
        if kind == "multi" or not choices_of(cls, name):
            extra["allow_custom_value"] = True
        return gr.Dropdown(choices, **{**extra, **args})
    if kind == "slider":
        return gr.Slider(bounds.pop("minimum"), bounds.pop("maximum"), **{**({"step": 1} if base is int else {}),
                                                                           **bounds, **args})
    if kind == "number":
        return gr.Number(**{"precision": 0 if base is int else None, **bounds, **args})
    if kind == "lines":
        return gr.Textbox(**{"lines": 2, **args})
    return gr.Textbox(**args)
