"""The Ollama Modelfile beside a GGUF, and the llama.cpp / Ollama command lines the README shows."""
from __future__ import annotations

import json
from typing import Any


def modelfile_text(gguf_file: str, pieces: Any, fmt: Any, tokenizer: Any = None) -> str:
    """``FROM`` the GGUF, ``TEMPLATE`` in the trained format, ``SYSTEM`` when the run had one, a ``PARAMETER stop``
    per stop token.

    Raises:
        HubError: a piece of the template contains ``\"\"\"`` (it can't be quoted in a Modelfile).
    """
    from studio.errors import HubError

    template = pieces.go()
    if '"""' in template:
        raise HubError('the prompt format contains """, which an Ollama Modelfile cannot quote')
    lines = [f"FROM ./{gguf_file}", "", f'TEMPLATE """{template}"""']
    system = fmt.default_system_prompt if pieces.system_message else None
    if system:
        if '"""' in system:
            raise HubError('the system prompt contains """, which an Ollama Modelfile cannot quote')
        lines += ["", f'SYSTEM """{system}"""']
    lines.append("")
    for stop in pieces.stops(fmt.eos_token):
        lines.append(f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def commands(gguf_file: str, repo_id: str | None, name: str) -> dict[str, str]:
    """Shell lines: ollama create/run from the folder, ollama run from the Hub, llama-cli."""
    out = {"ollama_create": f"ollama create {name} -f Modelfile", "ollama_run": f"ollama run {name}",
           "llama_cli": f"llama-cli -m {gguf_file} -cnv", "llama_server": f"llama-server -m {gguf_file}"}
    if repo_id:
        out["ollama_hub"] = f"ollama run hf.co/{repo_id}"
        out["llama_cli_hub"] = f"llama-cli -hf {repo_id} -cnv"
    return out
