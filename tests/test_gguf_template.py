"""The trained prompt format as role pieces: read off chat templates, built from text templates, rendered as Jinja
(embedded in a GGUF) and as an Ollama Go template; the Modelfile; the card's usage snippet per format."""
from __future__ import annotations

import json

import pytest

from studio.errors import TemplateError
from studio.prompt_format import PromptFormat
from studio.templates import CHATML_TEMPLATE

SOLUTION = PromptFormat(format="prompt_completion", mapping={"prompt": "Problem", "completion": "Solution"},
                        template="{Problem}\n ### Solution: {Solution}", response_template="### Solution:",
                        eos_token="</s>")
SMOL_LIKE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
             "{{ '<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}"
             "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
             "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
]


@pytest.fixture(scope="module")
def tok():
    from studio.modeling.sources import resolve_model_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("studio/demo-tiny"))


def _apply(tok, template, conv):
    return tok.apply_chat_template(conv, chat_template=template, tokenize=False, add_generation_prompt=True)


@pytest.mark.parametrize("template", [CHATML_TEMPLATE, SMOL_LIKE], ids=["chatml-with-markers", "default-system"])
def test_chat_pieces_reproduce_the_template_and_its_jinja(tok, template):
    from studio.hub.gguf_template import chat_pieces

    pieces = chat_pieces(tok, template)
    assert pieces.user_pre == "<|im_start|>user\n" and pieces.generation == "<|im_start|>assistant\n"
    assert pieces.default_system == ("<|im_start|>system\nYou are helpful<|im_end|>\n" if template == SMOL_LIKE
                                     else "")
    for conv in CONVERSATIONS:
        assert pieces.render(conv) == _apply(tok, template, conv)
        assert _apply(tok, pieces.jinja(), conv) == _apply(tok, template, conv)


def test_a_template_that_is_not_a_role_wrapper_is_refused(tok):
    from studio.hub.gguf_template import chat_pieces

    odd = "{% for m in messages %}{{ m['content'] | upper }}{% if loop.last %}!{% endif %}{% endfor %}"
    with pytest.raises(TemplateError, match="not a plain role wrapper"):
        chat_pieces(tok, odd)


def test_text_template_pieces_end_the_prompt_at_the_response_template(tok):
    from studio.hub.gguf_template import text_pieces

    pieces = text_pieces(SOLUTION)
    conv = [{"role": "system", "content": "ignored: the template has no {system} field"},
            {"role": "user", "content": "Solve: 2x = 4"}]
    assert pieces.render(conv) == "Solve: 2x = 4\n ### Solution:"
    assert pieces.assistant_pre == " " and pieces.assistant_post == "</s>"
    assert _apply(tok, pieces.jinja(), conv) == "Solve: 2x = 4\n ### Solution:"
    assert pieces.stops("</s>") == ["</s>"]


def test_go_template_for_chatml_and_for_a_text_template(tok):
    from studio.hub.gguf_template import chat_pieces, text_pieces

    go = chat_pieces(tok, CHATML_TEMPLATE).go()
    assert '{{ else if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n' \
           '{{ if $last }}<|im_start|>assistant\n{{ end }}' in go
    text = text_pieces(SOLUTION).go()
    assert '{{ else if eq .Role "user" }}{{ .Content }}\n ### Solution:{{ if $last }}{{ end }}' in text
    assert "apply" not in text and "{{ .System }}" not in text
    braces = text_pieces(PromptFormat(format="prompt_completion", mapping={"prompt": "q", "completion": "a"},
                                      template="{{{{x}}}} {q}\nA: {a}", response_template="A:")).go()
    assert '{{ "{{" }}x}} {{ .Content }}' in braces  # literal braces survive Go's parser


def test_modelfile_has_from_template_system_and_stops(tok):
    from studio.hub.gguf_template import chat_pieces, text_pieces
    from studio.hub.modelfile import modelfile_text

    chat = PromptFormat(format="messages", mapping={"messages": "messages"}, chat_template=CHATML_TEMPLATE,
                        default_system_prompt="You are Studio.", eos_token="<|im_end|>")
    text = modelfile_text("m-q8_0.gguf", chat_pieces(tok, CHATML_TEMPLATE), chat)
    lines = text.splitlines()
    assert lines[0] == "FROM ./m-q8_0.gguf"
    assert 'SYSTEM """You are Studio."""' in text
    assert 'PARAMETER stop "<|im_end|>"' in lines
    assert text.count("PARAMETER stop") == 1
    solution = modelfile_text("m.gguf", text_pieces(SOLUTION), SOLUTION)
    assert "SYSTEM" not in solution and "### Solution:" in solution and 'PARAMETER stop "</s>"' in solution


# ------------------------------------------------------------------------------------------------- card snippet
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from hub_fixtures import make_run_dir

    return make_run_dir(tmp_path_factory.mktemp("runs") / "demo-run")


def _with_format(run_dir, fmt: PromptFormat):
    (run_dir / "prompt_format.json").write_text(json.dumps(fmt.to_dict()), encoding="utf-8")


def _usage(card: str) -> str:
    return card.split("## Usage", 1)[1]


def test_card_snippet_of_a_text_template_run_prompts_as_trained(demo_run):
    from studio.hub import render_card

    _with_format(demo_run, SOLUTION)
    usage = _usage(render_card(demo_run, repo_id="me/solver"))
    assert "apply_chat_template" not in usage
    assert 'prompt = question + "\\n ### Solution:"' in usage
    code = usage.split("```python\n", 1)[1].split("```", 1)[0]
    ns: dict = {}
    exec(code.split("prompt =", 1)[0].split("\n")[-2] + "\nprompt =" + code.split("prompt =", 1)[1].split("\n")[0],
         ns)  # the snippet's own two lines build the trained prompt
    assert ns["prompt"] == "Your question here\n ### Solution:"


def test_card_snippet_of_a_chat_run_uses_the_chat_template_and_system_prompt(demo_run):
    from studio.hub import render_card

    _with_format(demo_run, PromptFormat(format="messages", mapping={"messages": "messages"},
                                        chat_template=CHATML_TEMPLATE, default_system_prompt="You are Studio."))
    usage = _usage(render_card(demo_run, repo_id="me/chat"))
    assert "apply_chat_template(messages, add_generation_prompt=True" in usage
    assert '{"role": "system", "content": "You are Studio."}' in usage


def test_card_title_and_repo_default_come_from_model_and_dataset(demo_run):
    from studio.hub import render_card
    from studio.hub.facts import default_repo_name, load_facts

    name = default_repo_name(load_facts(demo_run))
    assert name == "demo-tiny-gsm8k-lora"
    card = render_card(demo_run)
    assert f"# {name}\n" in card and "demo-run" not in card.split("## Training data")[0]
