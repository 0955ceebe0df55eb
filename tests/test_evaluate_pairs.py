"""Held-out preference evaluation: the scores from log-probabilities, and the log-probabilities themselves on the real
SmolLM2 against a hand computation."""
from __future__ import annotations

import json
import math

import pytest

from studio.evaluate_pairs import pair_scores
from studio.paths import ASSETS


def test_scores_count_pairs_where_chosen_is_more_likely_and_the_reward_over_the_reference():
    # (summed logp, tokens): pair 1 chosen wins summed and per token; pair 2 loses summed (longer) but wins per
    # token; pair 3 ties (not a win)
    chosen = [(-2.0, 4), (-9.0, 10), (-3.0, 3)]
    rejected = [(-5.0, 4), (-6.0, 2), (-3.0, 3)]
    s = pair_scores(chosen, rejected)
    assert s.pairs == 3 and s.wins == 1
    assert s.preference_accuracy == pytest.approx(1 / 3)
    assert s.preference_accuracy_per_token == pytest.approx(2 / 3)  # -0.9 > -3.0 per token
    assert s.margin == pytest.approx((3.0 - 3.0 + 0.0) / 3)
    assert s.reward_accuracy is None and "reward_accuracy" not in s.summary()
    # the tuned model against a reference: implicit margins (c - rc) - (r - rr)
    ref_c, ref_r = [(-3.0, 4), (-8.0, 10), (-3.0, 3)], [(-4.0, 4), (-6.5, 2), (-2.0, 3)]
    t = pair_scores(chosen, rejected, ref_chosen=ref_c, ref_rejected=ref_r, beta=0.1)
    rewards = [(1.0) - (-1.0), (-1.0) - (0.5), (0.0) - (-1.0)]
    assert t.reward_accuracy == pytest.approx(2 / 3)
    assert t.reward_margin == pytest.approx(0.1 * sum(rewards) / 3)
    assert set(t.summary()) >= {"preference_accuracy", "reward_accuracy", "reward_margin", "pairs"}


def _hand_logp(model, tokenizer, prompt: str, answer: str) -> float:
    """log p(answer | prompt) summed over the answer's tokens, from the chat template's text and one forward pass."""
    import torch

    user = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": answer}], tokenize=False)
    assert full.startswith(head)
    head_ids = tokenizer(head, add_special_tokens=False).input_ids
    ids = tokenizer(full, add_special_tokens=False).input_ids
    assert ids[:len(head_ids)] == head_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[:-1], dim=-1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    return float(logp[len(head_ids) - 1:].sum())


@pytest.mark.slow
def test_log_probabilities_of_two_real_pairs_match_a_hand_computation(smollm2_folder):
    from studio.config import DataConfig, ModelConfig
    from studio.data.pairs import render_pair
    from studio.data.render import make_spec
    from studio.evaluate_pairs import answer_logps
    from studio.inference import BASE, ChatEngine

    engine = ChatEngine.from_base(ModelConfig(name_or_path="smollm2-135m-instruct"), device="cpu")
    lines = (ASSETS / "datasets" / "word_problem_preferences.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[1:3]]  # a missing "####" line, then a bare number
    spec = make_spec(DataConfig(), "preference", {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"},
                     "completion", 512)
    pairs = [render_pair(r, engine.tokenizer, spec) for r in rows]
    chosen, rejected = answer_logps(engine, pairs, adapter=BASE, batch_size=4)  # padded together: 4 rows, 1 batch
    for row, c, r in zip(rows, chosen, rejected):
        for (got, k), answer in ((c, row["chosen"]), (r, row["rejected"])):
            want = _hand_logp(engine.model, engine.tokenizer, row["prompt"], answer)
            assert got == pytest.approx(want, abs=2e-3), answer
            assert k == len(engine.tokenizer(answer + "<|im_end|>\n", add_special_tokens=False).input_ids)
    scores = pair_scores(chosen, rejected)
    wins = sum(_hand_logp(engine.model, engine.tokenizer, row["prompt"], row["chosen"])
               > _hand_logp(engine.model, engine.tokenizer, row["prompt"], row["rejected"]) for row in rows)
    assert scores.preference_accuracy == wins / 2
    assert math.isfinite(scores.margin)
    engine.close()
