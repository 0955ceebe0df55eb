"""The Chat tab's "Ground on documents" panel (the seed's RAG notebook): retrieve the closest chunks of a file or
folder, show them with source and score, and answer with base and tuned side by side on the same chunks."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import gradio as gr

from studio.errors import ConfigError
from studio.formatting import plural
from studio.ui.common import error_box, warn

CHUNK_HEADERS = ["#", "Source", "Score", "Chunk"]


def render(studio: Any, run: Any, adapter_path: Any, system: Any, params: list[Any]) -> dict[str, Any]:
    """The panel; ``params`` are the tab's generation widgets (GenerationParams' field order)."""
    from studio.retrieval.index import TOP_K

    with gr.Accordion("Ground on documents (RAG)", open=False, elem_id="chat-docs-panel"):
        gr.Markdown("Answers **based only on** the closest chunks of your documents (.txt, .md, .html, .pdf files "
                    "or a folder); base and tuned get the same chunks.")
        with gr.Row(equal_height=True):
            path = gr.Textbox(label="Documents (file or folder)", scale=4, elem_id="chat-docs-path")
            top_k = gr.Number(TOP_K, precision=0, minimum=1, maximum=20, label="Chunks", scale=1,
                              elem_id="chat-docs-topk")
        with gr.Row(equal_height=True):
            question = gr.Textbox(placeholder="Ask about the documents…", show_label=False, scale=5,
                                  elem_id="chat-docs-question")
            ask = gr.Button("Ask both", variant="primary", scale=0, min_width=110, elem_id="chat-docs-ask")
        status = gr.Markdown(elem_id="chat-docs-status")
        error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="chat-docs-error")
        with gr.Row(equal_height=True):
            base = gr.Textbox(label="Base model", lines=4, interactive=False, elem_id="chat-docs-base")
            tuned = gr.Textbox(label="Fine-tuned", lines=4, interactive=False, elem_id="chat-docs-tuned")
        chunks = gr.Dataframe(headers=CHUNK_HEADERS, value=None, interactive=False, wrap=True, max_height=320,
                              column_widths=["5%", "20%", "10%", "65%"], label="Retrieved chunks",
                              elem_id="chat-docs-chunks")

    def on_ask(docs: str, k: Any, text: str, run_value: str | None, folder: str | None, sys_prompt: str,
               *values: Any) -> Iterator[tuple]:
        from studio.inference.opening import open_engine
        from studio.retrieval.grounding import Grounding, context_budget
        from studio.retrieval.index import open_index
        from studio.inference.params import GenerationParams
        from studio.ui.chat_runs import DEFAULT_MAX_NEW_TOKENS

        try:
            if not (text or "").strip():
                raise ConfigError("Type a question about the documents")
            if not (docs or "").strip():
                raise ConfigError("Type the path of a documents file or folder")
            source = (folder or "").strip() or run_value
            if not source:
                raise ConfigError("Pick a run with an adapter first")
            names = [f.name for f in dataclasses.fields(GenerationParams)]  # the widgets' order
            settings = GenerationParams.from_values(dict(zip(names, values)), max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
            yield gr.skip(), gr.skip(), gr.skip(), "_Indexing the documents…_", error_box(None)
            index = open_index(docs.strip())
            g = Grounding.retrieve(index, text.strip(), int(k or TOP_K))
            note = f"{plural(len(index.chunks), 'chunk')} ({index.retriever}); retrieval {g.seconds * 1000:.0f} ms."
            note = f"{note} {index.notice}." if index.notice else note
            yield "", "", g.table(), f"{note} _Answering…_", gr.skip()
            engine, name = open_engine(studio, source)
            stream = engine.stream_compare(g.message, params=settings, system_prompt=sys_prompt or "",
                                           adapter=name,
                                           max_input_tokens=context_budget(engine, settings.max_new_tokens))
            for base_text, tuned_text in stream:
                yield base_text, tuned_text, gr.skip(), gr.skip(), gr.skip()
            yield stream.base.text, stream.tuned.text, gr.skip(), note, gr.skip()
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            yield gr.skip(), gr.skip(), gr.skip(), "", error_box(warn(err))

    inputs = [path, top_k, question, run, adapter_path, system, *params]
    outputs = [base, tuned, chunks, status, error]
    ask.click(on_ask, inputs, outputs, api_name="ask_docs", show_progress="hidden", concurrency_limit=1,
              concurrency_id="chat-generate")
    question.submit(on_ask, inputs, outputs, api_name="ask_docs_submit", show_progress="hidden",
                    concurrency_limit=1, concurrency_id="chat-generate")
    return {"path": path, "question": question, "ask": ask, "base": base, "tuned": tuned, "chunks": chunks,
            "error": error, "on_ask": on_ask}
