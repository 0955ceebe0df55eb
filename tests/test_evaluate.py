"""Held-out evaluation: answer extraction on tricky strings, base vs tuned numbers on a short-trained run."""
from __future__ import annotations

import math

import pytest

from chat_helpers import chat_run, chat_runs_dir, one_thread, wp_engine, wp_run  # noqa: F401
from studio.errors import ConfigError, DataError
from studio.evaluate import AnswerExtractor, answer_end, extract_after_separator, normalize_answer

H = AnswerExtractor()


@pytest.mark.parametrize("text, expected", [
    ("24 servings is 4 times.\n#### 16", "16"),
    ("#### 1,234", "1234"),
    ("#### 1,234,567.50 dollars", "1234567.5"),
    ("#### -5", "-5"),
    ("#### \u22127", "-7"),
    ("####-0", "0"),
    ("#### 3.50", "3.5"),
    ("#### 16.0", "16"),
    ("#### 16.", "16"),
    ("#### $1,200.00.", "1200"),
    ("#### 0.25", "0.25"),
    ("#### The total is 18 apples", "18"),
    ("#### seven", "seven"),
    ("step one ####\n#### 42\n#### 43", "42"),  # several ####: the first that is followed by something
    ("####    \n\n#### 12 #### 13", "12"),
    ("#### 5\nThen more text 99", "5"),
    ("#### 3, 4", "3"),
    ("no separator 17", None),
    ("####", None),
    ("#### ", None),
    ("", None),
])
def test_hash_extractor_on_tricky_strings(text, expected):
    assert H.extract(text) == expected


@pytest.mark.parametrize("text, cut", [
    ("So 4 x 4 = 16.\n#### 16\nQuestion: next", "So 4 x 4 = 16.\n#### 16"),
    ("#### 16\r\nmore", "#### 16"),
    ("####    \n\n#### 12 #### 13\n", "####    \n\n#### 12 "),  # the next separator ends the part
    ("step ####\n\n  42\nnext", "step ####\n\n  42"),
    ("#### 16", None),  # more digits could follow
    ("#### \n", None),  # nothing after the separator yet
    ("16\n", None),
])
def test_answer_end_is_where_the_answer_line_ends(text, cut):
    end = answer_end(text)
    assert (text[:end] if end is not None else None) == cut
    if cut is not None:
        assert H.extract(cut) == H.extract(text)


@pytest.mark.parametrize("text", [
    "24 servings is 4 times.\n#### 16\n#### 17\nmore 18\n", "a ####  #### c\n d", "#### $1,200.00.\nx",
    "####\u2028 7\u2029tail", "no separator 17\nat all\n", "## ## #### 5 ####6\n", "#####  9\n",
])
def test_answer_end_is_stable_as_the_text_grows(text):
    """Generation checks each prefix: the first prefix with an end fixes the cut, and cutting there never
    changes the extracted answer of the whole text."""
    ends = [answer_end(text[:k]) for k in range(len(text) + 1)]
    first = next((e for e in ends if e is not None), None)
    assert all(e == first for e in ends if e is not None)
    if first is not None:
        assert H.extract(text[:first]) == H.extract(text) is not None
    else:
        assert answer_end(text) is None


def test_only_separator_extraction_stops_answers_early():
    assert H.end_finder() is answer_end
    assert AnswerExtractor("exact").end_finder() is None
    assert AnswerExtractor("regex", r"\d+").end_finder() is None


def test_separator_rule_matches_the_seed():
    assert extract_after_separator("a #### b #### c") == "b"
    assert extract_after_separator("a ####  #### c") == "c"
    assert extract_after_separator("nothing") is None


def test_numbers_compare_after_normalising():
    assert normalize_answer("1,000") == normalize_answer("1000.00") == "1000"
    assert normalize_answer("-0.50") == "-0.5"
    assert normalize_answer("x2 is 7") == "7"  # digits inside a word are not the answer
    assert normalize_answer("  Paris. ") == "paris"


def test_regex_and_exact_extractors():
    rx = AnswerExtractor("regex", r"answer is (-?[\d,.]+)")
    assert rx.extract("so the answer is -1,250.0 now") == "-1250"
    assert rx.extract("no answer") is None
    whole = AnswerExtractor("regex", r"\d+")
    assert whole.extract("a 12 b 13") == "12"
    ex = AnswerExtractor("exact")
    assert ex.extract("  Hello   World ") == "hello world" and ex.extract("  ") is None
    with pytest.raises(ConfigError):
        AnswerExtractor("regex")
    with pytest.raises(ConfigError, match="regular expression"):
        AnswerExtractor("regex", "(unclosed")
    with pytest.raises(ConfigError):
        AnswerExtractor("fuzzy")


def test_evaluate_run_reports_both_models(wp_run, wp_engine):
    from studio.evaluate import evaluate_run

    seen = []
    report = evaluate_run(wp_run, rows=4, max_new_tokens=12, engine=wp_engine,
                          progress=lambda f, m: seen.append((f, m)))
    assert report.rows == 4 and len(report.per_row) == 4
    for side in (report.base, report.tuned):
        assert side.loss is not None and math.isfinite(side.loss) and side.loss > 0
        assert side.perplexity == pytest.approx(math.exp(side.loss))
        assert side.scored == 4  # every word-problem row has a '####' reference
        assert 0 <= side.accuracy <= 1 and 0 <= side.unclear_rate <= 1
        assert side.correct + side.unclear <= side.scored
    assert report.tuned.loss < report.base.loss  # training on these rows' format lowered the loss
    row = report.per_row[0]
    assert row.reference_answer is not None and row.reference_answer == H.extract(row.reference)
    assert row.base_output is not None and row.tuned_output is not None
    assert row.base_loss is not None and row.tuned_loss is not None
    assert seen[-1] == (1.0, "done") and all(0 <= f <= 1 for f, _ in seen)
    summary = report.summary()
    assert set(summary) == {"base", "tuned", "rows"}
    assert set(summary["base"]) == {"loss", "perplexity", "accuracy", "unclear_rate"}
    assert [r[0] for r in report.table()] == ["loss", "perplexity", "accuracy", "no clear answer"]
    import json
    from pathlib import Path

    saved = json.loads((Path(wp_run) / "eval_results.json").read_text())  # the model card reads this file
    assert saved["base"]["loss"] == pytest.approx(report.base.loss)


def test_loss_matches_the_training_render(wp_run, wp_engine):
    """The tuned eval loss is the mean NLL of the trained tokens, computed independently here."""
    import torch

    from studio.config import load_config
    from studio.data import render
    from studio.evaluate import evaluate_run, heldout_rows
    from studio.inference import run_prompt_setup

    cfg = load_config(wp_run / "config.yaml")
    builder, loaded = run_prompt_setup(cfg, wp_engine.tokenizer)
    row = heldout_rows(cfg, loaded)[0]
    import dataclasses

    r = render(row, wp_engine.tokenizer, dataclasses.replace(builder.spec, loss_on="completion", max_length=192))
    ids = torch.tensor([r.input_ids])
    labels = torch.where(torch.tensor([r.loss_mask]) == 1, ids, torch.tensor(-100))
    with torch.no_grad():
        expected = wp_engine.model(input_ids=ids, labels=labels).loss.item()
    report = evaluate_run(wp_run, rows=1, engine=wp_engine, accuracy=False)
    assert report.tuned.loss == pytest.approx(expected, rel=1e-4)
    assert report.tuned.accuracy is None and report.per_row[0].tuned_output is None


def test_chat_run_without_extractable_answers_has_null_accuracy(chat_run):
    from studio.evaluate import evaluate_run

    report = evaluate_run(chat_run, rows=2, max_new_tokens=4, device="cpu")
    assert report.base.loss is not None and report.tuned.loss is not None
    assert report.base.accuracy is None and report.tuned.accuracy is None
    assert report.per_row[0].prompt  # the last user message


def test_no_heldout_rows_is_a_clear_error(wp_run, wp_engine, tmp_path):
    import shutil

    from studio.config import load_config
    from studio.evaluate import evaluate_run

    run = tmp_path / "noeval"
    shutil.copytree(wp_run, run)
    cfg = load_config(run / "config.yaml")
    cfg.data.eval_fraction = 0.0
    cfg.save(run / "config.yaml")
    with pytest.raises(DataError, match="no held-out rows"):
        evaluate_run(run, engine=wp_engine)


def _five_chars(text):
    """A stand-in answer end that a barely trained model reaches too: after five characters."""
    return 5 if len(text) > 5 else None


def test_early_stopped_answers_equal_the_full_answers_cut_at_their_end(wp_run, wp_engine):
    from studio.evaluate import heldout_rows
    from studio.inference import BASE, GenerationParams, run_prompt_setup

    cfg = wp_engine.adapters["wp"].config
    builder, loaded = run_prompt_setup(cfg, wp_engine.tokenizer)
    held = heldout_rows(cfg, loaded)
    prompts = [builder.for_row(held[i])[0].input_ids for i in range(6)]
    params = GenerationParams(max_new_tokens=24)
    model = wp_engine.model
    steps = []
    hook = model.get_input_embeddings().register_forward_hook(lambda *a: steps.append(1))
    try:
        for finder in (_five_chars, answer_end):
            for adapter in ("wp", BASE):
                steps.clear()
                full = wp_engine.generate_batch(prompts, params, adapter=adapter, batch_size=4)
                full_steps = len(steps)
                steps.clear()
                seen = []
                early = wp_engine.generate_batch(prompts, params, adapter=adapter, batch_size=4, answer_end=finder,
                                                 progress=seen.append)
                assert early == [t[:e] if (e := finder(t)) is not None else t for t in full]
                assert seen == sorted(seen) and seen[-1] == len(prompts)
                if finder is _five_chars:  # every answer reaches five characters early: fewer decoding steps
                    assert len(steps) < full_steps
                    assert len(seen) > 2  # rows reported one by one, not once per batch
    finally:
        hook.remove()


def test_answer_budget_follows_the_reference_answers(wp_run, wp_engine, monkeypatch):
    """Without max_new_tokens, answers may run a quarter past the long (p95) references, not a fixed 256."""
    from studio.data.checks import token_budget
    from studio.evaluate import evaluate_run

    tok = wp_engine.tokenizer
    refs = ["x " * 40, "y " * 200, None, ""]
    lengths = sorted(len(tok(t, add_special_tokens=False)["input_ids"]) for t in refs if t)
    assert token_budget(refs, tok) == max(64, -(-int(lengths[-1] * 1.25 + 1) // 32) * 32)
    assert token_budget([], tok) == 64 and token_budget(["z " * 5000], tok) == 1024
    seen = []
    real = wp_engine.generate_batch
    monkeypatch.setattr(wp_engine, "generate_batch",
                        lambda prompts, params, **kw: seen.append(params.max_new_tokens) or real(prompts, params, **kw))
    report = evaluate_run(wp_run, rows=2, engine=wp_engine)
    expected = token_budget([r.reference for r in report.per_row], tok)
    assert seen == [expected, expected] and expected < 256
