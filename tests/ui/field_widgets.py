"""Checks shared by the tabs' "widgets follow the field metadata" tests: patch a field's metadata, then compare the
rendered widget with it."""
from __future__ import annotations

import copy
import types
from typing import Any

import gradio as gr

from studio.config_fields import choices_of, field_of
from studio.ui.forms import edit_kind

KINDS = {"radio": gr.Radio, "dropdown": gr.Dropdown, "multi": gr.Dropdown, "check": gr.Checkbox, "slider": gr.Slider,
         "number": gr.Number, "lines": gr.Textbox, "text": gr.Textbox, "raw": gr.Textbox}
"""The gradio class each edit kind is built as."""


def patch_metadata(monkeypatch: Any, cls: type, name: str, tag: str,
                   slider: tuple[float, float, float] = (0, 0.9, 0.05)) -> tuple[str, dict]:
    """Give ``cls.name`` another label, help, range (``slider``: min, max, step) and choice order; ``(kind, meta)``."""
    kind, meta = edit_kind(cls, name), dict(field_of(cls, name).metadata)
    meta.update(label=f"label of {tag}", help=f"help of {tag}")
    if kind == "number":
        meta.update(minimum=-7)  # below every default; a maximum as well would make it a slider
    elif kind == "slider":
        meta.update(minimum=slider[0], maximum=slider[1], step=slider[2])
    elif kind in ("radio", "dropdown", "multi"):
        meta.update(choices=tuple(reversed(choices_of(cls, name))))
    f = copy.copy(field_of(cls, name))
    f.metadata = types.MappingProxyType(meta)
    monkeypatch.setitem(cls.__dataclass_fields__, name, f)
    return kind, meta


def assert_follows(w: Any, kind: str, meta: dict, tag: str, own: str = "", check_choices: bool = True) -> None:
    """``w`` is built as ``meta`` says (``own``: "label" or "info", one the tab sets itself, with its reason)."""
    assert type(w) is KINDS[kind] or (kind == "number" and isinstance(w, gr.Number)), tag
    if own != "label":
        assert w.label == meta["label"], tag
    if own != "info":
        assert w.info == meta["help"], tag
    if kind in ("number", "slider"):
        assert w.minimum == meta["minimum"], tag
    if kind == "slider":
        assert (w.maximum, w.step) == (meta["maximum"], meta["step"]), tag
    if check_choices and kind in ("radio", "dropdown", "multi"):
        assert [value for _, value in w.choices] == list(meta["choices"]), tag
