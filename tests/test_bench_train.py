"""`studio bench train`: the skewed chat set, and a smoke-size call of the whole benchmark (no timing assertions)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.bench.train import skewed_chats

ROOT = Path(__file__).resolve().parent.parent


def test_skewed_chats_span_20_to_1000_tokens_with_a_long_tail_and_repeat(smollm2_tokenizer):
    rows = skewed_chats(60, smollm2_tokenizer)
    lengths = [len(smollm2_tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"])
               for r in rows]
    assert 20 <= min(lengths) <= 40 and 900 <= max(lengths) <= 1000
    assert sorted(lengths)[len(lengths) // 2] < sum(lengths) / len(lengths)  # skewed: median below the mean
    assert rows == skewed_chats(60, smollm2_tokenizer)  # deterministic


@pytest.mark.slow
def test_bench_train_smoke_json():
    proc = subprocess.run([sys.executable, "-m", "studio.cli", "bench", "train", "--smoke", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    runs = {(r["setup"], r["run"]): r for r in report["runs"]}
    assert set(runs) == {("uniform", "studio"), ("uniform", "plain"), ("skewed", "studio"),
                         ("skewed", "studio-unpacked"), ("skewed", "plain")}
    for r in runs.values():
        assert not r.get("error"), r
        assert r["steps_per_s"] > 0 and r["tokens_per_s"] > 0 and r["peak_rss_bytes"] > 0 and r["first_loss"] > 0
    # the same first step through both engines: the loss path changes the work, not the loss (bf16, where the
    # CPU has it and precision is auto: within 1 %)
    pairs = [(("uniform", "studio"), ("uniform", "plain")), (("skewed", "studio-unpacked"), ("skewed", "plain"))]
    for studio, plain in pairs:
        a, b = runs[studio]["first_loss"], runs[plain]["first_loss"]
        assert runs[plain]["precision"] == "fp32", runs[plain]
        assert abs(a - b) < (1e-2 * b if runs[studio]["precision"] == "bf16" else 1e-4), (studio, a, b)
    # one epoch each over the same rows: the same real tokens trained, packed, unpacked or padded
    assert runs["skewed", "studio"]["packing"] and not runs["skewed", "studio-unpacked"]["packing"]
    assert runs["skewed", "studio"]["real_tokens"] == runs["skewed", "plain"]["real_tokens"] \
        == runs["skewed", "studio-unpacked"]["real_tokens"]
    assert all(v is not None and v > 0 for v in report["ratios"].values())
    gap = report["loss_gap"]["uniform"]  # every step's loss, not only the first
    assert gap["steps"] == runs["uniform", "plain"]["steps"] >= 2, gap
    if runs["uniform", "studio"]["precision"] == "fp32":
        assert gap["max"] < 1e-3, gap
    assert "skewed: studio packed / plain TRL padded real tokens/s" in proc.stderr


def test_each_run_is_spawned_as_the_packages_worker_entry_point(monkeypatch):
    import types

    from studio.bench import train

    seen = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        return types.SimpleNamespace(stdout=train.RESULT_MARK + json.dumps({"run": "plain"}) + "\n", stderr="",
                                     returncode=0)

    monkeypatch.setattr(train.subprocess, "run", fake_run)
    assert train._spawn({"setup": "uniform", "run": "plain"}, timeout=5) == {"run": "plain"}
    assert seen[0][1:4] == ["-m", "studio.bench.train", "--worker"]
    assert json.loads(seen[0][4]) == {"setup": "uniform", "run": "plain"}


@pytest.mark.slow
def test_the_worker_entry_point_answers_bad_usage_with_exit_2():
    proc = subprocess.run([sys.executable, "-m", "studio.bench.train"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "usage: studio bench train" in proc.stderr


@pytest.mark.slow
def test_bench_train_method_smoke_json():
    """Studio against a plain TRL trainer for DPO (reference pass: ln 2 at step 1 on both) and ORPO (no reference:
    its first loss is the model's own NLL and odds ratio, so close first losses mean the same tokens and labels)."""
    proc = subprocess.run([sys.executable, "-m", "studio.cli", "bench", "train", "--smoke", "--method", "dpo",
                           "--method", "orpo", "--steps", "3", "--warmup", "1", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    runs = {(r["setup"], r["run"]): r for r in report["runs"]}
    assert set(runs) == {(m, r) for m in ("dpo", "orpo") for r in ("studio", "plain")}
    for r in runs.values():
        assert not r.get("error"), r
        assert r["steps"] == 3 and r["steps_per_s"] > 0 and r["peak_rss_bytes"] > 0
    assert runs["dpo", "studio"]["first_loss"] == pytest.approx(0.693147, abs=1e-4)  # policy = reference
    assert runs["dpo", "plain"]["first_loss"] == pytest.approx(runs["dpo", "studio"]["first_loss"], abs=1e-4)
    # ORPO: TRL's own ORPOTrainer tokenizes prompt and answer text separately, Studio trains the joint rendering
    # (TRL's DPO rule, the preview's tokens): on the demo tokenizer the first losses differ by ~0.2 %
    assert runs["orpo", "plain"]["first_loss"] == pytest.approx(runs["orpo", "studio"]["first_loss"], rel=0.01)
    assert all(report["ratios"][f"{m}_{k}"] > 0 for m in ("dpo", "orpo") for k in ("steps_per_s", "peak_rss"))
    assert "dpo: studio / plain TRL steps/s" in proc.stderr


def test_loss_gaps_compare_every_step_both_runs_logged():
    from studio.bench.train import loss_gaps

    results = [{"setup": "uniform", "run": "studio", "losses": [[1, 2.0], [2, 1.1], [3, 0.9]]},
               {"setup": "uniform", "run": "plain", "losses": [[1, 2.0], [2, 1.0], [3, 1.0]]},
               {"setup": "uniform", "run": "plain", "losses": [[1, 9.0]]}]  # a later round: the first one counts
    gap = loss_gaps(results)["uniform"]
    assert gap["steps"] == 3 and gap["max"] == 0.1 and abs(gap["mean"] - 0.2 / 3) < 1e-6
    assert gap["mean_loss"] == 0.0


@pytest.mark.slow
def test_bench_train_grpo_smoke_json():
    """Studio's GRPO against a plain TRL GRPOTrainer on the demo model: both train, figures and ratios come back
    (no timing is judged), with the load average beside them."""
    proc = subprocess.run([sys.executable, "-m", "studio.cli", "bench", "train", "--smoke", "--method", "grpo",
                           "--steps", "2", "--warmup", "0", "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    runs = {r["run"]: r for r in report["runs"]}
    assert set(runs) == {"studio", "plain"}
    for r in runs.values():
        assert not r.get("error"), r
        assert r["steps"] == 2 and r["steps_per_s"] > 0 and r["peak_rss_bytes"] > 0
        assert 0 < r["mean_completion_length"] <= 16  # the smoke's max_completion_length
    assert all(report["ratios"][k] > 0 for k in ("grpo_steps_per_s", "grpo_peak_rss", "grpo_cpu_s_per_step"))
    assert len(report["load_average"]) == 3
    assert "grpo: studio / plain TRL steps/s" in proc.stderr and "load average:" in proc.stderr
