"""The Chat tab's "Ground on documents" and Serve panels in Chromium, on the real SmolLM2 model: a fact found only
in a test document is answered by base and tuned, the right chunk listed first; the served API answers too."""
from __future__ import annotations

import os
import re
import shutil

import pytest

from browser import AppProcess, chromium_or_skip
from chat_helpers import chat_runs_dir, one_thread  # noqa: F401
from flow_steps import ARTIFACTS, open_session, report, tab
from serve_helpers import FACT, FACT_QUESTION, docs_dir, smollm2_chat_run  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _box(page, elem_id):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def test_chat_tab_grounds_answers_on_documents_and_serves(smollm2_chat_run, docs_dir, tmp_path):  # noqa: F811
    import time

    from playwright.sync_api import expect, sync_playwright

    chromium = chromium_or_skip()
    runs = tmp_path / "runs"
    shutil.copytree(smollm2_chat_run, runs / smollm2_chat_run.name)
    env = {k: v for k, v in os.environ.items() if k not in ("HUGGING_FACE_HUB_TOKEN", "HF_TOKEN")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    app = AppProcess(runs, ARTIFACTS / "docs-app.log", env).start(timeout=180)
    t_all = time.perf_counter()
    try:
        with sync_playwright() as p, open_session(p, chromium, app.url, "docs-last.png") as s:
            page = s.page
            tab(page, "4 · Chat")
            expect(page.locator("#chat-run input")).to_have_value(re.compile("^smol-chat"), timeout=60_000)
            page.get_by_text("Ground on documents (RAG)").click()
            _box(page, "chat-docs-path").fill(str(docs_dir))
            _box(page, "chat-docs-question").fill(FACT_QUESTION)
            page.locator("#chat-docs-ask").click()
            first_row = page.locator("#chat-docs-chunks").get_by_role("row").nth(1)  # after the header row
            expect(first_row.get_by_role("gridcell").nth(1)).to_have_text("veltrania.txt", timeout=180_000)
            expect(first_row.get_by_role("gridcell").first).to_have_text("1")
            expect(_box(page, "chat-docs-tuned")).to_have_value(re.compile(FACT), timeout=240_000)
            expect(_box(page, "chat-docs-base")).to_have_value(re.compile(FACT), timeout=240_000)
            expect(page.locator("#chat-docs-status")).to_contain_text("3 chunks")
            page.screenshot(path=str(ARTIFACTS / "chat-docs.png"), full_page=True)

            page.get_by_text("Serve: an OpenAI-compatible API").click()
            _box(page, "chat-serve-port").fill("0")
            page.locator("#chat-serve-start").click()
            expect(page.locator("#chat-serve-url")).to_contain_text("/v1", timeout=120_000)
            url = re.search(r"http://127\.0\.0\.1:\d+/v1", page.locator("#chat-serve-url").inner_text()).group(0)
            expect(page.locator("#chat-serve-curl")).to_contain_text(f"{url}/chat/completions")
            from openai import OpenAI

            client = OpenAI(base_url=url, api_key="none", max_retries=0, timeout=300)
            assert [m.id for m in client.models.list().data][-1] == "smol-chat"
            reply = client.chat.completions.create(model="smol-chat", max_tokens=4, temperature=0,
                                                   messages=[{"role": "user", "content": "Hello"}])
            assert reply.choices[0].message.content
            page.locator("#chat-serve-stop").click()
            expect(page.locator("#chat-serve-url")).to_contain_text("Stopped the server")
            report(s, app, {}, t_all, "docs-timings.txt")
    finally:
        app.stop()
