"""The strip above the tabs that says which config the forms show, and changes it explicitly.

A new browser session (a reload, a second browser) shows the live run's config, else the most recent run's, so the
next Start never trains something the user did not choose without saying so. "Open config…" loads a YAML file
(``studio train`` reads the same); "New run from defaults" goes back to the config the app started with. After the
forms are written, each tab's ``ctx.forms_written`` callback chains its own refresh (preview, memory estimate).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from studio.config import RunConfig
from studio.errors import StudioError
from studio.ui.common import AppContext, error_text


# ----------------------------------------------------------------------------------------------------- core glue
def session_config(studio: Any) -> tuple[RunConfig, str] | None:
    """``(config, where it comes from)`` for a new browser session: the live (or last) job of this app, else the
    newest run in the runs folder whose config reads; None when there is no run yet."""
    job = getattr(studio, "job", None)
    if job is not None and getattr(job, "cfg", None) is not None:
        return job.cfg, f"the settings of run `{Path(job.run_dir).name}`"  # no state: it would go stale
    from studio.runs import list_runs

    for run in list_runs(studio.runs_dir):
        try:
            return run.config, f"the settings of the most recent run `{run.name}` ({run.status})"
        except (StudioError, OSError):
            continue
    return None


def note_text(where: str) -> str:
    return f"⚙ The forms show **{where}**. Start trains exactly what they show."


DEFAULTS_NOTE = "the app's defaults (a new run)"


# ----------------------------------------------------------------------------------------------------------- UI
def render(ctx: AppContext) -> dict[str, Any]:
    """The bar's widgets; call :func:`wire` once every tab has rendered."""
    with gr.Row(equal_height=True, elem_id="config-bar", elem_classes=["studio-config-bar"]):
        note = gr.Markdown(note_text(DEFAULTS_NOTE), elem_id="config-source")
        open_btn = gr.UploadButton("Open config…", file_types=[".yaml", ".yml"], file_count="single", scale=0,
                                   min_width=150, size="sm", elem_id="config-open")
        save = gr.Button("Save config", scale=0, min_width=120, size="sm", elem_id="config-save")
        defaults = gr.Button("New run from defaults", scale=0, min_width=190, size="sm", elem_id="config-defaults")
    saved = gr.File(label="The config as the forms show it (studio train --config reads it)", visible=False,
                    interactive=False, elem_id="config-saved")
    ctx.forms.base = gr.State(None)
    return {"note": note, "open": open_btn, "defaults": defaults, "save": save, "saved": saved}


def shown_values(ctx: AppContext, cfg: RunConfig) -> dict:
    """``ctx.forms.write(cfg)`` with the column dropdowns offered their own value (the preview then offers the
    file's columns)."""
    out = ctx.forms.write(cfg)
    data = ctx.forms.data
    if data is not None:
        for dd in data.mapping.values():
            value = out.get(dd)
            out[dd] = gr.update(choices=[("— none —", ""), *([value] if value else [])], value=value)
    return out


def wire(ctx: AppContext, bar: dict[str, Any]) -> dict[str, Any]:
    """Wire the bar; returns its handlers (``restore``, ``defaults``, ``open_file``) for tests."""
    studio, note = ctx.studio, bar["note"]
    outputs = [note, *sorted(ctx.forms.components(), key=id)]

    def restore() -> dict:
        found = session_config(studio)
        cfg, where = found if found is not None else (ctx.initial, DEFAULTS_NOTE)
        return {note: note_text(where), **shown_values(ctx, cfg)}

    def defaults() -> dict:
        return {note: note_text(DEFAULTS_NOTE), **shown_values(ctx, ctx.initial)}

    def open_file(file: Any) -> dict:
        from studio.config import load_config

        path = getattr(file, "name", None) or str(file)
        try:
            cfg = load_config(path)
        except Exception as err:  # noqa: BLE001 - one sentence, the forms stay as they are
            text = error_text(err)
            gr.Warning(text)
            return {note: f"**⚠ Could not open {Path(path).name}:** {text}"}
        return {note: note_text(f"the config opened from `{Path(path).name}`"), **shown_values(ctx, cfg)}

    def save(values: dict) -> dict:
        """The forms as a YAML file to download (what ``studio train --config`` and "Open config…" read)."""
        import tempfile

        try:
            cfg = ctx.forms.read(values)
        except StudioError as err:
            text = error_text(err)
            gr.Warning(text)
            return {bar["saved"]: gr.update(visible=False), note: f"**⚠ Could not save the config:** {text}"}
        path = Path(tempfile.mkdtemp(prefix="studio-config-")) / f"{cfg.train.run_name or 'studio-run'}.yaml"
        cfg.save(path)
        return {bar["saved"]: gr.update(value=str(path), visible=True), note: gr.skip()}

    hidden = dict(show_progress="hidden", api_visibility="undocumented")
    bar["save"].click(save, inputs=set(ctx.forms.components()), outputs=[note, bar["saved"]], api_name="save_config",
                      **hidden)
    deps = [ctx.blocks.load(restore, outputs=outputs, api_name="restore_forms", show_progress="hidden"),
            bar["defaults"].click(defaults, outputs=outputs, api_name="forms_defaults", **hidden),
            bar["open"].upload(open_file, inputs=bar["open"], outputs=outputs, api_name="open_config", **hidden)]
    for i, dep in enumerate(deps):
        for chain in ctx.forms_written:
            chain(dep, i == 0)
    return {"restore": restore, "defaults": defaults, "open_file": open_file, "save": save, "outputs": outputs}
