"""Issue 19 in a real browser on the real offline model: ``python launch.py`` opens on SmolLM2-135M-Instruct; a small
preference file is loaded in the Data tab (each pair's prompt once and both answers, their trained tokens in green),
DPO is picked in the Train tab's Method radio, a few steps train, and the reward charts draw the run's rewards of
chosen and rejected, margin and accuracy (asserted in the plot's data), with ln 2 marked on the loss chart."""
from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

import pytest

from browser import AppProcess, chromium_or_skip
from flow_steps import ARTIFACTS, open_session, report, set_number, shot, tab, wait_for_preview

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAIRS = Path(__file__).resolve().parents[1] / "data" / "pairs.jsonl"
STEPS, BATCH = 3, 2
TIMINGS: dict[str, float] = {}
HIGHLIGHTS = """() => [...document.querySelectorAll('#data-preview *')].filter(e => e.children.length === 0 &&
    e.innerText && e.innerText.trim()).map(e => { let n = e, bg = ''; for (let i = 0; i < 4 && n; i++, n = n.parentElement) {
        const c = getComputedStyle(n).backgroundColor; if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') { bg = c; break; } }
        return [e.innerText, bg]; })"""
"""Every text leaf of the preview with the background it is drawn on (the nearest coloured ancestor)."""
IDLE = """() => ![...document.querySelectorAll('.progress-level, .progress-bar, .eta-bar')].some(
    e => e.offsetParent !== null)"""
PLOT = """id => { const g = document.querySelector(`#${id} .js-plotly-plot`); if (!g || !g.data) return null;
    return {traces: g.data.map(t => [t.meta || '', t.name || '', (t.x || []).length]),
            shapes: (g.layout.shapes || []).map(s => s.y0), notes: (g.layout.annotations || []).map(a => a.text)}; }"""


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def real_app(chromium_path, smollm2_folder, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k not in ("HUGGING_FACE_HUB_TOKEN", "HF_TOKEN")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc = AppProcess(tmp_path_factory.mktemp("pref-browser-runs"), ARTIFACTS / "pref-app.log", env,
                      demo=False).start(timeout=180)
    try:
        yield proc
    finally:
        proc.stop()


def _green(color: str) -> bool:
    """An rgb(a) colour whose green clearly leads (the preview's "trained" colour, #22c55e, at any alpha)."""
    parts = [float(v) for v in color[color.index("(") + 1:-1].split(",")[:3]] if "(" in color else [0, 0, 0]
    return parts[1] > parts[0] + 20 and parts[1] > parts[2] + 20


def test_dpo_in_the_browser_on_the_real_model(real_app, chromium_path):
    from playwright.sync_api import expect, sync_playwright

    t_all = time.perf_counter()
    with sync_playwright() as pw:
        with open_session(pw, chromium_path, real_app.url, "pref-last.png") as session:
            page = session.page
            wait_for_preview(page, expect)
            TIMINGS["first page to preview (s)"] = round(time.perf_counter() - t_all, 1)

            # ---- Data: the chat template, then the preference file by its path (its rows are < 64 tokens)
            page.locator("#data-template-name input").click()
            page.get_by_role("option", name="(chat template)").click()
            # one edit at a time: a preview's answer landing after a later one's would show the older data
            expect(page.locator("#data-preview")).to_contain_text("<|im_start|>assistant", timeout=120_000)
            expect(page.locator("#data-preview")).not_to_contain_text("### Solution:", timeout=60_000)
            page.locator("#data-source-kind label", has_text="Hub id or local path").click()
            page.wait_for_function(IDLE, timeout=120_000)  # the switch's own preview answered first
            path = page.locator("#data-path textarea, #data-path input").first
            path.fill(str(PAIRS))
            path.press("Enter")
            summary = page.locator("#data-summary")
            expect(summary).to_contain_text("Format preference", timeout=120_000)
            preview = page.locator("#data-preview")
            expect(preview).to_contain_text("✘ rejected", timeout=60_000)
            expect(page.locator("#data-error")).to_be_hidden(timeout=60_000)  # an earlier edit's answer may land last
            expect(page.locator("#data-map-rejected input")).to_have_value("rejected")
            deadline = time.time() + 60  # the pairs' preview has settled (no older answer lands after it)
            while True:
                leaves = page.evaluate(HIGHLIGHTS)
                green = [text for text, bg in leaves if _green(bg)]
                if any("Berlin" in t for t in green) or time.time() > deadline:
                    break
                page.wait_for_timeout(500)
            assert any("Paris" in t for t in green) and any("Berlin" in t for t in green), \
                f"both answers' trained tokens are highlighted: {leaves[:40]}"
            assert not any("capital of France?" in t for t in green), "the prompt is not trained"
            expect(page.locator("#data-stats")).to_contain_text("rejected: trained tokens")
            shot(page, "pref-1-pairs")
            TIMINGS["pair preview (s)"] = round(time.perf_counter() - t_all, 1)

            # ---- Train: pick DPO, a few steps
            tab(page, "3 · Train")
            page.locator('#train-method [data-testid^="DPO:"]').click()
            expect(page.locator("#train-beta")).to_be_visible(timeout=30_000)
            expect(page.locator("#train-simpo-gamma")).to_be_hidden(timeout=30_000)
            set_number(page, "train-max-steps", STEPS)
            set_number(page, "train-batch-size", BATCH)
            t0 = time.perf_counter()
            page.locator("#train-start").click()
            expect(page.locator("#train-start")).to_be_disabled(timeout=30_000)
            status = page.locator("#train-status")
            expect(status).to_contain_text("finished", timeout=600_000)
            TIMINGS[f"DPO {STEPS} steps of SmolLM2, click to finished (s)"] = round(time.perf_counter() - t0, 1)
            expect(status).to_contain_text("reward accuracy")
            page.wait_for_function("""() => { const g = document.querySelector('#train-pref .js-plotly-plot');
                return g && g.data && g.data.some(t => t.meta === 'rewards/chosen' && (t.x || []).length >= 3); }""",
                                   timeout=60_000)
            pref = page.evaluate(PLOT, "train-pref")
            metas = {meta: n for meta, _, n in pref["traces"]}
            assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(metas), pref
            assert metas["rewards/chosen"] == STEPS and metas["rewards/rejected"] == STEPS, pref
            assert "policy = reference at step 1" in pref["notes"], pref
            loss = page.evaluate(PLOT, "train-loss")
            assert any(abs(y - math.log(2)) < 1e-6 for y in loss["shapes"]), loss
            assert any("policy = reference at step 1" in (n or "") for n in loss["notes"]), loss
            page.locator("#train-pref").scroll_into_view_if_needed()
            shot(page, "pref-train-dpo")

            # ---- Chat and Publish read the preference run (its prompt format) without an error
            run_name = next(p for p in Path(real_app.runs_dir).iterdir() if p.is_dir()).name
            tab(page, "4 · Chat")
            expect(page.locator("#chat-run input")).to_have_value(re.compile(rf"^{run_name} · finished"),
                                                                  timeout=30_000)
            expect(page.locator("#chat-error")).to_be_hidden()
            tab(page, "5 · Publish")
            expect(page.locator("#publish-run input")).to_have_value(re.compile(rf"^{run_name} · "), timeout=30_000)
            expect(page.locator("#publish-preview")).to_contain_text("SmolLM2", timeout=60_000)
            expect(page.locator("#publish-error")).to_be_hidden()
    report(session, real_app, TIMINGS, t_all, "pref-timings.txt")
