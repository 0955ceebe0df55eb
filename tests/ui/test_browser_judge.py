"""Judge and choose in a real browser on the real SmolLM2 (issue 20): two blind arena rounds between the base model and
a trained run (names hidden before each vote, shown after), the votes file holding both rounds, the export written
as preference pairs; the forgetting chart per checkpoint; the Runs tab's table and overlaid curves."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from browser import AppProcess, chromium_or_skip
from conftest import real_config_dict
from flow_steps import ARTIFACTS, open_session, plot_trace_names, report, shot, tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def judged_runs(smollm2_folder, tmp_path_factory):
    """A runs folder with one SmolLM2 word-problems run (2 plain optimizer steps) and a checkpoint of it."""
    import torch

    from chat_helpers import train_run
    from studio.config import RunConfig

    runs_dir = tmp_path_factory.mktemp("judge-runs")
    cfg = RunConfig.from_dict(real_config_dict(runs_dir, max_steps=2, learning_rate=1e-3))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train_run(cfg, runs_dir, "wp-real", steps=2)
    finally:
        torch.set_num_threads(before)
    ckpt = run / "checkpoints" / "checkpoint-2"
    shutil.copytree(run / "adapter", ckpt)
    (ckpt / "trainer_state.json").write_text("{}")
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in (
        {"type": "started", "time": 1.0, "model": "smollm2-135m-instruct", "total_steps": 2},
        {"type": "log", "time": 2.0, "step": 1, "loss": 1.5}, {"type": "log", "time": 3.0, "step": 2, "loss": 1.2},
        {"type": "finished", "time": 4.0, "step": 2, "adapter_path": str(run / "adapter"), "runtime_s": 3.0})))
    return runs_dir, run


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def judge_app(judged_runs):
    env = {k: v for k, v in os.environ.items() if k not in ("HUGGING_FACE_HUB_TOKEN", "HF_TOKEN")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc = AppProcess(judged_runs[0], ARTIFACTS / "judge-app.log", env, demo=False).start(timeout=180)
    try:
        yield proc
    finally:
        proc.stop()


def _dpo_trains_on(pairs, runs_dir) -> None:
    """The exported votes are a dataset a DPO run reads as it is: one step on SmolLM2, its reward signals logged."""
    from studio.config import RunConfig
    from studio.training import TrainingJob

    cfg = RunConfig.from_dict({
        "data": {"sources": [{"path": str(pairs)}], "eval_fraction": 0},
        "model": {"name_or_path": "smollm2-135m-instruct"}, "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"method": "dpo", "output_dir": str(runs_dir / "dpo"), "max_steps": 1, "batch_size": 1,
                  "max_length": 128, "learning_rate": 1e-4, "save_steps": 100, "tensorboard": False,
                  "device": "cpu"}})
    t0 = time.perf_counter()
    result = TrainingJob(cfg).run()
    TIMINGS["DPO step on the exported votes (s)"] = round(time.perf_counter() - t0, 1)
    assert result.type == "finished", getattr(result, "message", result)
    events = [json.loads(line) for line in (Path(result.adapter_path).parent / "events.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in e.get("metrics", {}) for e in events if e["type"] == "log")


def _pick(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=text).first.click()


def _round(page, expect, prompt: str, vote: str) -> str:
    """One arena round: ask, check the names stay hidden while both answer, vote, return the reveal text."""
    page.locator("#arena-prompt textarea").fill(prompt)
    page.locator("#arena-send").click()
    expect(page.locator("#arena-vote-left")).to_be_enabled(timeout=300_000)
    hidden = page.locator("#arena-reveal").inner_text()
    assert "wp-real" not in hidden and "smollm2" not in hidden.lower()
    assert page.locator("#arena-left textarea").input_value() or page.locator("#arena-right textarea").input_value()
    page.locator(f"#arena-vote-{vote}").click()
    expect(page.locator("#arena-reveal")).to_contain_text("Left was", timeout=60_000)
    return page.locator("#arena-reveal").inner_text()


def test_arena_forgetting_and_runs_on_the_real_model(judge_app, judged_runs, chromium_path):
    from playwright.sync_api import expect, sync_playwright

    from studio.arena.votes import read_votes

    runs_dir, run = judged_runs
    t_all = time.perf_counter()
    with sync_playwright() as pw:
        with open_session(pw, chromium_path, judge_app.url, "judge-last.png") as session:
            page = session.page
            tab(page, "4 · Chat")
            page.locator("#arena-panel").get_by_text("Blind arena").click()
            _pick(page, "arena-model-a", "base · smollm2-135m-instruct")
            _pick(page, "arena-model-b", "wp-real (final adapter)")
            page.locator("#arena-max-tokens input").fill("16")
            t0 = time.perf_counter()
            first = _round(page, expect, "Tom has 3 apples and buys 4 more. How many apples does he have?", "left")
            TIMINGS["first arena round, model load included (s)"] = round(time.perf_counter() - t0, 1)
            assert "wp-real" in first and "base · smollm2-135m-instruct" in first
            second = _round(page, expect, "A box holds 6 eggs. How many eggs are in 3 boxes?", "right")
            assert "wp-real" in second
            votes = read_votes(runs_dir).votes
            assert [v.vote for v in votes] == ["left", "right"]
            assert {votes[0].left_model, votes[0].right_model} == {"wp-real", "base · smollm2-135m-instruct"}
            expect(page.locator("#arena-stats")).to_contain_text("wp-real")
            page.locator("#arena-export").click()
            pairs = runs_dir / "arena" / "pairs.jsonl"
            page.wait_for_function("() => document.querySelector('#arena-export-file a, #arena-export-file "
                                   "[data-testid]') !== null", timeout=60_000)
            rows = [json.loads(line) for line in pairs.read_text().splitlines()]
            assert rows and all(set(r) == {"prompt", "chosen", "rejected"} for r in rows)
            shot(page, "judge-1-arena")
            _dpo_trains_on(pairs, runs_dir)
            # ---- the forgetting check on the picked run
            page.locator("#forgetting-panel").get_by_text("Forgetting check").click()
            page.locator("#forgetting-task-rows input").fill("2")
            t0 = time.perf_counter()
            page.locator("#forgetting-check").click()
            expect(page.locator("#forgetting-status")).to_contain_text("Checked 2 model(s)", timeout=600_000)
            TIMINGS["forgetting check, 2 models (s)"] = round(time.perf_counter() - t0, 1)
            page.wait_for_function("() => { const g = document.querySelector('#forgetting-chart .js-plotly-plot');"
                                   " return g && g.data && g.data[0].x.length === 3; }", timeout=60_000)
            expect(page.locator("#forgetting-table")).to_contain_text("checkpoint-2")
            # ---- the Runs tab
            tab(page, "6 · Runs")
            page.locator("#runs-compare").click()
            expect(page.locator("#runs-table")).to_contain_text("wp-real", timeout=60_000)
            page.wait_for_function("() => { const g = document.querySelector('#runs-chart .js-plotly-plot');"
                                   " return g && g.data && g.data.length > 0; }", timeout=60_000)
            assert "wp-real · train" in plot_trace_names(page, "runs-chart")
            shot(page, "judge-2-runs")
            report(session, judge_app, TIMINGS, t_all, "judge-timings.txt")
