"""The trained prompt format as role pieces, rendered three ways: Python (for the checks), Jinja (the chat template
embedded in a GGUF for text-template runs) and Go (the Ollama Modelfile's ``TEMPLATE``).

A run's prompt is ``default system (when there is no system message) + per message: <pre> content <post> +
generation prompt``. For chat runs the pieces are read off the trained chat template by rendering sentinel
conversations, then checked: the pieces must reproduce the template on several conversations, or the template is
not a plain role wrapper and the export says so. For text-template runs (``{prompt}\\n ### Solution: {completion}``)
the pieces come from the template itself: the user piece ends at the response template, the answer ends with eos.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from studio.errors import TemplateError

SYSTEM_MARK = "\x00system\x00"
"""Stands for the system prompt inside a text template's user piece (a ``{system}`` field)."""
_S, _U, _A, _U2, _A2 = "@@S@@", "@@U@@", "@@A@@", "@@U2@@", "@@A2@@"
ANSWER_ROLE = {"prompt_completion": "completion", "instruction": "output"}
QUESTION_ROLE = {"prompt_completion": "prompt", "instruction": "instruction", "text": "text"}


@dataclass(frozen=True)
class Pieces:
    """The literal text around each message of the trained format."""

    default_system: str = ""
    system_pre: str = ""
    system_post: str = ""
    user_pre: str = ""
    user_post: str = ""
    assistant_pre: str = ""
    assistant_post: str = ""
    generation: str = ""
    system_message: bool = True
    """System messages are rendered as messages (chat runs); text runs show the system prompt only through a
    ``{system}`` field of their template."""

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The prompt text for ``messages`` (what the Jinja and Go renderings produce)."""
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        out = "" if messages and messages[0]["role"] == "system" else self.default_system
        for m in messages:
            role, text = m["role"], m["content"]
            if role == "system" and self.system_message:
                out += self.system_pre + text + self.system_post
            elif role == "user":
                out += (self.user_pre + text + self.user_post).replace(SYSTEM_MARK, system)
            elif role == "assistant":
                out += self.assistant_pre + text + self.assistant_post
        return out + (self.generation if add_generation_prompt else "")

    def stops(self, eos: str | None) -> list[str]:
        """Stop strings: eos and the end-of-turn text after an answer."""
        found = [eos or "", self.assistant_post.strip()]
        return [s for s in dict.fromkeys(found) if s]

    # ------------------------------------------------------------------------------------------------- jinja
    def jinja(self) -> str:
        """A Jinja chat template (as in ``tokenizer.chat_template``) that renders like :meth:`render`."""
        def lit(text: str) -> str:
            parts = [json.dumps(p, ensure_ascii=False) for p in text.split(SYSTEM_MARK)]
            return " + system_message + ".join(parts)

        sys_branch = (lit(self.system_pre) + " + message['content'] + " + lit(self.system_post)
                      if self.system_message else '""')
        return ("{%- set system_message = messages[0]['content'] if messages and messages[0]['role'] == 'system' "
                "else '' -%}"
                "{%- if not (messages and messages[0]['role'] == 'system') %}{{ " + lit(self.default_system) +
                " }}{%- endif %}"
                "{%- for message in messages %}"
                "{%- if message['role'] == 'system' %}{{ " + sys_branch + " }}"
                "{%- elif message['role'] == 'user' %}{{ " + lit(self.user_pre) + " + message['content'] + " +
                lit(self.user_post) + " }}"
                "{%- elif message['role'] == 'assistant' %}{{ " + lit(self.assistant_pre) +
                " + message['content'] + " + lit(self.assistant_post) + " }}"
                "{%- endif %}{%- endfor %}"
                "{%- if add_generation_prompt %}{{ " + lit(self.generation) + " }}{%- endif %}")

    # ---------------------------------------------------------------------------------------------------- go
    def go(self) -> str:
        """An Ollama (Go text/template) TEMPLATE over ``.Messages`` that renders like :meth:`render`."""
        def lit(text: str) -> str:
            return "{{ $.System }}".join(_go_text(p) for p in text.split(SYSTEM_MARK))

        sys_branch = (lit(self.system_pre) + "{{ .Content }}" + lit(self.system_post)) if self.system_message else ""
        return ('{{ if not (and .Messages (eq (index .Messages 0).Role "system")) }}' + lit(self.default_system) +
                "{{ end }}"
                "{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
                '{{ if eq .Role "system" }}' + sys_branch +
                '{{ else if eq .Role "user" }}' + lit(self.user_pre) + "{{ .Content }}" + lit(self.user_post) +
                "{{ if $last }}" + lit(self.generation) + "{{ end }}"
                '{{ else if eq .Role "assistant" }}' + lit(self.assistant_pre) + "{{ .Content }}"
                "{{ if not $last }}" + lit(self.assistant_post) + "{{ end }}"
                "{{ end }}{{ end }}")


def _go_text(text: str) -> str:
    """Literal text for a Go template: ``{{`` is written as an action printing it."""
    return text.replace("{{", '{{ "{{" }}')


# --------------------------------------------------------------------------------------------------- chat runs
def chat_pieces(tokenizer: Any, template: str) -> Pieces:
    """Read the pieces off a chat template.

    Raises:
        TemplateError: the template is not a plain role wrapper (the pieces don't reproduce it).
    """
    def r(messages: list[dict[str, str]], gen: bool) -> str:
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             add_generation_prompt=gen)

    def msg(role: str, text: str) -> dict[str, str]:
        return {"role": role, "content": text}

    conv = [msg("system", _S), msg("user", _U)]
    su, sug = r(conv, False), r(conv, True)
    sua = r([*conv, msg("assistant", _A)], False)
    suau = r([*conv, msg("assistant", _A), msg("user", _U2)], False)
    bad = TemplateError("the chat template is not a plain role wrapper (per-message text around the content), so "
                        "llama.cpp/Ollama templates can't be derived from it")
    if not (sug.startswith(su) and sua.startswith(su) and suau.startswith(sua) and _S in su and _U in su):
        raise bad
    generation = sug[len(su):]
    a_pre, _, a_post = sua[len(su):].partition(_A)
    u_pre, _, _ = suau[len(sua):].partition(_U2)
    s_pre, _, rest = su.partition(_S)
    between, _, u_post = rest.partition(_U)
    if not between.endswith(u_pre):
        raise bad
    s_post = between[: len(between) - len(u_pre)]
    alone, _, _ = r([msg("user", _U)], False).partition(_U)
    if not alone.endswith(u_pre):
        raise bad
    pieces = Pieces(default_system=alone[: len(alone) - len(u_pre)], system_pre=s_pre, system_post=s_post,
                    user_pre=u_pre, user_post=u_post, assistant_pre=a_pre, assistant_post=a_post,
                    generation=generation)
    for check in ([msg("user", "Hi")], [msg("system", "Be brief."), msg("user", "Hi")],
                  [msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "2+2?")],
                  [msg("system", "S"), msg("user", "a"), msg("assistant", "b"), msg("user", "c")]):
        if pieces.render(check) != r(check, True):
            raise bad
    return pieces


# --------------------------------------------------------------------------------------------------- text runs
def text_pieces(fmt: Any) -> Pieces:
    """The pieces of a text-template (or plain) run: the user piece ends where the answer starts.

    Raises:
        TemplateError: the template has no field for the question.
    """
    from studio.templates import fill, placeholders

    q_role, a_role = QUESTION_ROLE.get(fmt.format), ANSWER_ROLE.get(fmt.format)
    mapping = dict(fmt.mapping)
    template = fmt.template
    if template is None:  # no template: plain concatenation (or the text itself)
        template = "{" + mapping.get(q_role, q_role or "text") + "}" + (
            "{" + mapping.get(a_role, a_role) + "}" if a_role else "")
    values: dict[str, Any] = {p: "" for p in placeholders(template)}
    for role, column in [(q_role, mapping.get(q_role)), (a_role, mapping.get(a_role))]:
        for name in (role, column):
            if name and name in values:
                values[name] = _U if role == q_role else _A
    if "system" in values:
        values["system"] = SYSTEM_MARK
    text = fill(template, values)
    if _U not in text:
        raise TemplateError(f"the text template {template!r} has no field for the question, so no chat template "
                            "can be derived from it")
    eos = fmt.eos_token or ""
    if a_role is None or _A not in text:
        before, _, after = text.partition(_U)
        return Pieces(user_pre=before, user_post=after, system_message=False)
    prompt, _, after = text.partition(_A)
    a_pre = ""
    resp = fmt.response_template
    if resp and resp in prompt:
        cut = prompt.find(resp) + len(resp)
        prompt, a_pre = prompt[:cut], prompt[cut:]
    u_pre, _, u_post = prompt.partition(_U)
    return Pieces(user_pre=u_pre, user_post=u_post, assistant_pre=a_pre, assistant_post=after + eos,
                  system_message=False)


def pieces_for(fmt: Any, tokenizer: Any) -> Pieces:
    """The pieces of a run's saved :class:`~studio.prompt_format.PromptFormat`."""
    if fmt.uses_chat:
        return chat_pieces(tokenizer, fmt.chat_template)
    return text_pieces(fmt)


_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


def gguf_chat_template(fmt: Any, pieces: Pieces) -> str:
    """The chat template to embed: the trained one for chat runs (without TRL's ``{% generation %}`` markers, which
    only mark the trained tokens and which llama.cpp's template engine does not know), the text template as Jinja
    for the others. The check renders what was embedded, so a marker that mattered would show there."""
    return _GENERATION_TAG.sub("", fmt.chat_template) if fmt.uses_chat else pieces.jinja()


def conversation(question: str, system: str | None) -> list[dict[str, str]]:
    """A probe prompt as a chat conversation (with the run's default system prompt when it has one)."""
    out = [{"role": "system", "content": system}] if system else []
    return [*out, {"role": "user", "content": question}]
