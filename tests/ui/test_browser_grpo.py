"""GRPO in a real browser on the real SmolLM2 (issue 24): the app opens as a first launch (SFT, the word problems),
GRPO is picked in the Train tab and a reward typed into its list, the Data tab's reward preview appears and scores a correct reference high and a
corrupted one low, two short GRPO steps train, and the reward chart and the sampled-completions table fill in."""
from __future__ import annotations

import os
import time

import pytest

from browser import AppProcess, chromium_or_skip
from flow_steps import ARTIFACTS, open_session, report, set_number, shot, tab, wait_for_preview

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TIMINGS: dict[str, float] = {}
TABLE_ROWS = """id => [...document.querySelectorAll(`#${id} [role=row]`)].map(
    r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim())).filter(r => r.length)"""
TABLE_HEADERS = """id => [...document.querySelectorAll(`#${id} [role=columnheader]`)].map(c => c.innerText.trim())"""


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def grpo_app(chromium_path, smollm2_folder, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k not in ("HUGGING_FACE_HUB_TOKEN", "HF_TOKEN")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc = AppProcess(tmp_path_factory.mktemp("grpo-browser-runs"), ARTIFACTS / "grpo-app.log", env,
                      demo=False).start(timeout=180)
    try:
        yield proc
    finally:
        proc.stop()


def _table(page, elem_id: str) -> list[dict[str, str]]:
    headers = page.evaluate(TABLE_HEADERS, elem_id)
    return [dict(zip(headers, row)) for row in page.evaluate(TABLE_ROWS, elem_id)]


def test_grpo_reward_preview_charts_and_completions_on_the_real_model(grpo_app, chromium_path):
    from playwright.sync_api import expect, sync_playwright

    t_all = time.perf_counter()
    with sync_playwright() as pw:
        with open_session(pw, chromium_path, grpo_app.url, "grpo-last.png") as session:
            page = session.page
            wait_for_preview(page, expect)
            expect(page.locator("#data-summary")).to_contain_text("smollm2-135m-instruct")
            expect(page.locator("#reward-preview-box")).to_be_hidden()  # SFT: no reward preview
            # ---- pick GRPO and its short settings in the Train tab
            tab(page, "3 · Train")
            page.locator("#train-method label", has_text="GRPO:").click()
            expect(page.locator("#train-num-generations")).to_be_visible(timeout=30_000)
            for elem_id, value in (("train-num-generations", 2), ("train-max-completion-length", 12),
                                   ("train-max-steps", 2), ("train-batch-size", 2)):
                set_number(page, elem_id, value)
            # the reward list is edited as text, one reward a line: a third reward reaches preview and training
            rewards = page.locator("#train-rewards textarea")
            expect(rewards).to_have_value("answer 1\nformat 0.5")
            rewards.fill("answer 1\nformat 0.5\nlength 0.2 target=40")
            # ---- the Data tab's reward preview: the reference scores high, the corrupted answer low
            tab(page, "1 · Data")
            box = page.locator("#reward-preview-box")
            expect(box).to_be_visible(timeout=30_000)
            box.get_by_text("Reward preview (GRPO)").click()
            t0 = time.perf_counter()
            page.locator("#reward-preview-run").click()
            expect(page.locator("#reward-preview-table")).to_contain_text("corrupted", timeout=120_000)
            TIMINGS["reward preview (s)"] = round(time.perf_counter() - t0, 1)
            expect(page.locator("#reward-preview-warnings")).to_contain_text("No warnings")
            rows = _table(page, "reward-preview-table")
            good = [r for r in rows if r["sample"] == "reference"]
            bad = [r for r in rows if r["sample"] == "corrupted"]
            assert good and bad, rows
            assert all(float(r["answer"]) == 1.0 and float(r["format"]) == 1.0 for r in good), good
            assert all(float(r["answer"]) == 0.0 for r in bad), bad
            assert min(float(r["total"]) for r in good) > max(float(r["total"]) for r in bad), rows
            assert all(float(r["length"]) <= 0 for r in rows), rows  # the typed third reward, a penalty
            shot(page, "grpo-1-reward-preview")
            # ---- two GRPO steps: the reward chart and the completions table fill in
            tab(page, "3 · Train")
            t0 = time.perf_counter()
            page.locator("#train-start").click()
            expect(page.locator("#train-status")).to_contain_text("finished", timeout=600_000)
            TIMINGS["train 2 GRPO steps, click to finished (s)"] = round(time.perf_counter() - t0, 1)
            expect(page.locator("#grpo-panel")).to_be_visible(timeout=30_000)
            expect(page.locator("#train-pref")).to_be_hidden()  # no empty preference chart for GRPO
            page.wait_for_function("""() => { const g = document.querySelector('#grpo-rewards .js-plotly-plot');
                return g && g.data && g.data.some(t => (t.x || []).length === 2); }""", timeout=60_000)
            expect(page.locator("#grpo-completions [role=gridcell]").first).to_be_visible(timeout=60_000)
            samples = _table(page, "grpo-completions")
            assert samples and samples[0]["step"] == "2", samples  # newest first
            assert all(float(s["reward"]) >= 0 and {"answer", "format", "length"} <= set(s)
                       for s in samples), samples
            shot(page, "grpo-2-train")
    report(session, grpo_app, TIMINGS, t_all, "grpo-timings.txt")
