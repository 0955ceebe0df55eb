"""The Chat tab's Serve panel: start and stop ``studio serve``'s OpenAI-compatible API on the loaded engine, with
its URL and copyable ``curl`` / ``openai`` snippets. The server belongs to this app (one per app, kept in the
render closure), serves whatever engine the Chat tab has loaded, and stops with the app."""
from __future__ import annotations

from typing import Any

import gradio as gr

from studio.errors import ConfigError
from studio.ui.common import error_box, warn


def render(studio: Any, run: Any, adapter_path: Any) -> dict[str, Any]:
    """The panel; ``run``/``adapter_path`` are the tab's pickers (the model loaded for serving)."""
    held: dict[str, Any] = {}
    with gr.Accordion("Serve: an OpenAI-compatible API", open=False, elem_id="chat-serve-panel"):
        gr.Markdown("Serves the base model and the loaded adapters (by run name) at `/v1` on this machine; tools "
                    "that speak the OpenAI API can use it. Beyond loopback an API key is required.")
        with gr.Row(equal_height=True):
            host = gr.Textbox("127.0.0.1", label="Host", scale=2, elem_id="chat-serve-host")
            port = gr.Number(8000, precision=0, minimum=0, maximum=65535, label="Port", scale=1,
                             elem_id="chat-serve-port")
            key = gr.Textbox("", label="API key (optional on 127.0.0.1)", type="password", scale=2,
                             elem_id="chat-serve-key")
            start = gr.Button("Start server", variant="primary", scale=0, min_width=130, elem_id="chat-serve-start")
            stop = gr.Button("Stop server", scale=0, min_width=120, elem_id="chat-serve-stop")
        status = gr.Markdown("_Not serving._", elem_id="chat-serve-url")
        error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="chat-serve-error")
        curl = gr.Code("", language="shell", label="curl", interactive=False, elem_id="chat-serve-curl")
        client = gr.Code("", language="python", label="openai (Python)", interactive=False,
                         elem_id="chat-serve-openai")

    def on_start(run_value: str | None, folder: str | None, host_value: str, port_value: Any, key_value: str):
        from studio.inference.opening import open_engine
        from studio.serving.app import ServeOptions, Server, create_app, is_loopback
        from studio.serving.snippets import curl_snippet, openai_snippet

        try:
            if held.get("server") is not None:
                on_stop()
            host_value, api_key = (host_value or "127.0.0.1").strip(), (key_value or "").strip() or None
            if not is_loopback(host_value) and not api_key:
                raise ConfigError(f"listening on {host_value} (beyond this machine) needs an API key")
            source = (folder or "").strip() or run_value
            if not source:
                raise ConfigError("Pick a run with an adapter to serve")
            engine, name = open_engine(studio, source)
            server = Server(create_app(lambda: studio.chat, ServeOptions(api_key=api_key)), host_value,
                            int(port_value or 0)).start()
            held["server"] = server
            text = f"Serving **{engine.base_model}** and `{name}` at `{server.url}` (model `{name}` or `base`)."
            return (text, error_box(None), curl_snippet(server.url, name, api_key),
                    openai_snippet(server.url, name, api_key))
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            return gr.skip(), error_box(warn(err)), gr.skip(), gr.skip()

    def on_stop() -> str:
        server = held.pop("server", None)
        if server is None:
            return "_Not serving._"
        server.stop()
        return f"_Stopped the server on port {server.port}._"

    start.click(on_start, [run, adapter_path, host, port, key], [status, error, curl, client],
                api_name="serve_start", concurrency_limit=1, concurrency_id="chat-generate")
    stop.click(on_stop, outputs=status, api_name="serve_stop")
    return {"start": start, "stop": stop, "status": status, "curl": curl, "openai": client, "held": held}
