"""Publish tab: pick a run, edit its model card, push the adapter, a merged model or a checked GGUF to the Hub, or
export it.

Glue only: ``studio.hub`` renders the card, exports, resolves the token and pushes. The token typed here stays in
the browser field and this request's memory: it is passed to ``push``/``whoami`` and never stored, logged or
written. Errors arrive as ``HubError`` sentences with the fix; the local export is kept so a push can be retried.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from studio.config import HubConfig, field_help
from studio.errors import HubError, StudioError
from studio.formatting import plural
from studio.ui.common import AppContext, Reporter, error_box, error_text
from studio.ui.forms import HubForm

TAB_ID = "publish"
LABEL = "5 · Publish"
KINDS = [("Adapter only (small; loads on top of the base)", "adapter"),
         ("Merged model (16-bit, standalone)", "merged"),
         ("GGUF for llama.cpp / Ollama (checked against the merged model)", "gguf")]
OUTTYPES = [("q8_0 (8-bit, half the size)", "q8_0"), ("f16", "f16"), ("bf16", "bf16")]


# ----------------------------------------------------------------------------------------------------- core glue
def run_choices(studio: Any) -> list[tuple[str, str]]:
    """``(label, run dir)`` of runs with a saved adapter, newest first."""
    from studio.runs import list_runs

    return [(f"{r.name} · {r.status} · step {r.step}", str(r.path)) for r in list_runs(studio.runs_dir)
            if r.adapter_path is not None and r.status != "running"]


def run_defaults(run_dir: str | None) -> tuple[str, bool, str]:
    """(repo id, private, kind) from the run's config: its hub section, else a name from the model and dataset."""
    if not run_dir:
        return "", True, "adapter"
    from studio.hub.facts import default_repo_name, load_facts

    try:
        facts = load_facts(run_dir)
    except (StudioError, OSError):
        return Path(run_dir).name, True, "adapter"
    hub = facts.config.hub
    return hub.repo_id or default_repo_name(facts, hub.push), hub.private, hub.push


def card_for(run_dir: str | None, repo_id: str | None, kind: str, outtype: str = "q8_0") -> str:
    """The rendered model card (markdown with YAML metadata), or empty with no run. With GGUF chosen it describes
    the GGUF file (named as the export will name it); the export writes the parity check's result into it."""
    if not run_dir:
        return ""
    from studio.hub import render_card

    repo = (repo_id or "").strip() or None
    gguf = None
    if kind == "gguf":
        from studio.hub.facts import load_facts
        from studio.hub.gguf_export import pending_gguf

        gguf = pending_gguf(load_facts(run_dir), repo, outtype or "q8_0")
    return render_card(run_dir, repo_id=repo, merged=kind in ("merged", "gguf"), gguf=gguf)


def repo_for_kind(run_dir: str | None, repo: str | None, kind: str) -> str | None:
    """The run's default repo name for ``kind`` when ``repo`` is still a default name (of any kind), so switching
    to GGUF offers ``…-gguf``; a name the user typed is kept (None: keep it)."""
    if not run_dir:
        return None
    from studio.hub.facts import default_repo_name, load_facts

    try:
        facts = load_facts(run_dir)
    except (StudioError, OSError):
        return None
    defaults = {default_repo_name(facts, k) for k in ("adapter", "merged", "gguf")}
    return default_repo_name(facts, kind) if (repo or "").strip() in defaults | {""} else None


def describe_gguf(result: Any) -> str:
    """The Publish tab's account of a GGUF export: files, stages, the parity check line by line."""
    mark = "✅" if result.passed else "⚠️ **Check failed: this GGUF will not be pushed.**"
    lines = [f"{mark} {result.check.summary()}", "", f"Exported to `{result.path}`: "
             + ", ".join(f"`{f}`" for f in result.files)]
    lines += [f"- stage {s.describe()}" for s in result.stages]
    lines += [f"- {line}" for line in result.check.lines()]
    lines += [f"- note: {n}" for n in result.notes]
    return "\n".join(lines)


def card_preview(card: str) -> str:
    """The card as the page shows it: the YAML header in a code block, image links (files in the repo) as notes."""
    if not card.strip():
        return "_Pick a run to render its model card._"
    from studio.hub import parse_card

    try:
        _, body = parse_card(card)
    except HubError as exc:
        return f"⚠️ {exc}\n\n" + card
    meta = card[:len(card) - len(body)].strip().removeprefix("---").removesuffix("---").strip()  # as typed
    body = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", r"_(\1: `\2`, uploaded with the model)_", body)
    head = f"**Metadata (YAML header)**\n\n```yaml\n{meta}\n```\n\n" if meta else ""
    return head + body


def token_status(token: str | None) -> str:
    """Where the token would come from, without asking the Hub (no network)."""
    from studio.hub import resolve_token

    resolved = resolve_token(token or None)
    if resolved is None:
        return ("No token yet: paste one with write access below, set `HF_TOKEN`, or run `hf auth login`. "
                "Export works without one.")
    return f"A token is available ({resolved.source}). Press **Check token** to see whose it is."


def check_token(token: str | None) -> str:
    """``whoami`` as one line. Raises HubError."""
    from studio.hub import hub_endpoint, whoami

    account = whoami(token or None)
    return f"✅ {account.describe()} on {hub_endpoint()}"


# ----------------------------------------------------------------------------------------------------------- UI
@dataclass
class PublishHandles:
    form: HubForm
    run: gr.Dropdown
    repo_id: gr.Textbox
    private: gr.Checkbox
    kind: gr.Radio
    outtype: gr.Dropdown
    token: gr.Textbox
    check: gr.Button
    account: gr.Markdown
    card: gr.Textbox
    preview: gr.Markdown
    rerender: gr.Button
    push: gr.Button
    export_dir: gr.Textbox
    export: gr.Button
    status: gr.Markdown
    link: gr.Markdown
    error: gr.Markdown
    on_push: Callable[..., dict]
    """The Push handler ``(run, repo, private, kind, card, token, progress)`` (tests call it with a fake
    progress)."""
    on_export: Callable[..., dict]
    """The Export handler ``(run, repo, kind, card, folder, progress)``."""


def render(studio: Any, ctx: AppContext) -> PublishHandles:
    gr.Markdown("### Publish\nPush the adapter, a merged model or a checked GGUF with a model card to the Hugging "
                "Face Hub, or "
                "export it to a folder. The card is rendered from the run and is yours to edit before pushing.")
    choices = run_choices(studio)
    first = choices[0][1] if choices else None
    repo0, private0, kind0 = run_defaults(first)
    h = lambda name: field_help(HubConfig, name)  # noqa: E731
    with gr.Row(equal_height=True):
        run = gr.Dropdown(choices, value=first, label="Run", scale=3, elem_id="publish-run",
                          info="Runs with a saved adapter, newest first.")
        repo_id = gr.Textbox(repo0, label="Repo id", scale=2, elem_id="publish-repo", info=h("repo_id"),
                             placeholder="name or owner/name")
        private = gr.Checkbox(value=private0, label="Private", elem_id="publish-private", info=h("private"))
    with gr.Row(equal_height=True):
        kind = gr.Radio(KINDS, value=kind0, label="What to publish", elem_id="publish-kind", info=h("push"), scale=3)
        outtype = gr.Dropdown(OUTTYPES, value="q8_0", label="GGUF type", elem_id="publish-outtype", scale=1,
                              info="Tensor type of the GGUF (only for GGUF).")
        keep = gr.Checkbox(False, label="Keep the merged model", elem_id="publish-keep-merged", scale=1,
                           info="GGUF only: keep RUN/export/merged (2 bytes a parameter) for a later merged push; "
                                "removed once the GGUF is checked by default, as `studio export` does.")
    with gr.Row(equal_height=True):
        token = gr.Textbox(type="password", label="Hugging Face token (optional)", scale=3, elem_id="publish-token",
                           placeholder="hf_… (kept in memory for this request only; empty = HF_TOKEN or your login)")
        check = gr.Button("Check token", scale=0, min_width=130, elem_id="publish-check")
    account = gr.Markdown(token_status(None), elem_id="publish-account")
    error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="publish-error")
    card0 = _safe_card(first, repo0, kind0)
    with gr.Row():
        with gr.Column():
            card = gr.Textbox(card0, label="Model card (README.md, editable)", lines=22, max_lines=40,
                              elem_id="publish-card")
            rerender = gr.Button("Re-render the card from the run", elem_id="publish-rerender")
        with gr.Column():
            preview = gr.Markdown(card_preview(card0), elem_id="publish-preview", max_height=620,
                                  container=True)
    with gr.Row(equal_height=True):
        push = gr.Button("Push to the Hub", variant="primary", elem_id="publish-push")
        export_dir = gr.Textbox(label="Export folder", scale=2, elem_id="publish-export-dir",
                                placeholder="default: <run>/export/adapter (or merged, gguf)")
        export = gr.Button("Export only (no upload)", elem_id="publish-export")
    status = gr.Markdown(elem_id="publish-status")
    link = gr.Markdown(elem_id="publish-link")
    gr.Markdown("The pushed repo's README is the card above (a GGUF export writes its own, with the parity check). "
                "From a terminal: `studio push --run <run folder> --repo NAME [--format gguf]`, or "
                "`studio export --run <run folder> --format gguf`.")
    # Not registered as ctx.forms.hub: these widgets follow the picked run, and must not leak into the next run.
    form = HubForm(repo_id=repo_id, private=private, push=kind)

    def fail(err: BaseException) -> dict:
        text = error_text(err)
        gr.Warning(text)
        return {error: error_box(text)}

    def on_pick(run_value: str | None, otype: str = "q8_0") -> dict:
        try:
            repo, priv, kd = run_defaults(run_value)
            text = card_for(run_value, repo, kd, otype)
            return {repo_id: repo, private: priv, kind: kd, card: text, preview: card_preview(text),
                    error: error_box(None), link: ""}
        except Exception as err:  # noqa: BLE001 - one sentence
            return fail(err)

    def on_rerender(run_value: str | None, repo: str, kd: str, otype: str = "q8_0") -> dict:
        try:
            text = card_for(run_value, repo, kd, otype)
            return {card: text, preview: card_preview(text), error: error_box(None)}
        except Exception as err:  # noqa: BLE001
            return fail(err)

    def on_kind(run_value: str | None, repo: str, kd: str, otype: str = "q8_0") -> dict:
        """A new kind: the default repo name follows it (a typed one stays), and the card describes it."""
        new_repo = repo_for_kind(run_value, repo, kd)
        out = on_rerender(run_value, new_repo or repo, kd, otype)
        if new_repo is not None:
            out[repo_id] = new_repo
        return out

    def on_check(tok: str) -> dict:
        try:
            return {account: check_token(tok), error: error_box(None)}
        except Exception as err:  # noqa: BLE001
            out = fail(err)
            out[account] = token_status(tok)
            return out

    def on_push(run_value: str | None, repo: str, priv: bool, kd: str, text: str, tok: str, otype: str = "q8_0",
                keep_merged: bool = False, progress: gr.Progress = gr.Progress()) -> dict:
        try:
            if not run_value:
                raise HubError("Pick a run with an adapter first (train one in the Train tab)")
            if not (repo or "").strip():
                raise HubError("Type a repo id (name or owner/name) to push to")
            gguf = otype if kd == "gguf" else None
            url = studio.publish(run_value, repo.strip(), tok or None, private=bool(priv), merged=kd == "merged",
                                 card=(text if text.strip() else None) if not gguf else None,
                                 progress=Reporter(progress), gguf=gguf, keep_merged=bool(keep_merged))
            gr.Info(f"Pushed to {url}")
            what = f"a GGUF ({gguf})" if gguf else "a merged model" if kd == "merged" else "the adapter"
            parity = ""
            if gguf:
                from studio.hub.gguf_export import load_check

                found = load_check(Path(run_value) / "export" / "gguf")
                parity = f" {found['summary']}." if found else ""
            return {status: f"✅ Pushed {what} ({'private' if priv else 'public'}).{parity}",
                    link: f"🔗 [{url}]({url})", error: error_box(None)}
        except Exception as err:  # noqa: BLE001
            out = fail(err)
            out[status] = f"Push failed: {error_text(err)}"
            return out

    def on_export(run_value: str | None, repo: str, kd: str, text: str, folder: str, otype: str = "q8_0",
                  keep_merged: bool = False, progress: gr.Progress = gr.Progress()) -> dict:
        from studio.hub import default_export_dir

        try:
            if not run_value:
                raise HubError("Pick a run with an adapter first (train one in the Train tab)")
            merged = kd == "merged"
            if kd == "gguf":
                out = Path(folder.strip()).expanduser() if (folder or "").strip() else None
                result = studio.export_run(run_value, out, repo_id=(repo or "").strip() or None, gguf=otype,
                                           progress=Reporter(progress), keep_merged=bool(keep_merged))
                return {status: describe_gguf(result), error: error_box(None)}
            out = Path(folder.strip()).expanduser() if (folder or "").strip() else \
                default_export_dir(run_value, merged)
            result = studio.export_run(run_value, out, merged=merged, card=text if text.strip() else None,
                                       repo_id=(repo or "").strip() or None,
                                       progress=Reporter(progress))
            notes = "".join(f"\n- {n}" for n in result.notes)
            probe = f"\n- probe check: {result.probe.describe()}" if result.probe is not None else ""
            return {status: f"✅ Exported {plural(len(result.files), 'file')} to `{result.path}`{notes}{probe}",
                    error: error_box(None)}
        except Exception as err:  # noqa: BLE001
            return fail(err)

    def refresh(current: str | None, run_dir: str | None, otype: str = "q8_0") -> dict:
        opts = run_choices(studio)
        values = [v for _, v in opts]
        value = next((v for v in (current, run_dir) if v and v in values), values[0] if values else None)
        if value == current:
            return {run: gr.update(choices=opts)}
        return {run: gr.update(choices=opts, value=value), **on_pick(value, otype)}

    everything = [repo_id, private, kind, card, preview, error, link]
    hidden = dict(api_visibility="undocumented", show_progress="hidden")
    publishing = dict(concurrency_limit=1, concurrency_id="publish")
    run.input(on_pick, [run, outtype], everything, api_name="publish_pick_run", **hidden)
    kind.input(on_kind, [run, repo_id, kind, outtype], [repo_id, card, preview, error], api_name="publish_kind",
               **hidden)
    outtype.input(on_rerender, [run, repo_id, kind, outtype], [card, preview, error], api_name="publish_outtype",
                  **hidden)
    rerender.click(on_rerender, [run, repo_id, kind, outtype], [card, preview, error], api_name="render_card")
    card.change(card_preview, card, preview, trigger_mode="always_last", api_name="card_preview", **hidden)
    check.click(on_check, token, [account, error], api_name="whoami")
    push.click(on_push, [run, repo_id, private, kind, card, token, outtype, keep], [status, link, error], api_name="push",
               **publishing)
    export.click(on_export, [run, repo_id, kind, card, export_dir, outtype, keep], [status, error], api_name="export",
                 **publishing)
    run.focus(refresh, [run, ctx.run_dir, outtype], [run, *everything], api_name="publish_runs", **hidden)
    if ctx.tabs is not None:
        ctx.tabs.change(refresh, [run, ctx.run_dir, outtype], [run, *everything], api_name="publish_runs_on_tab",
                        **hidden)
    return PublishHandles(form=form, run=run, repo_id=repo_id, private=private, kind=kind, outtype=outtype,
                          token=token, check=check,
                          account=account, card=card, preview=preview, rerender=rerender, push=push,
                          export_dir=export_dir, export=export, status=status, link=link, error=error,
                          on_push=on_push, on_export=on_export)


def _safe_card(run_dir: str | None, repo: str, kind: str) -> str:
    try:
        return card_for(run_dir, repo, kind)
    except StudioError:
        return ""
