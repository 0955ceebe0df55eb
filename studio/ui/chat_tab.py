"""Chat tab: the base model and the tuned adapter side by side, fed by one input box, both streaming.

Glue only: ``studio.inference.ChatEngine`` builds prompts with the run's own template, streams, and compares base vs
tuned on one copy of the weights; ``studio.evaluate`` scores the held-out split; the probe timeline is read from
the run's events. The loaded engine lives in ``Studio.chat`` (shared by every browser; each request names its own
adapter, so two browsers never see each other's choice). Each browser's conversation is kept as ``{role, content}``
messages in a ``gr.State`` per pane (exactly what each model said); the panes only show it, nothing is read back.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import gradio as gr

from studio.errors import ModelError
from studio.inference.opening import open_engine, open_engine_reporting
from studio.inference.params import GenerationParams
from studio.ui.chat_eval import evaluate_pairs_panel, is_preference
from studio.ui.chat_runs import (DEFAULT_MAX_NEW_TOKENS, answer_budget, probe_timeline,  # noqa: F401
                                 system_prompt_of)
from studio.ui import arena_panel, forgetting_panel
from studio.ui.common import AppContext, Reporter, error_box, error_text, next_step
from studio.ui.forms import widget

TAB_ID = "chat"
LABEL = "4 · Chat"
EVAL_HEADERS = ["Metric", "Base model", "Fine-tuned"]
BLANK_NOTE = "␣ (the answer is only whitespace: {n} characters)"
ROW_HEADERS = ["#", "Question", "Reference", "Base answer", "Base ✓", "Tuned answer", "Tuned ✓"]
ROW_WIDTHS = ["4%", "23%", "16%", "21%", "7%", "21%", "7%"]
"""Per-row table columns as shares of the table's width, so every column fits the window (text wraps)."""


# ----------------------------------------------------------------------------------------------------- core glue
def run_choices(studio: Any) -> list[tuple[str, str]]:
    """``(label, run dir)`` of runs that have an adapter (finished, or stopped with one), newest first."""
    from studio.runs import list_runs

    out = []
    for r in list_runs(studio.runs_dir):
        if r.adapter_path is None or r.status == "running":
            continue
        loss = f" · loss {r.final_loss:.3f}" if r.final_loss is not None else ""
        out.append((f"{r.name} · {r.status} · step {r.step}{loss}", str(r.path)))
    return out


def pick_run(choices: list[tuple[str, str]], *preferred: str | None) -> str | None:
    """The first of ``preferred`` that is a choice, else the newest run."""
    values = [v for _, v in choices]
    for p in preferred:
        if p and str(p) in values:
            return str(p)
    return values[0] if values else None


def displayed(messages: list[dict[str, str]] | None) -> list[dict[str, str]]:
    """The conversation kept in state (``{role, content}``, exactly what each model said) as the pane shows it."""
    return [{"role": m["role"], "content": shown(m["content"]) if m["role"] == "assistant" else m["content"]}
            for m in messages or []]


def shown(text: str) -> str:
    """An answer as the pane shows it: a whitespace-only answer would be invisible, so it is described."""
    return BLANK_NOTE.format(n=len(text)) if text and not text.strip() else text


GEN_FIELDS = tuple(f.name for f in dataclasses.fields(GenerationParams))
"""The generation widgets, in the order the ``chat`` API takes them (the dataclass's field order)."""


def gen_params(values: dict[str, Any], budget: int = DEFAULT_MAX_NEW_TOKENS) -> GenerationParams:
    """GenerationParams from the accordion's widget values, by field name (a blank token budget: ``budget``).

    Raises:
        ConfigError: a value out of range.
    """
    return GenerationParams.from_values(values, max_new_tokens=budget)


def eval_tables(report: Any) -> tuple[list[list[Any]], list[list[Any]]]:
    """(summary table, per-row table) of an ``EvalReport``."""
    mark = {True: "✅", False: "❌", None: ""}
    rows = [[r.index + 1, r.prompt, r.reference_answer or r.reference or "", answer_cell(r.base_answer, r.base_output),
             mark[r.base_correct], answer_cell(r.tuned_answer, r.tuned_output), mark[r.tuned_correct]]
            for r in report.per_row]
    return report.table(), rows


ANSWER_CHARS = 160
"""How much of an answer's text the per-row table shows when no answer was found in it."""


def answer_cell(answer: str | None, output: str | None) -> str:
    """The extracted answer; where none was found, the answer's own text (cut), so a blank never hides it."""
    if answer is not None:
        return answer
    if output is None:
        return ""
    text = " ".join(output.split())
    text = text if len(text) <= ANSWER_CHARS else text[:ANSWER_CHARS - 1] + "…"
    return f"(no answer found) {text}" if text else "(no answer found: empty)"


# ----------------------------------------------------------------------------------------------------------- UI
@dataclass
class ChatHandles:
    run: gr.Dropdown
    adapter_path: gr.Textbox
    load: gr.Button
    loaded: gr.Markdown
    system: gr.Textbox
    base_chat: gr.Chatbot
    tuned_chat: gr.Chatbot
    base_messages: gr.State
    """The base pane's conversation as ``{role, content}`` messages: what the model is given next turn."""
    tuned_messages: gr.State
    message: gr.Textbox
    send: gr.Button
    stop: gr.Button
    clear: gr.Button
    notice: gr.Markdown
    params: list[Any]
    probes: gr.Markdown
    eval_rows: gr.Number
    eval_button: gr.Button
    eval_table: gr.Dataframe
    eval_per_row: gr.Dataframe
    error: gr.Markdown
    on_load: Callable[..., dict]
    """The Load handler ``(run, folder, progress)`` (tests call it with a fake progress)."""
    on_eval: Callable[..., dict]
    """The Evaluate handler ``(run, folder, rows, max tokens, progress)``."""
    on_send: Callable[..., Iterator[tuple]]
    """The Send handler ``(text, base messages, tuned messages, run, folder, system, *generation values)``."""
    arena: Any = None
    """The blind arena's handles (:mod:`studio.ui.arena_panel`)."""
    forgetting: Any = None
    """The forgetting check's handles (:mod:`studio.ui.forgetting_panel`)."""


def render(studio: Any, ctx: AppContext) -> ChatHandles:
    gr.Markdown("### Chat with the base model and your fine-tune\nOne question goes to both; the answers use the "
                "exact prompt format the run trained with. Base and tuned share one copy of the base weights.")
    choices = run_choices(studio)
    first = pick_run(choices)
    budgets: dict[str, int] = {}
    first_budget = answer_budget(first, budgets)
    with gr.Row(equal_height=True):
        run = gr.Dropdown(choices, value=first, label="Run", scale=3, elem_id="chat-run",
                          info="Runs with an adapter, newest first.")
        adapter_path = gr.Textbox(label="…or an adapter folder / Hub id", scale=2, elem_id="chat-adapter-path",
                                  placeholder="runs/my-run/checkpoints/checkpoint-20, or owner/name")
        load = gr.Button("Load", scale=0, min_width=100, elem_id="chat-load")
    loaded = gr.Markdown("_Nothing loaded yet: the model loads on **Load** or with the first question._",
                         elem_id="chat-loaded")
    error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="chat-error")
    system = gr.Textbox(system_prompt_of(first), label="System prompt", lines=1, max_lines=4, elem_id="chat-system",
                        info="Prefilled from the run's config; empty means none.")
    with gr.Row(equal_height=True):
        base_chat = gr.Chatbot(label="Base model", height=340, elem_id="chat-base", render_markdown=False)
        tuned_chat = gr.Chatbot(label="Fine-tuned", height=340, elem_id="chat-tuned", render_markdown=False)
    # the conversations as messages (per browser): the models are given these, never the panes read back
    base_messages, tuned_messages = gr.State([]), gr.State([])
    with gr.Row(equal_height=True):
        message = gr.Textbox(placeholder="Ask both models… (Enter sends)", show_label=False, scale=5,
                             elem_id="chat-input")
        send = gr.Button("Send", variant="primary", scale=0, min_width=90, elem_id="chat-send")
        stop = gr.Button("Stop", variant="stop", scale=0, min_width=80, elem_id="chat-stop")
        clear = gr.Button("Clear", scale=0, min_width=80, elem_id="chat-clear")
    with gr.Row(equal_height=True):
        notice = gr.Markdown(elem_id="chat-notice")
        markdown = gr.Checkbox(value=False, label="Render Markdown", scale=0, min_width=180, elem_id="chat-markdown",
                               info="Off: the exact text the models wrote (`####`, `*` and all).")
    g = GenerationParams(max_new_tokens=first_budget)
    with gr.Accordion("Generation parameters", open=False, elem_id="chat-params"):
        gen: dict[str, Any] = {}
        special = {"max_new_tokens": {"info": "Set from the picked run's answers (long enough for the longest usual "
                                              "ones).", "elem_id": "chat-max-new-tokens"}}
        for row in (GEN_FIELDS[:3], GEN_FIELDS[3:-1], GEN_FIELDS[-1:]):
            with gr.Row():
                for name in row:
                    gen[name] = widget(GenerationParams, name, getattr(g, name), **special.get(name, {"info": None}))
        max_new_tokens = gen["max_new_tokens"]
    params = [gen[name] for name in GEN_FIELDS]
    with gr.Accordion("Probe timeline: answers at each checkpoint", open=False, elem_id="chat-probes-panel"):
        probes = gr.Markdown(probe_timeline(first), elem_id="chat-probes")
    with gr.Accordion("Evaluate on the held-out split", open=False, elem_id="chat-eval-panel"):
        with gr.Row(equal_height=True):
            eval_rows = gr.Number(value=20, precision=0, minimum=1, label="Rows (first N held-out rows)",
                                  elem_id="chat-eval-rows")
            eval_tokens = gr.Number(value=first_budget, precision=0, minimum=1, label="Max answer tokens",
                                    elem_id="chat-eval-tokens")
            eval_button = gr.Button("Evaluate base vs tuned", elem_id="chat-eval")
        eval_table = gr.Dataframe(headers=EVAL_HEADERS, value=None, interactive=False, label="Base vs tuned",
                                  elem_id="chat-eval-table")
        eval_per_row = gr.Dataframe(headers=ROW_HEADERS, value=None, interactive=False, wrap=True, max_height=400,
                                    column_widths=ROW_WIDTHS, label="Per-row results",
                                    elem_id="chat-eval-rows-table")
    from studio.ui import docs_panel, serve_panel  # issue 21: grounded answers and the OpenAI-compatible API

    docs_panel.render(studio, run, adapter_path, system, params)
    serve_panel.render(studio, run, adapter_path)
    arena = arena_panel.render(studio, ctx)
    forgetting = forgetting_panel.render(studio, ctx, run)
    has_publish = "publish" in ctx.tab_ids
    next_step(ctx, "happy with the answers? Publish the adapter with a model card in the **Publish** tab."
              if has_publish else "`studio push --run <run folder> --repo NAME` publishes the adapter.",
              "publish" if has_publish else None, "Next: Publish →")

    def source_of(run_value: str | None, folder: str | None) -> str:
        # a Send or Load before the run list has filled (the tab just opened) takes the newest run itself
        src = (folder or "").strip() or (run_value or "") or (pick_run(run_choices(studio)) or "")
        if not src:
            raise ModelError("Pick a run with an adapter (train one in the Train tab) or type an adapter folder")
        return src

    def describe(engine: Any, name: str) -> str:
        info = engine.adapters.get(name)
        where = info.source if info else name
        return f"Loaded **{engine.base_model}** on {engine.device} with adapter `{name}` ({where})."

    def on_load(run_value: str | None, folder: str | None, progress: gr.Progress = gr.Progress()) -> dict:
        try:
            engine, name = open_engine_reporting(studio, source_of(run_value, folder), Reporter(progress))
            return {loaded: describe(engine, name), system: engine.default_system_prompt(name),
                    error: error_box(None)}
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            text = error_text(err)
            gr.Warning(text)
            return {error: error_box(text)}

    def on_send(text: str, base_msgs: list | None, tuned_msgs: list | None, run_value: str | None,
                folder: str | None, sys_prompt: str, *values: Any) -> Iterator[tuple]:
        by_name = dict(zip(GEN_FIELDS, values))  # ``params`` is built from GEN_FIELDS: the same order
        text = (text or "").strip()
        base_turns, tuned_turns = list(base_msgs or []), list(tuned_msgs or [])  # what the models are given
        if not text:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        ask = {"role": "user", "content": text}
        base_new = [*base_turns, ask, {"role": "assistant", "content": ""}]
        tuned_new = [*tuned_turns, ask, {"role": "assistant", "content": ""}]
        keep = (gr.skip(), gr.skip())  # the states change once the answers are complete
        yield "", displayed(base_new), displayed(tuned_new), *keep, gr.skip(), error_box(None), "_Loading the model…_"
        try:
            params = gen_params(by_name)
            engine, name = open_engine(studio, source_of(run_value, folder))
            stream = engine.stream_compare(text, tuned_turns, base_history=base_turns, params=params,
                                           system_prompt=sys_prompt or "", adapter=name)
            loaded_text = describe(engine, name)
            yield gr.skip(), gr.skip(), gr.skip(), *keep, loaded_text, gr.skip(), "_Answering…_"
            for base_text, tuned_text in stream:
                base_new[-1]["content"], tuned_new[-1]["content"] = base_text, tuned_text
                yield gr.skip(), displayed(base_new), displayed(tuned_new), *keep, gr.skip(), gr.skip(), gr.skip()
            base_new[-1]["content"], tuned_new[-1]["content"] = stream.base.text, stream.tuned.text
            end = {"stopped": "stopped", "length": "hit the token limit"}
            notes = [stream.notice] if stream.notice else []
            notes += [f"{side} answer {end[s.finish_reason]}." for side, s in (("Tuned", stream.tuned),
                                                                               ("Base", stream.base))
                      if s.finish_reason in end]
            yield ("", displayed(base_new), displayed(tuned_new), base_new, tuned_new, loaded_text, error_box(None),
                   " ".join(notes) if notes else "")
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            message_text = error_text(err)
            gr.Warning(message_text)
            yield (text, displayed(base_turns), displayed(tuned_turns), *keep, gr.skip(), error_box(message_text),
                   "")

    def on_stop() -> str:
        engine = studio.chat
        if engine is not None:
            engine.stop()
        return "_Stopped._"

    def on_pick(run_value: str | None) -> tuple:
        budget = answer_budget(run_value, budgets)
        return system_prompt_of(run_value), probe_timeline(run_value), budget, budget

    def refresh(current: str | None, run_dir: str | None) -> tuple:
        opts = run_choices(studio)
        value = pick_run(opts, current, run_dir)
        if value == current:
            return gr.update(choices=opts, value=value), probe_timeline(value), gr.skip(), gr.skip(), gr.skip()
        budget = answer_budget(value, budgets)
        return gr.update(choices=opts, value=value), probe_timeline(value), system_prompt_of(value), budget, budget

    def on_eval(run_value: str | None, folder: str | None, rows: Any, tokens: Any,
                progress: gr.Progress = gr.Progress()) -> dict:
        from studio.evaluate import evaluate_run

        bar = Reporter(progress)
        try:
            if (folder or "").strip() or not run_value:
                raise ModelError("Evaluation needs a run (its held-out split): pick one in the Run list")
            engine, name = open_engine_reporting(studio, run_value, bar.part(0.0, 0.2))
            if is_preference(run_value):  # preference runs: held-out pairs, not answers
                summary, pairs = evaluate_pairs_panel(run_value, engine=engine, adapter=name, rows=int(rows or 20),
                                                      progress=bar.part(0.2, 1.0))
                return {eval_table: summary, eval_per_row: pairs, error: error_box(None)}
            report = evaluate_run(run_value, rows=int(rows or 20), engine=engine, adapter=name,
                                  max_new_tokens=int(tokens or DEFAULT_MAX_NEW_TOKENS), progress=bar.part(0.2, 1.0))
            summary, per_row = eval_tables(report)
            return {eval_table: summary, eval_per_row: {"headers": ROW_HEADERS, "data": per_row},
                    error: error_box(None)}
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            text = error_text(err)
            gr.Warning(text)
            return {error: error_box(text)}

    send_inputs = [message, base_messages, tuned_messages, run, adapter_path, system, *params]
    send_outputs = [message, base_chat, tuned_chat, base_messages, tuned_messages, loaded, error, notice]
    generate = dict(concurrency_limit=1, concurrency_id="chat-generate")
    hidden = dict(api_visibility="undocumented", show_progress="hidden")
    send.click(on_send, send_inputs, send_outputs, api_name="chat", show_progress="hidden", **generate)
    message.submit(on_send, send_inputs, send_outputs, api_name="chat_submit", **hidden, **generate)
    stop.click(on_stop, outputs=notice, concurrency_limit=None, show_progress="hidden", api_name="stop_chat")
    clear.click(lambda: ([], [], [], [], ""), outputs=[base_chat, tuned_chat, base_messages, tuned_messages, notice],
                api_name="clear_chat", **hidden)
    load.click(on_load, [run, adapter_path], [loaded, system, error], api_name="load_adapter", **generate)
    run.input(on_pick, run, [system, probes, max_new_tokens, eval_tokens], api_name="chat_pick_run", **hidden)
    markdown.change(lambda on: (gr.update(render_markdown=on), gr.update(render_markdown=on)), markdown,
                    [base_chat, tuned_chat], **hidden)
    eval_button.click(on_eval, [run, adapter_path, eval_rows, eval_tokens], [eval_table, eval_per_row, error],
                      api_name="evaluate", **generate)
    refreshed = [run, probes, system, max_new_tokens, eval_tokens]
    run.focus(refresh, [run, ctx.run_dir], refreshed, api_name="chat_runs", **hidden)
    if ctx.tabs is not None:  # entering the tab (a click or a "Next" button) refreshes the run list
        ctx.tabs.change(refresh, [run, ctx.run_dir], refreshed, api_name="chat_runs_on_tab", **hidden)
    return ChatHandles(run=run, adapter_path=adapter_path, load=load, loaded=loaded, system=system,
                       base_chat=base_chat, tuned_chat=tuned_chat, base_messages=base_messages,
                       tuned_messages=tuned_messages, message=message, send=send, stop=stop,
                       clear=clear, notice=notice, params=params, probes=probes, eval_rows=eval_rows,
                       eval_button=eval_button, eval_table=eval_table, eval_per_row=eval_per_row, error=error,
                       on_load=on_load, on_eval=on_eval, on_send=on_send, arena=arena,
                       forgetting=forgetting)
