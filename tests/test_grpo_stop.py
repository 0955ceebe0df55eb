"""GRPO's stop at the ``####`` line: exact tokens in, the end token forced right after the answer line."""
from __future__ import annotations

import pytest

from studio.training.methods.grpo_stop import EndAtAnswer, answer_stop, stops_at_answer

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.demo import ensure_demo_model

    path = ensure_demo_model()
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)


def _ids(tok, text):
    return tok.encode(text, add_special_tokens=False)


def test_the_end_token_is_forced_once_the_answer_line_is_complete_and_not_before(tiny):
    tok, _ = tiny
    eos = tok.eos_token_id
    prompt = _ids(tok, "Q?")
    done = _ids(tok, "We add 2 and 40.\n#### 42\n")
    open_line = _ids(tok, "#### 42 and more text")  # the answer line has not ended: no stop
    proc = EndAtAnswer(tok, [eos])
    width = len(prompt)
    rows = [prompt + done, prompt + open_line[:len(done)] + [tok.pad_token_id] * (len(done) - len(open_line))]
    vocab = len(tok)
    forced_at = []
    for t in range(width, len(done) + width + 1):
        ids = torch.tensor([r[:t] for r in rows])
        scores = proc(ids, torch.zeros(2, vocab))
        if torch.isinf(scores[0]).any():
            forced_at.append(t)
            assert scores[0].argmax().item() == eos and torch.isinf(scores[0]).sum().item() == vocab - 1
        assert not torch.isinf(scores[1]).any()
    assert forced_at == [width + len(done)]  # right after the line break that ends "#### 42", once
    assert tok.decode(rows[0][width:]).endswith("#### 42\n") and proc.forced == [True, False]


def test_a_row_that_ended_by_itself_is_left_alone(tiny):
    tok, _ = tiny
    eos = tok.eos_token_id
    proc = EndAtAnswer(tok, [eos])
    proc(torch.tensor([[5, 6]]), torch.zeros(1, len(tok)))
    scores = proc(torch.tensor([[5, 6, eos]]), torch.zeros(1, len(tok)))
    assert proc.ended == [True] and proc.forced == [False] and not torch.isinf(scores).any()
    tail = _ids(tok, "#### 42\n")
    later = torch.tensor([[5, 6, eos, *tail]])
    assert not torch.isinf(proc(later, torch.zeros(1, len(tok)))).any()


class Script:
    """A logits processor that makes the model write ``tokens`` after the prompt, whatever its weights."""

    def __init__(self, tokens, width):
        self.tokens, self.width = tokens, width

    def __call__(self, input_ids, scores):
        k = input_ids.shape[1] - self.width
        if k < len(self.tokens):
            scores[:, :] = float("-inf")
            scores[:, self.tokens[k]] = 0.0
        return scores


def test_generate_inside_answer_stop_ends_after_the_answer_line_and_is_restored_after(tiny):
    tok, model = tiny
    eos = tok.eos_token_id
    prompt = torch.tensor([_ids(tok, "Q?")])
    script = _ids(tok, "work\n#### 42\nmore more more")
    kwargs = dict(max_new_tokens=len(script) + 2, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=eos)
    with answer_stop(model, tok, [eos]):
        out = model.generate(prompt, logits_processor=[Script(script, prompt.shape[1])], **kwargs)
    completion = out[0, prompt.shape[1]:].tolist()
    assert completion == _ids(tok, "work\n#### 42\n") + [eos]
    assert "generate" not in vars(model)
    full = model.generate(prompt, logits_processor=[Script(script, prompt.shape[1])], **kwargs)
    assert tok.decode(full[0, prompt.shape[1]:]).startswith("work\n#### 42\nmore more more")


def test_the_stop_is_on_for_the_rewards_that_read_the_answer_line_only():
    assert stops_at_answer(["answer"]) and stops_at_answer(["format", "length"])
    assert not stops_at_answer(["length"]) and not stops_at_answer(["regex", "my.py:score"])


def test_the_trainer_args_carry_the_switch():
    """``train.stop_at_answer: false`` reaches the trainer's config as no stop, even with the answer reward."""
    from studio.config import RunConfig
    from studio.training.methods.grpo import _args

    cfg = RunConfig.from_dict({"train": {"method": "grpo", "batch_size": 2, "num_generations": 2}})
    base = {"output_dir": "unused", "use_cpu": True}
    assert _args(cfg, base)["studio_stop_at_answer"] is True
    cfg.train.stop_at_answer = False
    assert _args(cfg, base)["studio_stop_at_answer"] is False
