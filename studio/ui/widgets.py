"""A config field's gradio widget and its value conversions, derived from the field's metadata
(``studio.config_fields``): how it is edited, widget value -> config value and back, and a number's range refused
in words where it is typed. Only the functions that build widgets or events import gradio."""
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


def bounds_problem(cls: type, name: str, value: Any) -> str | None:
    """``"Rank r must be from 1 to 1024 (got 0)"`` when a number is outside its field's metadata range, else None
    (blanks and non-numbers are for the config's own checks)."""
    meta = field_of(cls, name).metadata
    low, high = meta.get("minimum"), meta.get("maximum")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    if (low is None or value >= low) and (high is None or value <= high):
        return None
    fmt = lambda x: f"{x:g}"  # noqa: E731
    if low is not None and high is not None:
        words = f"from {fmt(low)} to {fmt(high)}"
    else:
        words = f"at least {fmt(low)}" if low is not None else f"at most {fmt(high)}"
    return f"{meta.get('label', name)} must be {words} (got {fmt(value)})"


def from_widget(cls: type, name: str, value: Any, section: str = "") -> Any:
    """A widget value as the config field ``cls.name`` is built from it (``config_fields.build`` types it):
    the field's ``read``, else by its edit kind (one item per line, blanks -> None or "needs a number"); a number
    outside the field's range is refused here, naming the field.

    Raises:
        ConfigError: a required number is blank or out of its range.
    """
    meta = field_of(cls, name).metadata
    if meta.get("read"):
        return meta["read"](value)
    kind = edit_kind(cls, name)
    if kind == "number":
        problem = bounds_problem(cls, name, value)
        if problem:
            raise ConfigError(f"{section + '.' if section else ''}{name}: {problem}")
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
        number_args = {"precision": 0 if base is int else None, **bounds, **args}
        if bounds.get("minimum") is None and bounds.get("maximum") is None:
            return gr.Number(**number_args)
        from studio.ui.range_number import RangeNumber

        box = RangeNumber(**number_args)
        refuse_where_typed(box, cls, name)
        return box
    if kind == "lines":
        return gr.Textbox(**{"lines": 2, **args})
    return gr.Textbox(**args)


def refuse_where_typed(box: Component, cls: type, name: str) -> None:
    """A bounded number box (a ``RangeNumber``: no passing toast from gradio) shows an out-of-range value in its own
    help line at once (``⚠ Rank r must be from 1 to 1024 (got 0)``, outlined red) and its help again once the value
    is back in range; handlers get the value and :func:`from_widget` refuses it in one sentence, so what they drew
    from it (the memory estimate, the parameter count) is cleared, not left stale."""
    import gradio as gr

    help_text = box.info

    def check(value: Any) -> Any:
        problem = bounds_problem(cls, name, value)
        return gr.update(info=f"⚠ {problem}" if problem else help_text,
                         elem_classes=["studio-invalid"] if problem else [])

    box.change(check, inputs=box, outputs=box, preprocess=False, show_progress="hidden", api_visibility="private")
