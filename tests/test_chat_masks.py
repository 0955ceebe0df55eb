"""Assistant-only masks on real chat templates: exactly each assistant content plus its end token is trained.

SmolLM2's template (as shipped in its GGUF, no ``{% generation %}`` markers, a default system prompt) on its own
tokenizer; the Llama-3, Qwen2.5, Gemma, Mistral, Phi-3 and Zephyr templates (tests/data/chat_templates) on a copy
of that tokenizer that knows the family's special tokens, as the family's own tokenizer does.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from studio.data.chat_masks import has_generation_markers, render_chat
from studio.data.render import segments
from studio.errors import DataError

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
IM_END = "<|im_end|>"

SYSTEM_FIRST = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Spain?"},
    {"role": "assistant", "content": "Madrid, since 1561."},
]
THREE_TURNS = [
    {"role": "user", "content": "Say ok."},
    {"role": "assistant", "content": "ok"},
    {"role": "user", "content": "What is 12 x 3?"},
    {"role": "assistant", "content": "12 x 3 = 36."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue.\nOr green."},
]


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


def pieces(tok, messages, chat_template=None) -> tuple[list[str], str]:
    """The trained runs of a rendered conversation, decoded, and the untrained text joined."""
    _, ids, mask = render_chat(messages, tok, chat_template)
    segs = segments(tok, ids, mask)
    return [t for t, on in segs if on], "".join(t for t, on in segs if not on)


def contents(messages) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "assistant"]


# ------------------------------------------------------------------------------------------------ markers
@pytest.mark.parametrize("text, expected", [
    ("{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}", False),
    ("{{ 'generation' }}{# generation #}", False),
    ("{% generation %}{{ m }}{% endgeneration %}", True),
    ("{%- generation -%}{{ m }}{%- endgeneration -%}", True),
    ("{%-generation%}{{ m }}{%- endgeneration %}", True),
    ({"default": "{% generation %}x{% endgeneration %}", "tool_use": "x"}, True),
])
def test_generation_markers_are_the_block_tag_not_the_word(text, expected):
    assert has_generation_markers(text) is expected


def test_bundled_marker_templates_still_detected():
    from studio.demo import CHAT_TEMPLATE
    from studio.templates import CHATML_TEMPLATE

    assert has_generation_markers(CHATML_TEMPLATE) and has_generation_markers(CHAT_TEMPLATE)


# ------------------------------------------------------------------------------------------------ SmolLM2
def test_smollm2_template_has_no_markers_but_the_word(smollm2_tokenizer):
    assert "add_generation_prompt" in smollm2_tokenizer.chat_template
    assert not has_generation_markers(smollm2_tokenizer.chat_template)


def test_smollm2_single_turn(smollm2_tokenizer):
    trained, untrained = pieces(smollm2_tokenizer, [{"role": "user", "content": "What is 2 + 2?"},
                                                    {"role": "assistant", "content": "2 + 2 = 4."}])
    assert trained == ["2 + 2 = 4." + IM_END]
    assert untrained.endswith("<|im_start|>assistant\n\n")  # the header, then the "\n" after <|im_end|>
    assert "What is 2 + 2?" in untrained


def test_smollm2_system_first(smollm2_tokenizer):
    trained, untrained = pieces(smollm2_tokenizer, SYSTEM_FIRST)
    assert trained == [c + IM_END for c in contents(SYSTEM_FIRST)]
    assert "You are terse." in untrained and "SmolLM" not in untrained  # a given system prompt: no default


def test_smollm2_three_assistant_turns(smollm2_tokenizer):
    trained, untrained = pieces(smollm2_tokenizer, THREE_TURNS)
    assert trained == ["ok" + IM_END, "12 x 3 = 36." + IM_END, "Blue.\nOr green." + IM_END]
    assert untrained.count("<|im_start|>assistant\n") == 3  # every generation-prompt header stays untrained


def test_smollm2_injected_default_system_is_untrained(smollm2_tokenizer):
    text, _, _ = render_chat(THREE_TURNS, smollm2_tokenizer, None)
    trained, untrained = pieces(smollm2_tokenizer, THREE_TURNS)
    default = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert default in text and default in untrained and not any(default in t for t in trained)


def test_smollm2_keeps_whitespace_its_template_keeps(smollm2_tokenizer):
    trained, _ = pieces(smollm2_tokenizer, [{"role": "user", "content": "Hi"},
                                            {"role": "assistant", "content": "Hello!  \n"}])
    assert trained == ["Hello!  \n" + IM_END]


def test_smollm2_mask_equals_generation_marker_mask(smollm2_tokenizer):
    """The derived mask on the shipped template == transformers' marker mask on the same text (what TRL trains)."""
    marked = template("smollm2_training")
    for conv in (SYSTEM_FIRST, THREE_TURNS, THREE_TURNS[:2], [{"role": "assistant", "content": "Hi."}]):
        text, ids, mask = render_chat(conv, smollm2_tokenizer, None)
        assert smollm2_tokenizer.apply_chat_template(conv, tokenize=False, chat_template=marked) == text
        out = smollm2_tokenizer.apply_chat_template(conv, tokenize=True, return_dict=True, chat_template=marked,
                                                    return_assistant_tokens_mask=True)
        assert list(out["input_ids"]) == ids and list(out["assistant_masks"]) == mask and sum(mask) > 0


@pytest.mark.parametrize("content", ["assistant", "a", "user", "ok", "Say ok."])
def test_content_that_also_appears_in_headers_or_prompts(smollm2_tokenizer, content):
    conv = [{"role": "user", "content": "Say ok."}, {"role": "assistant", "content": content}]
    assert pieces(smollm2_tokenizer, conv)[0] == [content + IM_END]


def test_empty_answer_trains_its_end_token(smollm2_tokenizer):
    conv = [{"role": "user", "content": "Say nothing."}, {"role": "assistant", "content": ""}]
    assert pieces(smollm2_tokenizer, conv)[0] == [IM_END]


class NoOffsets:
    """A tokenizer without char offsets (like a Python "slow" one): everything else delegates to ``tok``."""

    def __init__(self, tok):
        self.tok = tok

    def __call__(self, text, **kw):
        if kw.get("return_offsets_mapping"):
            raise NotImplementedError("return_offset_mapping is not available when using Python tokenizers")
        return self.tok(text, **kw)

    def __getattr__(self, name):
        return getattr(self.tok, name)


@pytest.mark.parametrize("conv", [SYSTEM_FIRST, THREE_TURNS, [{"role": "user", "content": "Hi"},
                                                               {"role": "assistant", "content": "  Hello there  "}]])
def test_tokenizer_without_offsets_gives_the_same_mask(smollm2_tokenizer, conv):
    assert render_chat(conv, NoOffsets(smollm2_tokenizer), None) == render_chat(conv, smollm2_tokenizer, None)


# ------------------------------------------------------------------------------------------------ families
FAMILIES = {
    # name: (special tokens the family's tokenizer has, eos, end marker (None: eos), strips content, lead, system)
    "llama3": (["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], None, "<|eot_id|>", True, "", True),
    "qwen2_5": ([], None, IM_END, False, "", True),
    "gemma": (["<start_of_turn>", "<end_of_turn>"], None, "<end_of_turn>", True, "", False),
    # Mistral writes ' ' + content: where the tokenizer glues that space to the first word, it trains too
    "mistral": (["</s>"], "</s>", "</s>", False, " ", True),
    "phi3": (["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"], None, "<|end|>", False, "", True),
    "zephyr": (["<|system|>", "<|user|>", "<|assistant|>", "</s>"], "</s>", "</s>", False, "", True),
}


@pytest.fixture(scope="module")
def family_tokenizers(smollm2_tokenizer):
    out = {}
    for name, (specials, eos, *_rest) in FAMILIES.items():
        tok = copy.deepcopy(smollm2_tokenizer)
        tok.add_special_tokens({"additional_special_tokens": specials, **({"eos_token": eos} if eos else {})})
        out[name] = tok
    return out


def expected(name: str, messages, tok) -> list[str]:
    _, _, end, strips, lead, _ = FAMILIES[name]
    glued = [lead and tok.tokenize(lead + c)[0] != tok.tokenize(lead)[0] for c in contents(messages)]
    return [(lead if g else "") + (c.strip() if strips else c) + (end or tok.eos_token)
            for g, c in zip(glued, contents(messages))]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_three_turns_without_system(name, family_tokenizers):
    tok = family_tokenizers[name]
    trained, untrained = pieces(tok, THREE_TURNS, template(name))
    assert trained == expected(name, THREE_TURNS, tok)
    assert all(m["content"] in untrained for m in THREE_TURNS if m["role"] == "user")


@pytest.mark.parametrize("name", sorted(n for n, f in FAMILIES.items() if f[5]))
def test_family_system_first(name, family_tokenizers):
    tok = family_tokenizers[name]
    trained, untrained = pieces(tok, SYSTEM_FIRST, template(name))
    assert trained == expected(name, SYSTEM_FIRST, tok)
    assert "You are terse." in untrained


@pytest.mark.parametrize("name", ["llama3", "gemma"])
def test_family_templates_that_trim_content(name, family_tokenizers):
    conv = [{"role": "user", "content": "  Capital of France? "}, {"role": "assistant", "content": "  Paris.  \n"},
            {"role": "user", "content": "Spain?"}, {"role": "assistant", "content": "\nMadrid. "}]
    tok = family_tokenizers[name]
    assert pieces(tok, conv, template(name))[0] == [f"Paris.{FAMILIES[name][2]}", f"Madrid.{FAMILIES[name][2]}"]


def test_qwen_injects_an_untrained_default_system(family_tokenizers):
    tok = family_tokenizers["qwen2_5"]
    trained, untrained = pieces(tok, THREE_TURNS, template("qwen2_5"))
    assert "You are Qwen, created by Alibaba Cloud." in untrained
    assert trained == [c + IM_END for c in contents(THREE_TURNS)]


def test_phi3_final_eos_is_not_part_of_the_turn(family_tokenizers):
    tok = family_tokenizers["phi3"]
    text, _, _ = render_chat(THREE_TURNS, tok, template("phi3"))
    assert text.endswith("<|end|>\n" + tok.eos_token)
    assert pieces(tok, THREE_TURNS, template("phi3"))[0][-1] == "Blue.\nOr green.<|end|>"


def test_qwen3_renders_the_last_turn_differently(family_tokenizers):
    """Qwen3 adds an empty think block to the final assistant turn only: a render up to an earlier turn is not a
    prefix of the whole conversation. The think block is a prompt cue, untrained."""
    tok = family_tokenizers["qwen2_5"]
    text, _, _ = render_chat(THREE_TURNS, tok, template("qwen3"))
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\nBlue." in text and text.count("<think>") == 1
    trained, untrained = pieces(tok, THREE_TURNS, template("qwen3"))
    assert trained == [c + IM_END for c in contents(THREE_TURNS)]
    assert "<think>\n\n</think>\n\n" in untrained


def test_qwen3_reasoning_dropped_from_history_is_a_clear_error(family_tokenizers):
    """Qwen3 drops the reasoning of earlier turns: that content is nowhere in the text, so the row is refused
    (rather than trained wrong or not at all)."""
    conv = [{"role": "user", "content": "Say ok."}, {"role": "assistant", "content": "<think>\nEasy.\n</think>\n\nok"},
            {"role": "user", "content": "Again."}, {"role": "assistant", "content": "ok"}]
    with pytest.raises(DataError, match="can't find assistant turn 1"):
        render_chat(conv, family_tokenizers["qwen2_5"], template("qwen3"))


def test_identical_answers_in_several_turns(smollm2_tokenizer):
    conv = [m if m["role"] != "assistant" else {**m, "content": "ok"} for m in THREE_TURNS]
    trained, untrained = pieces(smollm2_tokenizer, conv)
    assert trained == ["ok" + IM_END] * 3 and untrained.count("<|im_start|>assistant\n") == 3


@pytest.mark.parametrize("name, messages, says", [
    ("gemma", SYSTEM_FIRST, "System role not supported"),
    ("mistral", [{"role": "user", "content": "Hi"}, {"role": "tool", "content": "42"}], "Only user and assistant"),
])
def test_a_template_refusing_a_conversation_is_a_data_error(name, messages, says, family_tokenizers):
    with pytest.raises(DataError, match=says):
        render_chat(messages, family_tokenizers[name], template(name), where="row 7")


# ------------------------------------------------------------------------------------------------ odd templates
CHATML_BODY = ("{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + CONTENT + '<|im_end|>\\n' }}"
               "{%- endfor %}")


def chatml(content: str = "m['content']", prompt: str = "<|im_start|>assistant\\n", guard: str = "") -> str:
    return (guard + CHATML_BODY.replace("CONTENT", content)
            + "{%- if add_generation_prompt %}{{- '" + prompt + "' }}{%- endif %}")


ENDS_WITH_ASSISTANT = ("{%- if messages[-1]['role'] != 'assistant' %}"
                       "{{- raise_exception('the last message must be the assistant one') }}{%- endif %}")


def test_generation_prompt_that_is_not_a_prefix_of_the_render(smollm2_tokenizer):
    tpl = chatml(prompt="<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n")  # Qwen3-style empty think block
    assert pieces(smollm2_tokenizer, THREE_TURNS, tpl)[0] == [c + IM_END for c in contents(THREE_TURNS)]


def test_template_refusing_prefixes_that_end_with_a_user_turn(smollm2_tokenizer):
    tpl = ENDS_WITH_ASSISTANT + chatml()
    assert pieces(smollm2_tokenizer, THREE_TURNS, tpl)[0] == [c + IM_END for c in contents(THREE_TURNS)]


def test_template_refusing_every_partial_conversation(smollm2_tokenizer):
    """No prefix renders at all: turns are found in order after the messages before them ("ok" is in "Say ok.")."""
    guard = ("{%- if messages | length != " + str(len(THREE_TURNS)) + " %}"
             "{{- raise_exception('whole conversations only') }}{%- endif %}")
    assert pieces(smollm2_tokenizer, THREE_TURNS, guard + chatml())[0] == [c + IM_END for c in contents(THREE_TURNS)]


def test_template_rewriting_the_content_trains_the_rewritten_turn(smollm2_tokenizer):
    tpl = chatml(content="(m['content'] | upper if m['role'] == 'assistant' else m['content'])")
    assert pieces(smollm2_tokenizer, SYSTEM_FIRST, tpl)[0] == ["PARIS." + IM_END, "MADRID, SINCE 1561." + IM_END]


def test_unlocatable_turn_is_a_data_error_not_a_silent_zero(smollm2_tokenizer):
    tpl = ENDS_WITH_ASSISTANT + chatml(content="m['content'] | upper")
    with pytest.raises(DataError, match=r"row 3: can't find assistant turn 1 \('Paris\.'\)"):
        render_chat(SYSTEM_FIRST, smollm2_tokenizer, tpl, where="row 3")


# ------------------------------------------------------------------------------------------------ the bundled chat data
def test_bundled_chat_rows_train_every_assistant_turn_on_smollm2(smollm2_tokenizer):
    from studio.config import ASSETS_CONFIGS, load_config
    from studio.data import load_data, preview, render, spec_for, to_messages

    cfg = load_config(ASSETS_CONFIGS / "chat.yaml").with_overrides(["train.max_length=4096"])
    loaded = load_data(cfg.data)
    spec = spec_for(cfg, loaded, smollm2_tokenizer)
    stats = preview(cfg, smollm2_tokenizer, n_rows=1, loaded=loaded).stats
    assert stats.n_rows == len(loaded.dataset) > 0 and stats.zero_trained_rows == 0
    for i in range(len(loaded.dataset)):
        row = loaded.dataset[i]
        r = render(row, smollm2_tokenizer, spec, where=f"row {i + 1}")
        messages = to_messages(spec.format, row, spec.mapping, spec.system_prompt)
        assert [t for t, on in r.segments if on] == [c + IM_END for c in contents(messages)], f"row {i + 1}"
