"""Small pieces every tab uses: the app context handed to each tab, error display, the "what next" footer, and
``Reporter`` (the core's ``progress(fraction, message)`` callbacks shown on a ``gr.Progress`` bar).

Errors: a ``StudioError`` is shown as its own sentence (``gr.Warning`` + an error box); anything else is logged in
full to ``<cache>/ui-errors.log`` and shown as one line that points there. Never a traceback in the page.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from studio.config import RunConfig
from studio.errors import StudioError
from studio.session import Studio
from studio.ui.forms import Forms

log = logging.getLogger("studio.ui")


@dataclass
class AppContext:
    """What app.py hands every tab's ``render(studio, ctx)``.

    ``forms`` gathers each section's widgets as the tabs render (``ctx.forms.model`` is the Model tab's form), so a
    handler in any tab can read the whole RunConfig with ``ctx.forms.read(values)`` from ``inputs=ctx.forms.
    components()`` without retyping. ``run_dir`` is the per-browser run the user started or picked last (Chat and
    Publish read it). ``tabs`` lets a "Next" button switch tab. ``after_render`` callbacks run once every tab exists,
    for events whose inputs live in a later tab.
    """

    studio: Studio
    initial: RunConfig
    forms: Forms
    blocks: Any = None
    """The ``gr.Blocks`` being built (for ``blocks.load`` events)."""
    tabs: Any = None
    run_dir: Any = None
    """``gr.State[str | None]``: path of the run started or selected in this browser."""
    tab_ids: tuple[str, ...] = ()
    """Ids of every tab in the app (a tab can point to the next one only if it exists)."""
    after_render: list[Callable[[], None]] = field(default_factory=list)
    forms_written: list[Callable[[Any, bool], None]] = field(default_factory=list)
    """Callbacks ``chain(dependency, first)`` that attach a tab's refresh (``dependency.then(...)``) to every event that
    writes a whole config into the forms (page load, "Open config…", "New run from defaults"); ``first`` is the page
    load (the one that may carry an ``api_name``)."""
    time_lines: list[Any] = field(default_factory=list)
    """The ``gr.Markdown`` lines that show the run's time estimate (the Model tab's beside the memory chart, the Train
    tab's beside Start): the Model tab's estimate handler writes the same ``time_text`` into each."""


def error_text(err: BaseException) -> str:
    """The one sentence shown for ``err``; unexpected errors are logged with their traceback."""
    if isinstance(err, StudioError):
        return str(err)
    path = _log_unexpected(err)
    return f"Unexpected error: {type(err).__name__}: {str(err)[:300]} (details in {path})"


def error_box(message: str | None) -> dict:
    """Update for a ``gr.Markdown`` error box: visible with the message, hidden when None."""
    if not message:
        return gr.update(value="", visible=False)
    return gr.update(value=f"**⚠ {message}**", visible=True)


def warn(err: BaseException) -> str:
    """Show ``err`` as a toast and return its sentence (for an error box too)."""
    text = error_text(err)
    gr.Warning(text)
    return text


class Reporter:
    """A ``gr.Progress`` (or anything called as ``progress(fraction, desc=...)``, or None) as the core's
    ``progress(fraction, message)`` callback.

    The bar never moves backwards (a sub-step restarting at 0 is clamped to what was already shown), and
    ``part(lo, hi)`` maps a sub-step's own 0..1 onto ``[lo, hi]`` of the whole, so a handler can chain core calls
    (load the data, then preview it) on one bar.
    """

    def __init__(self, progress: Any = None) -> None:
        self._progress = progress
        self.fraction = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        self.fraction = max(self.fraction, min(1.0, max(0.0, float(fraction))))
        if self._progress is not None:
            self._progress(self.fraction, desc=message)

    def part(self, lo: float, hi: float) -> Callable[[float, str], None]:
        """The callback for a sub-step that reports its own 0..1, shown as ``lo``..``hi`` of the whole."""
        return lambda fraction, message: self(lo + (hi - lo) * min(1.0, max(0.0, float(fraction))), message)


def next_step(ctx: AppContext, text: str, tab_id: str | None, button: str | None = None) -> gr.Button | None:
    """The footer every tab ends with: what comes next, and a button that switches to that tab."""
    with gr.Row(elem_classes=["studio-next"]):
        gr.Markdown(f"**Next:** {text}")
        if tab_id is None or ctx.tabs is None or (ctx.tab_ids and tab_id not in ctx.tab_ids):
            return None
        btn = gr.Button(button or "Next →", variant="secondary", scale=0, min_width=160)
    btn.click(lambda: gr.Tabs(selected=tab_id), outputs=ctx.tabs, show_progress="hidden", api_visibility="private")
    return btn


def _log_unexpected(err: BaseException) -> Path:
    from studio.paths import cache_root

    path = Path(cache_root()) / "ui-errors.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write("".join(traceback.format_exception(type(err), err, err.__traceback__)) + "\n")
    except OSError:  # pragma: no cover - logging must never fail a handler
        log.exception("could not write %s", path)
    return path
