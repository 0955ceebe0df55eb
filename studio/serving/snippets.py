"""Copyable examples for a running server: a ``curl`` command and a Python ``openai`` client call."""
from __future__ import annotations


def curl_snippet(url: str, model: str, api_key: str | None = None) -> str:
    auth = f' \\\n  -H "Authorization: Bearer {api_key}"' if api_key else ""
    body = ('{"model": "%s", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64}' % model)
    return f"curl {url}/chat/completions{auth} \\\n  -H 'Content-Type: application/json' \\\n  -d '{body}'"


def openai_snippet(url: str, model: str, api_key: str | None = None) -> str:
    return (f'from openai import OpenAI\n\nclient = OpenAI(base_url="{url}", api_key="{api_key or "none"}")\n'
            f'reply = client.chat.completions.create(\n    model="{model}",\n'
            f'    messages=[{{"role": "user", "content": "Hello!"}}], max_tokens=64, temperature=0)\n'
            f'print(reply.choices[0].message.content)')
