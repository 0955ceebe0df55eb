"""The whole app in a real browser: Data -> Model -> Train -> Chat -> Publish on the offline demo model.

Issue 15 ("what it shows is what it does, after a reload too") is asserted on the way: switching the source kind
shows no error element; pasting into the template and deleting from it redraws the preview, with the problem
inline and no toast per key; an uploaded file's missing column is worded from its header and a file with an empty
answer is warned about; a multi-source config opened from a file survives the forms into the run unchanged;
Start is disabled while the run is live; a reload mid-run shows the run's values in the forms; the log box shows
its newest line; the measured memory bar shows only for the run's model; Chat shows `#### 42 and *bold*` literally; the per-row evaluation table fits a 1400 px window
and the probe timeline's "Step" column is one line.

The app runs as a subprocess (``python launch.py --demo``) with ``HF_ENDPOINT`` pointing at the local fake Hub
(tests/hub_server.py, in this process) and a fake ``HF_TOKEN``; headless Debian Chromium clicks through the flow.
Screenshots of every tab go to ``test-artifacts/browser/``; with ``STUDIO_UPDATE_SCREENSHOTS=1`` also to ``docs/screenshots/`` (the README
shows them). Fails on any browser console error, page error, or traceback in the app's output. Without Chromium it
skips, except in CI (``CI=true``), where it fails.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from browser import AppProcess, chromium_or_skip
from flow_steps import (ARTIFACTS, chat_shows_literal_text, evaluation_tables_fit, measured_bar_follows_the_model,
                        open_config, open_session, report, shot, source_switch_shows_no_errors, tab,
                        template_edits_follow, train_with_reload, uploads_are_checked, wait_for_preview)
from hub_server import HubServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOKEN = "hf_browser_test_token_4d1c"
STEPS = 40
"""Unquantized (as the opened config says): long enough for the chart to redraw while it trains."""
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def hub():
    with HubServer(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def app(hub, chromium, smollm2_folder, tmp_path_factory):
    """The demo app; the real model's folder is built first, as the Model tab is switched to it once."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                             "HUGGING_FACE_HUB_TOKEN")}
    env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc = AppProcess(tmp_path_factory.mktemp("browser-runs"), ARTIFACTS / "app.log", env).start()
    TIMINGS["app start to first page (s)"] = round(proc.startup_s or 0, 1)
    try:
        yield proc
    finally:
        proc.stop()


def mixed_config(path: Path) -> Path:
    """The app's own start config with two weighted sources (different columns each), saved as YAML."""
    import dataclasses

    from studio.config import SourceConfig
    from studio.ui.app import initial_config
    from studio.ui.forms import DATASETS_DIR

    cfg = initial_config(demo=True)
    data = dataclasses.replace(cfg.data, format="prompt_completion", template="{prompt}\n ### Solution: {completion}",
                               response_template="### Solution:", sources=[
        SourceConfig(path=str(DATASETS_DIR / "linear_equations.csv"),
                     columns={"prompt": "Problem", "completion": "Solution"}),
        SourceConfig(path=str(DATASETS_DIR / "word_problems.jsonl"),
                     columns={"prompt": "question", "completion": "answer"}, weight=0.5)])
    return dataclasses.replace(cfg, data=data).save(path)


def test_full_flow_in_a_real_browser(app, hub, chromium, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    t_all = time.perf_counter()
    with sync_playwright() as pw:
        with open_session(pw, chromium, app.url, "last.png") as session:
            page = session.page
            # ---- Data: the bundled linear equations, highlighted trained tokens, length histogram
            t0 = time.perf_counter()
            sample = page.locator("#data-sample input")
            expect(sample).to_have_value("linear_equations.csv", timeout=60_000)
            expect(page.locator("#data-summary")).not_to_contain_text("Loading the preview", timeout=90_000)
            if page.locator("#data-error").is_visible():  # the preview the page opens with
                session.problems.append("Data tab opened with an error: " + page.locator("#data-error").inner_text())
            sample.click()
            page.get_by_role("option", name="linear_equations.csv").click()
            wait_for_preview(page, expect)
            assert page.locator("#data-preview .textfield span").count() > 10
            TIMINGS["data preview (s)"] = round(time.perf_counter() - t0, 1)
            stages = page.evaluate("() => window.__studioProgress || []")
            assert any(re.search(r"reading|loading the tokenizer|tokenizing all \d+ rows", t) for t in stages), \
                f"the preview's gr.Progress stages never showed: {stages}"
            shot(page, "1-data")
            source_switch_shows_no_errors(page, expect)  # issue 15.1
            template_edits_follow(page, expect, "Q: {Problem}\nA: {Solution}", "### Solution:")  # issue 15.2
            uploads_are_checked(page, expect, tmp_path, ("Problem", "Answer"), "Solution")  # issue 15.6

            # ---- Model: demo model, 4-bit, memory estimate
            tab(page, "2 · Model")
            expect(page.locator("#model-name input")).to_have_value(re.compile(r"^demo-tiny"))
            summary = page.locator("#model-memory-summary p")
            expect(summary).to_contain_text("Estimate", timeout=60_000)
            before = summary.inner_text()
            t0 = time.perf_counter()
            page.locator("#model-quantization label", has_text="4bit").click()
            expect(page.locator("#model-quant-type")).to_be_visible()
            page.wait_for_function("""before => { const p = document.querySelector('#model-memory-summary p');
                return p && p.innerText.includes('Estimate') && p.innerText !== before; }""", arg=before)
            page.wait_for_function("() => document.querySelector('#model-memory .js-plotly-plot')")
            TIMINGS["memory estimate after choosing 4-bit (s)"] = round(time.perf_counter() - t0, 1)
            shot(page, "2-model")

            # ---- issue 15.9: a config with two weighted sources, opened from a file, shows both
            mix = mixed_config(ARTIFACTS / "mix.yaml")
            open_config(page, expect, mix)
            tab(page, "1 · Data")
            expect(page.locator("#data-extra-sources")).to_contain_text("word_problems.jsonl", timeout=30_000)
            expect(page.locator("#data-extra-sources")).to_contain_text("0.5")
            expect(page.locator("#data-summary")).to_contain_text("850 rows", timeout=60_000)

            # ---- Train (issues 15.3, 15.7): a short run, reloaded mid-run; the chart redraws while it trains
            def sources_survive_reload(page) -> None:
                tab(page, "1 · Data")
                expect(page.locator("#data-extra-sources")).to_contain_text("word_problems.jsonl", timeout=30_000)

            t0 = time.perf_counter()
            run_dir = train_with_reload(session, expect, app, STEPS, 2, 3, sources_survive_reload)
            TIMINGS[f"train {STEPS} steps on two sources, click to finished (s)"] = round(time.perf_counter() - t0, 1)
            from studio.config import load_config
            ran, opened = load_config(run_dir / "config.yaml"), load_config(mix)
            assert ran.data == opened.data, f"the run trained other data than the opened config:\n{ran.data}"
            assert (ran.train.max_steps, ran.train.batch_size) == (STEPS, 2)
            shot(page, "3-train")
            measured_bar_follows_the_model(page, expect, "^smollm2")  # issue 15.8

            # ---- Chat (issues 15.4, 15.5): both panes answer, text shows literally, evaluation tables fit
            t0 = time.perf_counter()
            run_name = run_dir.name
            chat_shows_literal_text(page, expect, run_name)
            TIMINGS["chat: load + both answers (s)"] = round(time.perf_counter() - t0, 1)
            evaluation_tables_fit(page, expect, 3)
            shot(page, "4-chat")

            # ---- Publish: card preview, whoami, push to the local Hub, the link appears
            tab(page, "5 · Publish")
            expect(page.locator("#publish-run input")).to_have_value(
                re.compile(rf"^{run_name} · "), timeout=30_000)
            expect(page.locator("#publish-preview")).to_contain_text("Metadata (YAML header)")
            expect(page.locator("#publish-preview")).to_contain_text("studio/demo-tiny")
            page.locator("#publish-check").click()
            expect(page.locator("#publish-account")).to_contain_text("Logged in as tester")
            t0 = time.perf_counter()
            page.locator("#publish-push").click()
            link = page.locator("#publish-link a")
            expect(link).to_contain_text(f"{hub.url}/tester/", timeout=120_000)
            TIMINGS["push to the local Hub (s)"] = round(time.perf_counter() - t0, 1)
            repo_id = link.inner_text().split(f"{hub.url}/")[1].strip()
            assert {"README.md", "adapter_model.safetensors"} <= set(hub.repo(repo_id).files)
            assert hub.repo(repo_id).private
            print("\ngr.Progress stages the page showed:", " | ".join(page.evaluate("() => window.__studioProgress")))
            shot(page, "5-publish")
            # ---- every tab at 1000 px as well (the 1400 px ones are above): a page opened at that width, which
            # again shows the run's settings (charts size themselves when a page renders, not on a later resize)
            page.set_viewport_size({"width": 1000, "height": 1000})
            session.reload()
            expect(page.locator("#config-source")).to_contain_text("settings of", timeout=60_000)
            expect(page.locator("#data-summary")).to_contain_text("850 rows", timeout=90_000)
            for label, name in (("1 · Data", "1-data"), ("2 · Model", "2-model"), ("3 · Train", "3-train"),
                                ("4 · Chat", "4-chat"), ("5 · Publish", "5-publish")):
                tab(page, label)
                page.wait_for_timeout(500)
                shot(page, f"{name}-1000")
    report(session, app, TIMINGS, t_all, "timings.txt")
    written = [p for p in Path(app.runs_dir).rglob("*") if p.is_file()]
    assert not any(TOKEN.encode() in p.read_bytes() for p in written), "the token was written to disk"
