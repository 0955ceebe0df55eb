"""Issue 23.5, 23.6, 23.9 and 23.10 in a real browser on the demo model, with the Hub out of reach.

A Hub id typed offline is said at once (note, error, an offer of the offline model) and Start refuses it; rank 0
shows its range error under the field and clears the counts; the time estimate sits beside the memory estimate;
Save config downloads the forms as YAML without a token; Stop and Resume are disabled with no run, Stop works
while a run is live, and after Stop the Resume list holds the stopped run; chart titles fit their charts, step
axes show whole steps, and no count reads "1 rows". Waits on states, never fixed sleeps.
"""
from __future__ import annotations

import os
import re
import socket

import pytest
import yaml

from browser import AppProcess, chromium_or_skip
from flow_steps import ARTIFACTS, open_session, report, set_number, shot, tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HUB_ID = "someone-offline/not-cached-model"
SECRET = "hf_newcomer_browser_SECRET_5e2a"
TITLES_FIT = """id => { const root = document.querySelector(`#${id} .js-plotly-plot`);
    if (!root) return null;
    const box = root.getBoundingClientRect();
    const texts = [...root.querySelectorAll('[class^="gtitle"], .annotation-text')];
    return texts.filter(t => t.textContent.trim()).map(t => {
        const r = t.getBoundingClientRect();
        return [t.textContent, r.top >= box.top - 1 && r.left >= box.left - 1 && r.right <= box.right + 1]; }); }"""
X_TICKS = """id => [...document.querySelectorAll(`#${id} .xtick text`)].map(t => t.textContent)"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    chromium_or_skip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed: the Hub refuses at once, as DNS does offline
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_TOKEN=SECRET, GRADIO_ANALYTICS_ENABLED="False",
               PYTHONUNBUFFERED="1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc = AppProcess(tmp_path_factory.mktemp("newcomer-runs"), ARTIFACTS / "newcomer-app.log", env).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_a_newcomers_first_hour_on_the_demo(app):
    from playwright.sync_api import expect, sync_playwright

    chromium = chromium_or_skip()
    with sync_playwright() as pw:
        with open_session(pw, chromium, app.url, "newcomer-last.png") as session:
            page = session.page
            expect(page.locator("#data-summary")).not_to_contain_text("Loading the preview", timeout=120_000)
            tab(page, "3 · Train")  # 23.9: nothing to stop or resume yet
            expect(page.locator("#train-stop")).to_be_disabled(timeout=30_000)
            expect(page.locator("#train-resume")).to_be_disabled()

            # ---- 23.5: a Hub id while the Hub is out of reach
            tab(page, "2 · Model")
            expect(page.locator("#model-time-estimate")).to_contain_text("Time:", timeout=60_000)  # 23.10
            name = page.locator("#model-name input")
            name.fill(HUB_ID)
            name.press("Enter")
            expect(page.locator("#model-note")).to_contain_text("out of reach", timeout=30_000)
            expect(page.locator("#model-note")).not_to_contain_text(f"{HUB_ID} from the Hugging Face Hub")
            expect(page.locator("#model-error")).to_contain_text(HUB_ID)
            offer = page.locator("#model-use-offline")
            expect(offer).to_be_visible()
            expect(page.locator("#model-time-estimate")).to_have_text("")
            tab(page, "3 · Train")
            page.locator("#train-start").click()
            expect(page.locator("#train-error")).to_contain_text("out of reach", timeout=30_000)
            expect(page.locator("#train-start")).to_be_enabled()
            assert not any(app.runs_dir.iterdir()), "a refused Start leaves no run folder"
            tab(page, "2 · Model")
            offer.click()
            expect(name).not_to_have_value(HUB_ID, timeout=30_000)
            expect(page.locator("#model-error")).to_be_hidden()
            expect(offer).to_be_hidden()
            name.click()  # back to the demo model for a quick run
            page.get_by_role("option", name=re.compile("demo-tiny")).click()
            expect(name).to_have_value(re.compile("demo"), timeout=30_000)

            # ---- 23.6: rank 0 is refused where it is typed
            params = page.locator("#model-params")
            expect(params).to_contain_text("Trainable", timeout=30_000)
            set_number(page, "lora-r", 0)
            expect(page.locator("#lora-r")).to_contain_text("⚠ Rank r must be from 1 to 1024", timeout=30_000)
            expect(page.locator("#model-error")).to_contain_text("Rank r must be from 1 to 1024")
            expect(params).not_to_contain_text("Trainable")
            toasts = page.locator(".toast-body.error").all_inner_texts()
            assert not [t for t in toasts if "Rank" in t or "minimum" in t], f"a passing toast: {toasts}"
            set_number(page, "lora-r", 8)
            expect(params).to_contain_text("Trainable", timeout=30_000)
            expect(page.locator("#lora-r")).not_to_contain_text("⚠", timeout=30_000)
            expect(page.locator("#model-error")).to_be_hidden()
            shot(page, "newcomer-model")
            fits = page.evaluate(TITLES_FIT, "model-memory")  # 23.9: the memory chart's title is not cut
            assert fits and all(ok for _, ok in fits), fits

            # ---- 23.10: Save config downloads the forms, never a token
            page.locator("#config-save").click()
            link = page.locator("#config-saved a").first
            expect(link).to_be_visible(timeout=30_000)
            with page.expect_download() as download:
                link.click()
            text = open(download.value.path(), encoding="utf-8").read()
            saved = yaml.safe_load(text)
            assert saved["lora"]["r"] == 8 and SECRET not in text and "token" not in text.lower()

            # ---- 23.9: Stop while live, then Resume offers the stopped run
            tab(page, "3 · Train")
            set_number(page, "train-max-steps", 400)
            page.locator("#train-start").click()
            expect(page.locator("#train-stop")).to_be_enabled(timeout=30_000)
            expect(page.locator("#train-resume")).to_be_disabled()
            expect(page.locator("#train-status")).to_contain_text(re.compile(r"step [2-9]\d*/400"), timeout=180_000)
            page.locator("#train-stop").click()
            expect(page.locator("#train-status")).to_contain_text("stopped", timeout=180_000)
            run_name = next(p.name for p in app.runs_dir.iterdir() if p.is_dir())
            expect(page.locator("#train-resume-run input")).to_have_value(run_name, timeout=30_000)
            expect(page.locator("#train-resume")).to_be_enabled()
            expect(page.locator("#train-stop")).to_be_disabled()
            shot(page, "newcomer-train")
            for chart in ("train-loss", "train-metrics"):
                ticks = page.evaluate(X_TICKS, chart)
                assert ticks and all(re.fullmatch(r"\d+", t.replace(",", "")) for t in ticks), (chart, ticks)
                fits = page.evaluate(TITLES_FIT, chart)
                assert fits and all(ok for _, ok in fits), (chart, fits)
            body = page.locator("body").inner_text()
            assert not re.search(r"\b1 (rows|steps|files|pairs|evaluations)\b", body), "a count reads '1 rows'"
            report(session, app, {}, 0.0, "newcomer-timings.txt")
