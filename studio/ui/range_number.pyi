"""A number box whose range is checked in words by Studio, not by gradio.

gradio's ``Number`` raises a passing toast ("Value 0 is less than minimum value 1.") before any handler runs, so the
handlers never see the value and what they drew from the last good one (the memory estimate, the parameter count)
stays on screen. ``RangeNumber`` keeps the range on the box (its arrows stop there) but lets the value through:
:func:`studio.ui.widgets.from_widget` refuses it in one sentence naming the field, and the box shows the same
sentence under itself (gradio's validation message). A class, not a patched instance: gradio rebuilds a session's
copy of a component from its class when a handler updates it.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from gradio.events import Dependency

class RangeNumber(gr.Number):
    """``gr.Number`` drawn by the same frontend, without the backend's range error."""

    is_template = True  # the frontend's Number

    @staticmethod
    def raise_if_out_of_bounds(num: Any, minimum: Any, maximum: Any) -> None:
        return None
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component