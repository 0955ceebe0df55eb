"""Publish a run: model card, adapter or merged export, push to the Hugging Face Hub.

The public API (what the CLI and the UI's Hub tab call):

- :func:`render_card` -> editable markdown (README.md with YAML metadata); :func:`parse_card` reads one back
- :func:`export` -> a local folder with the adapter (or merged model), tokenizer, card and loss curve
- :func:`export_gguf` -> a checked GGUF (parity against the merged model), an Ollama Modelfile and the card
- :func:`push` -> export + create the repo + upload; returns the repo URL (``gguf=`` pushes a checked GGUF)
- :func:`whoami`, :func:`resolve_token` -> who a token belongs to; HF_TOKEN / stored login / in-memory value

Heavy imports (torch, transformers, peft, huggingface_hub) happen inside the functions.
"""
from studio.hub.card import render_card
from studio.hub.card_data import card_metadata_of, parse_card
from studio.hub.facts import load_facts
from studio.hub.exporting import ExportResult, default_export_dir, export
from studio.hub.merge import ProbeCheck
from studio.hub.gguf_export import GGUFExport, export_gguf
from studio.hub.push import (HubAccount, Token, describe_error, hub_endpoint, push,
                             resolve_token, upload_folder, whoami)

__all__ = ["ExportResult", "GGUFExport", "HubAccount", "ProbeCheck", "Token", "card_metadata_of", "default_export_dir",
           "describe_error", "export", "export_gguf", "hub_endpoint", "load_facts", "parse_card", "push", "render_card",
           "resolve_token", "upload_folder", "whoami"]
