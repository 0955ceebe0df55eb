"""The look: a built-in theme plus assets/studio.css (Gradio 6 takes both in ``launch()``)."""
from __future__ import annotations

from typing import Any

from studio.paths import ASSETS

CSS_PATH = ASSETS / "studio.css"


def launch_kwargs() -> dict[str, Any]:
    """``theme`` and ``css_paths`` for ``Blocks.launch``."""
    import gradio as gr

    theme = gr.themes.Soft(primary_hue="blue", secondary_hue="emerald")
    return {"theme": theme, "css_paths": [CSS_PATH] if CSS_PATH.exists() else None}
