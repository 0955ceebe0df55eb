"""Prompt templates and chat templates: pure functions with exact-string tests.

A text template is a string with ``{placeholder}`` fields, filled from a row's columns and from the role
names of the column mapping (``prompt``, ``completion``, ``instruction``, ``input``, ``output``, ``text``,
``system``). Its ``response_template`` marks where the answer starts: loss is computed after it.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

from studio.errors import TemplateError

CHATML_TEMPLATE = (
    "{%- for message in messages %}{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{%- generation %}{{- message['content'] + '<|im_end|>' }}"
    "{%- endgeneration %}{{- '\\n' }}{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""ChatML with ``{% generation %}`` markers, so assistant-only loss masks can be computed."""


@dataclass(frozen=True)
class TextTemplate:
    """A named text template; ``response_template`` splits prompt from completion."""

    name: str
    template: str
    response_template: str | None
    description: str


NAMED_TEMPLATES: dict[str, TextTemplate] = {
    t.name: t
    for t in (
        TextTemplate("solution", "{prompt}\n ### Solution: {completion}", "### Solution:",
                     "The problem, then '### Solution:' and the answer."),
        TextTemplate("alpaca",
                     "Below is an instruction that describes a task. Write a response that appropriately "
                     "completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
                     "### Response:\n{output}",
                     "### Response:\n", "Alpaca-style instruction / input / response."),
        TextTemplate("qa", "Question: {prompt}\nAnswer: {completion}", "Answer:", "Plain question and answer."),
        TextTemplate("plain", "{text}", None, "The text column as it is (loss on every token)."),
    )
}


def placeholders(template: str) -> list[str]:
    """The field names a template uses, in order, without repeats.

    Raises:
        TemplateError: if the template's braces are malformed or a field is positional.
    """
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise TemplateError(f"template is malformed ({exc}); use {{column}} placeholders and "
                            f"double braces {{{{ }}}} for literal ones") from None
    if any(not n or n.isdigit() for n in names):
        raise TemplateError("template has an empty {} placeholder; name a column, e.g. {question}")
    bad = [n for n in names if not n.replace("_", "").replace("-", "").replace(" ", "").isalnum()]
    if bad:
        raise TemplateError(f"template placeholder {{{bad[0]}}} is not a plain column name")
    return list(dict.fromkeys(names))


def resolve(template: str | None, response_template: str | None = None) -> tuple[str | None, str | None]:
    """Turn a template name or string into ``(template_string, response_template)``.

    An explicit ``response_template`` wins over a named template's own.
    """
    if template is None or not template.strip():
        return None, response_template
    named = NAMED_TEMPLATES.get(template.strip())
    if named is not None:
        return named.template, response_template if response_template is not None else named.response_template
    if "{" not in template and "}" not in template:  # a misspelled name would train as literal text
        import difflib

        close = difflib.get_close_matches(template.strip().lower(), list(NAMED_TEMPLATES), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise TemplateError(f"template {template.strip()[:60]!r} is neither a named template nor has any {{column}} "
                            f"placeholder; {hint}named templates: {', '.join(NAMED_TEMPLATES)}")
    return template, response_template


def fill(template: str, values: dict[str, object]) -> str:
    """Fill ``template`` from ``values``; an unknown placeholder names what is available.

    Raises:
        TemplateError: a placeholder has no matching column or role.
    """
    missing = [n for n in placeholders(template) if n not in values]
    if missing:
        available = ", ".join(sorted(values)) or "(none)"
        raise TemplateError(f"template placeholder {{{missing[0]}}} matches no column; available: {available}")
    return template.format_map({k: "" if v is None else v for k, v in values.items()})


def split_at_response(text: str, response_template: str | None) -> tuple[str, str] | None:
    """Split rendered text after the first ``response_template``: ``(prompt, completion)``.

    Returns None when there is no marker in the text (such a row trains nothing in completion mode).
    """
    if not response_template:
        return None
    at = text.find(response_template)
    if at < 0:
        return None
    cut = at + len(response_template)
    return text[:cut], text[cut:]
