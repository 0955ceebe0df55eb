"""The look: a built-in theme plus assets/studio.css (Gradio 6 takes both in ``launch()``)."""
from __future__ import annotations

from typing import Any

from studio.paths import ASSETS

CSS_PATH = ASSETS / "studio.css"
FOLLOW_LOG_HEAD = """<script>
// The Train tab's log box ("newest last") keeps its newest line in view, unless the user scrolled up to read
// (a read-only textarea does not follow its end by itself).
setInterval(() => {
    for (const t of document.querySelectorAll('#train-log textarea')) {
        if (!t.dataset.follow) {
            t.dataset.follow = "1";
            t.addEventListener('scroll', () => {
                if (t.clientHeight) t.dataset.follow = t.scrollTop + t.clientHeight >= t.scrollHeight - 8 ? "1" : "0";
            });
        }
        if (t.dataset.follow === "1" && t.clientHeight) t.scrollTop = t.scrollHeight;
    }
}, 300);
</script>"""


def launch_kwargs() -> dict[str, Any]:
    """``theme``, ``css_paths`` and a page script (``head``) for ``Blocks.launch``."""
    import gradio as gr

    theme = gr.themes.Soft(primary_hue="blue", secondary_hue="emerald")
    return {"theme": theme, "css_paths": [CSS_PATH] if CSS_PATH.exists() else None, "head": FOLLOW_LOG_HEAD}
