"""A preference run after training: ``studio eval`` reports held-out preference accuracy for base and tuned, the model
card names the method, beta, data and that accuracy, and export, merge and chat work as for SFT (demo model)."""
from __future__ import annotations

import json
import math

import pytest

from studio.cli import main
from studio.config import RunConfig
from studio.paths import ASSETS

PAIRS = ASSETS / "datasets" / "word_problem_preferences.jsonl"


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory):
    """Two DPO steps on the demo model over 40 bundled pairs, 10 of them held out."""
    from studio.events import Finished
    from studio.training import TrainingJob

    cfg = RunConfig.from_dict({
        "data": {"sources": [{"path": str(PAIRS)}], "eval_fraction": 0.25, "max_rows": 40},
        "model": {"name_or_path": "studio/demo-tiny"}, "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"method": "dpo", "beta": 0.2, "output_dir": str(tmp_path_factory.mktemp("runs")), "max_steps": 2,
                  "batch_size": 2, "max_length": 128, "learning_rate": 5e-3, "save_steps": 100,
                  "tensorboard": False, "warmup_ratio": 0.0, "device": "cpu"}})
    job = TrainingJob(cfg)
    assert isinstance(job.run(), Finished)
    return job.run_dir


def _eval_json(run_dir, capsys) -> dict:
    assert main(["eval", "--run", str(run_dir), "--json", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_json_reports_preference_and_reward_accuracy_for_base_and_tuned(dpo_run, capsys):
    from studio.data.pairs import render_pair
    from studio.evaluate import heldout_rows
    from studio.inference import BASE, ChatEngine, run_prompt_setup

    out = _eval_json(dpo_run, capsys)
    assert out["rows"] == 10 and out["method"] == "dpo" and out["beta"] == 0.2 and out["kind"] == "preference"
    base, tuned = out["base"], out["tuned"]
    for side in (base, tuned):
        assert side["pairs"] == 10
        assert 0 <= side["preference_accuracy"] <= 1 and 0 <= side["preference_accuracy_per_token"] <= 1
        assert side["preference_accuracy"] * 10 == pytest.approx(round(side["preference_accuracy"] * 10))
        assert math.isfinite(side["margin"])
        assert side["margin"] == pytest.approx(side["chosen_logp"] - side["rejected_logp"], abs=1e-4)
    assert "reward_accuracy" not in base and 0 <= tuned["reward_accuracy"] <= 1
    assert tuned["margin"] != base["margin"]  # the adapter is on for tuned, off for base
    # the implicit reward margin is beta x (tuned margin - base margin), averaged
    assert tuned["reward_margin"] == pytest.approx(0.2 * (tuned["margin"] - base["margin"]), abs=1e-4)
    # the held-out pairs are the ones training kept out, rendered as trained: recompute one side by hand
    from studio.config import load_config

    cfg = load_config(dpo_run / "config.yaml")
    engine = ChatEngine.from_run(dpo_run, device="cpu")
    builder, loaded = run_prompt_setup(cfg, engine.tokenizer, dpo_run)
    held = heldout_rows(cfg, loaded, dpo_run)
    pairs = [render_pair(held[i], engine.tokenizer, builder.spec) for i in range(len(held))]
    nll = engine.loss([p.sequence(s) for p in pairs for s in ("chosen", "rejected")], adapter=BASE)[0]
    margins = [nll[i + 1][0] - nll[i][0] for i in range(0, len(nll), 2)]
    assert base["preference_accuracy"] == pytest.approx(sum(m > 0 for m in margins) / len(margins))
    assert base["margin"] == pytest.approx(sum(margins) / len(margins), abs=1e-3)
    engine.close()
    saved = json.loads((dpo_run / "eval_results.json").read_text())
    assert saved["base"] == base and len(saved["per_row"]) == 10


def test_eval_table_says_n_and_both_accuracies(dpo_run, capsys):
    assert main(["eval", "--run", str(dpo_run), "--rows", "4", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "4 held-out pairs" in out and "n=4" in out
    for name in ("preference accuracy", "per-token mean", "mean margin", "reward accuracy", "x beta 0.2"):
        assert name in out


def test_the_card_names_method_beta_data_and_preference_accuracy(dpo_run, capsys):
    from studio.hub.card import render_card

    out = _eval_json(dpo_run, capsys)
    card = render_card(dpo_run)
    assert "Direct Preference Optimization, DPO (TRL `DPOTrainer`)" in card
    assert "| Training method | DPO |" in card and "| Beta | 0.2 |" in card
    assert "`word_problem_preferences.jsonl`" in card and "Row format `preference`" in card
    assert "On the held-out split (10 pairs):" in card
    acc = out["tuned"]["preference_accuracy"]
    row = next(line for line in card.splitlines() if line.startswith("| preference accuracy (chosen"))
    assert row.split("|")[3].strip() == f"{acc:.4g}" or f"{acc:.3g}" in row
    assert "| pairs |" not in card
    from studio.hub.card_data import card_metadata_of

    meta = card_metadata_of(card)
    assert "dpo" in meta["tags"]
    results = {m["type"]: m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert results["preference_accuracy"] == pytest.approx(acc) and "reward_accuracy" in results


@pytest.mark.slow
def test_a_dpo_run_exports_its_adapter_and_merged_model_and_chats(dpo_run, tmp_path, capsys):
    adapter, merged = tmp_path / "adapter", tmp_path / "merged"
    assert main(["export", "--run", str(dpo_run), "--out", str(adapter)]) == 0
    assert (adapter / "adapter_model.safetensors").is_file() and "DPO" in (adapter / "README.md").read_text()
    assert main(["export", "--run", str(dpo_run), "--format", "merged", "--out", str(merged)]) == 0
    assert (merged / "config.json").is_file() and "DPO" in (merged / "README.md").read_text()
    capsys.readouterr()
    argv = ["chat", "--run", str(dpo_run), "--prompt", "A bus has 20 passengers and 5 get off. How many are left?",
            "--compare", "--json", "--max-new-tokens", "8", "--device", "cpu"]
    assert main(argv) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert isinstance(answer["tuned"], str) and isinstance(answer["base"], str) and answer["tuned"]


def test_the_chat_tabs_evaluate_panel_shows_pairs_for_a_preference_run(dpo_run, capsys):
    from studio.inference import ChatEngine
    from studio.ui.chat_eval import PAIR_HEADERS, evaluate_pairs_panel, is_preference

    assert is_preference(str(dpo_run)) and not is_preference(None)
    out = _eval_json(dpo_run, capsys)
    engine = ChatEngine.from_run(dpo_run, device="cpu")
    summary, pairs = evaluate_pairs_panel(str(dpo_run), engine=engine, adapter=engine.active, rows=10)
    engine.close()
    table = {row[0]: row[1:] for row in summary}
    assert table["held-out pairs (n)"] == ["10", "10"]
    assert table["preference accuracy"] == [f"{out[s]['preference_accuracy'] * 100:.1f}%" for s in ("base", "tuned")]
    assert table["reward accuracy"][1] == f"{out['tuned']['reward_accuracy'] * 100:.1f}%"
    assert pairs["headers"] == PAIR_HEADERS and len(pairs["data"]) == 10
    assert all(row[2] != row[3] for row in pairs["data"])  # chosen and rejected answers side by side
