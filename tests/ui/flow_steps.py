"""Steps of the real-browser flow that the demo-model and the real-model browser tests share (issue 15's checks).

Each step drives a playwright ``page`` of the running app and asserts what a user would see; the tests compose
them with their own model, data and sizes.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from browser import ROOT, launch_chromium, tracebacks

ARTIFACTS = ROOT / "test-artifacts" / "browser"
SCREENSHOTS = ROOT / "docs" / "screenshots"
LITERAL = "#### 42 and *bold*"
ROW_HEADERS = ["#", "Question", "Reference", "Base answer", "Base ✓", "Tuned answer", "Tuned ✓"]
ERROR_PILLS = """ids => ids.flatMap(id => [...document.querySelectorAll(`#${id} .error`)]).filter(e => e.offsetParent !== null)
    .map(e => e.innerText).concat([...document.querySelectorAll('.toast-body.error')].map(e => e.innerText))"""
PROGRESS_RECORDER = """
window.__studioProgress = [];
new MutationObserver(() => {
    for (const e of document.querySelectorAll('.progress-level-inner')) {
        const t = e.innerText.trim();
        if (t && !window.__studioProgress.includes(t)) window.__studioProgress.push(t);
    }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""
"""Records every gr.Progress description the page shows (they come and go faster than a poll)."""


class Session:
    """One browser page on the app, collecting console and page errors (not those of a page being reloaded: the
    requests it had in flight end in aborted fetches)."""

    def __init__(self, browser: Any, url: str, width: int = 1400):
        self.problems: list[str] = []
        self._reloading = False
        self.page = browser.new_page(viewport={"width": width, "height": 1000})
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.set_default_timeout(60_000)
        self.page.add_init_script(PROGRESS_RECORDER)
        self.page.goto(url)

    def _on_console(self, m: Any) -> None:
        if m.type == "error" and not self._reloading:
            self.problems.append(f"console {m.type}: {m.text}")

    def reload(self) -> None:
        self._reloading = True
        try:
            self.page.reload()
        finally:
            self._reloading = False


@contextmanager
def open_session(playwright: Any, chromium: str, url: str, last_png: str) -> Iterator[Session]:
    """A Chromium page on the app; on the way out a screenshot of where it stood (``last_png``) and the browser
    closed, whatever happened."""
    browser = launch_chromium(playwright, chromium)
    session = Session(browser, url)
    try:
        yield session
    finally:
        try:
            session.page.screenshot(path=str(ARTIFACTS / last_png), full_page=True)
        except Exception:  # noqa: BLE001 - best effort
            pass
        browser.close()


def report(session: Session, app: Any, timings: dict[str, float], t_all: float, name: str) -> None:
    """Write and print the flow's timings; fail on any browser console error or server traceback."""
    timings["whole flow (s)"] = round(time.perf_counter() - t_all, 1)
    text = "".join(f"{k}: {v}\n" for k, v in timings.items())
    (ARTIFACTS / name).write_text(text, encoding="utf-8")
    print("\n" + text)
    assert not session.problems, "browser console errors:\n" + "\n".join(session.problems)
    assert not tracebacks(app.output()), "server tracebacks:\n" + "\n\n".join(tracebacks(app.output()))


def tab(page: Any, label: str) -> None:
    page.get_by_role("tab", name=label).click()


def shot(page: Any, name: str) -> None:
    """Full-page screenshot once no component shows "processing" (toasts hidden: they would cover the tab), into
    the artifacts; with STUDIO_UPDATE_SCREENSHOTS=1 also into docs/screenshots (the README's pictures)."""
    page.add_style_tag(content=".toast-wrap { display: none !important; }")
    page.wait_for_function("""() => !document.body.innerText.includes('processing |') && ![...document.querySelectorAll(
        '.progress-level, .progress-bar, .eta-bar')].some(e => e.offsetParent !== null)""", timeout=60_000)
    page.wait_for_timeout(300)  # let the last redraw paint
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("STUDIO_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")


def plot_signature(page: Any, elem_id: str) -> str | None:
    """The traces of a plotly chart (x lengths and last y) as a string, or None before it is drawn."""
    return page.evaluate("""id => { const g = document.querySelector(`#${id} .js-plotly-plot`);
        if (!g || !g.data) return null;
        return JSON.stringify(g.data.map(t => [(t.x || []).length, (t.y || []).slice(-1)[0]])); }""", elem_id)


def plot_trace_names(page: Any, elem_id: str) -> list[str]:
    return page.evaluate("""id => { const g = document.querySelector(`#${id} .js-plotly-plot`);
        return g && g.data ? g.data.map(t => t.name || '') : []; }""", elem_id)


def bot_text(page: Any, elem_id: str) -> str:
    bots = page.locator(f"#{elem_id} [data-testid='bot']")
    return bots.last.inner_text() if bots.count() else ""


def wait_for_preview(page: Any, expect: Any) -> None:
    """The Data tab's preview has drawn its highlighted rows and the length histogram."""
    expect(page.locator("#data-summary")).not_to_contain_text("Loading the preview", timeout=120_000)
    expect(page.locator("#data-preview .textfield span").first).to_be_visible(timeout=120_000)
    page.wait_for_function("() => document.querySelector('#data-histogram .js-plotly-plot')", timeout=60_000)


def source_switch_shows_no_errors(page: Any, expect: Any) -> None:
    """Issue 15.1: each source kind shows its hint, never an error pill or toast."""
    for kind, hint in (("Upload a file", "Upload a dataset file"), ("Hub id or local path", "Hub dataset id"),
                       ("Bundled sample", "rows")):
        page.locator("#data-source-kind label", has_text=kind).click()
        expect(page.locator("#data-summary")).to_contain_text(hint, timeout=60_000)
        page.wait_for_timeout(800)
        pills = page.evaluate(ERROR_PILLS, ["data-preview", "data-histogram", "data-summary", "data-stats"])
        assert not pills, f"switching to {kind!r} showed errors: {pills}"
    expect(page.locator("#data-error")).to_be_hidden()


def template_edits_follow(page: Any, expect: Any, pasted: str, answer_marker: str) -> None:
    """Issue 15.2: a paste (no key events) and Backspaces redraw the preview; the broken placeholder's problem
    shows inline with at most one toast; putting the original back restores its preview. ``pasted`` ends with a
    placeholder whose closing brace the first Backspace removes."""
    box = page.locator("#data-template textarea")
    original = box.input_value()
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(pasted)
    expect(page.locator("#data-preview")).to_contain_text(pasted.split("{")[0], timeout=30_000)
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    expect(page.locator("#data-error")).to_be_visible(timeout=30_000)
    for _ in range(5):
        page.keyboard.press("Backspace")
    page.wait_for_timeout(1500)
    toasts = page.locator(".toast-body").count()
    assert toasts <= 1, f"{toasts} toasts for one template edit"
    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    page.keyboard.insert_text(original)
    expect(page.locator("#data-error")).to_be_hidden(timeout=30_000)
    expect(page.locator("#data-preview")).to_contain_text(answer_marker, timeout=30_000)
    expect(page.locator("#data-preview")).not_to_contain_text(pasted.split("{")[0])


def open_config(page: Any, expect: Any, path: Path) -> None:
    """Open a YAML config through the config strip's file chooser."""
    with page.expect_file_chooser() as chooser:
        page.locator("#config-open").click()
    chooser.value.set_files(str(path))
    expect(page.locator("#config-source")).to_contain_text(path.name, timeout=60_000)


def set_number(page: Any, elem_id: str, value: Any) -> None:
    box = page.locator(f"#{elem_id} input")
    box.fill(str(value))
    box.press("Tab")


def follow_run(page: Any, signatures: list[str], until: int, seconds: float = 600) -> str:
    """Poll the loss chart until it was drawn ``until`` times or the run ended; returns the status line."""
    deadline = time.time() + seconds
    status = ""
    while time.time() < deadline and len(signatures) < until:
        sig = plot_signature(page, "train-loss")
        if sig and (not signatures or sig != signatures[-1]):
            signatures.append(sig)
        status = page.locator("#train-status").inner_text()
        if "finished" in status or "failed" in status:
            break
        time.sleep(0.25)
    return status


def train_with_reload(session: Session, expect: Any, app: Any, steps: int, batch: int, min_draws: int,
                      after_reload: Callable[[Any], None] = lambda page: None) -> Path:
    """Issues 15.3 and 15.7: Start a run of ``steps`` steps at ``batch``; Start is disabled with the reason while it
    trains; a reload mid-run shows the run's values in the forms (``after_reload`` checks more); the page follows
    the run to its end, the loss chart redrawn at least ``min_draws`` times, and the log box shows its newest line.
    Returns the run's folder."""
    page = session.page
    tab(page, "3 · Train")
    set_number(page, "train-max-steps", steps)
    set_number(page, "train-batch-size", batch)
    page.locator("#train-start").click()
    expect(page.locator("#train-start")).to_be_disabled(timeout=10_000)
    expect(page.locator("#train-start-reason")).to_contain_text("one run at a time", timeout=10_000)
    signatures: list[str] = []
    follow_run(page, signatures, 2)
    session.reload()
    expect(page.locator("#config-source")).to_contain_text("settings of run", timeout=60_000)
    tab(page, "3 · Train")
    expect(page.locator("#train-max-steps input")).to_have_value(str(steps), timeout=30_000)
    expect(page.locator("#train-batch-size input")).to_have_value(str(batch))
    after_reload(page)
    tab(page, "3 · Train")
    status = follow_run(page, signatures, 10_000)
    assert "finished" in status, f"training did not finish: {status}\n{app.output()[-2000:]}"
    time.sleep(1.5)  # the last tick redraws the chart
    sig = plot_signature(page, "train-loss")
    if sig and (not signatures or sig != signatures[-1]):
        signatures.append(sig)
    assert len(signatures) >= min_draws, f"the loss chart was drawn {len(signatures)} times: {signatures}"
    expect(page.locator("#train-start")).to_be_enabled(timeout=10_000)
    scroll = page.evaluate("""() => { const t = document.querySelector('#train-log textarea');
        return [t.scrollTop, t.clientHeight, t.scrollHeight]; }""")
    assert scroll[0] + scroll[1] >= scroll[2] - 4, f"the log box does not show its newest line: {scroll}"
    return next(p for p in Path(app.runs_dir).iterdir() if p.is_dir())


def chat_shows_literal_text(page: Any, expect: Any, run_name: str) -> tuple[str, str]:
    """Issue 15.4: the finished run is picked; ``#### 42 and *bold*`` shows literally in both panes and both
    answer. Returns the base and tuned answers."""
    tab(page, "4 · Chat")
    expect(page.locator("#chat-run input")).to_have_value(re.compile(rf"^{run_name} · finished"), timeout=30_000)
    page.locator("#chat-input textarea").fill(LITERAL)
    page.locator("#chat-send").click()
    expect(page.locator("#chat-base [data-testid='user']").last).to_contain_text(LITERAL, timeout=60_000)
    expect(page.locator("#chat-tuned [data-testid='user']").last).to_contain_text(LITERAL)
    page.wait_for_function("""() => ['chat-base', 'chat-tuned'].every(id =>
        [...document.querySelectorAll(`#${id} [data-testid='bot']`)].some(b => b.innerText.trim()))""",
                           timeout=300_000)
    expect(page.locator("#chat-notice")).not_to_contain_text("Answering", timeout=300_000)
    expect(page.locator("#chat-error")).to_be_hidden()
    base, tuned = bot_text(page, "chat-base").strip(), bot_text(page, "chat-tuned").strip()
    assert base and tuned
    return base, tuned


def evaluation_tables_fit(page: Any, expect: Any, rows: int) -> None:
    """Issue 15.5: the per-row evaluation columns fit a 1400 px window; the probe timeline wraps by words."""
    page.locator("#chat-eval-panel").get_by_text("Evaluate on the held-out split").click()
    set_number(page, "chat-eval-rows", rows)
    page.locator("#chat-eval").click()
    expect(page.locator("#chat-eval-rows-table")).to_contain_text("Tuned ✓", timeout=60_000)
    expect(page.locator("#chat-eval-table")).to_contain_text("accuracy", timeout=600_000)
    edges = page.evaluate("""names => { const t = document.querySelector('#chat-eval-rows-table');
        const cells = [...t.querySelectorAll('*')].filter(e => e.children.length === 0 &&
            names.includes((e.innerText || '').trim().replace(/\\s+/g, ' ')));
        return [t.getBoundingClientRect().right, cells.length,
                ...cells.map(e => e.getBoundingClientRect().right)]; }""", ROW_HEADERS)
    right, found, cells = edges[0], edges[1], edges[2:]
    assert found >= len(ROW_HEADERS), f"per-row headers not all shown: {found} of {ROW_HEADERS}"
    assert all(0 < r <= min(right, 1400) + 1 for r in cells), \
        f"per-row columns run past the table (table right {right}, header right edges {cells})"
    page.locator("#chat-probes-panel").get_by_text("Probe timeline").click()
    heights = page.evaluate("""() => [...document.querySelectorAll('#chat-probes th')].map(h =>
        [h.innerText, h.getBoundingClientRect().height, parseFloat(getComputedStyle(h).lineHeight) || 24])""")
    for text, height, line in heights:
        assert height < 2 * line + 16, f"probe timeline header {text!r} wraps ({height}px)"


def uploads_are_checked(page: Any, expect: Any, tmp: Path, header: tuple[str, str], missing: str) -> None:
    """Issues 15.6 and 23.2: an uploaded CSV with other column names gets a template that follows its header (no
    error: the preview shows its rows); a template then typed for a ``missing`` column gets an error worded from the
    file's own header (not the previous data's columns); a local file with an empty answer is warned about."""
    question, answer = header
    bad = tmp / "missing_column.csv"
    bad.write_text(f"{question},{answer}\nWhat is 2 + 2?,#### 4\nWhat is 3 + 3?,#### 6\n", encoding="utf-8")
    empty = tmp / "empty_answer.jsonl"
    empty.write_text("".join(json.dumps({question: f"What is {i} + {i}?", missing: "" if i == 2 else
                                         f"{i} + {i} = {2 * i}\n#### {2 * i}"}) + "\n" for i in range(1, 9)),
                     encoding="utf-8")
    page.locator("#data-source-kind label", has_text="Upload a file").click()
    page.locator("#data-upload input[type=file]").set_input_files(str(bad))
    error = page.locator("#data-error")
    expect(page.locator("#data-preview")).to_contain_text("What is 2 + 2?", timeout=60_000)
    expect(error).to_be_hidden()
    page.locator("#data-template textarea").fill(f"{{{question}}}\n### Solution: {{{missing}}}")
    expect(error).to_be_visible(timeout=60_000)
    text = error.inner_text()
    assert answer in text and missing in text, f"the missing column is not worded from the header: {text}"
    assert "system" not in text and "'text'" not in text, f"the error names columns the file lacks: {text}"
    page.locator("#data-source-kind label", has_text="Hub id or local path").click()
    box = page.locator("#data-path textarea, #data-path input").first
    box.fill(str(empty))
    box.press("Enter")
    expect(page.locator("#data-warnings")).to_contain_text("empty", timeout=60_000)
    expect(error).to_be_hidden()


def measured_bar_follows_the_model(page: Any, expect: Any, other_model: str) -> None:
    """Issue 15.8: after a run, the Model tab shows its measured peak for the run's model only; picking another
    model (the preset whose label matches ``other_model``) drops it from the summary and the chart."""
    tab(page, "2 · Model")
    summary = page.locator("#model-memory-summary")
    expect(summary).to_contain_text("Measured peak of the last run on this model", timeout=60_000)
    assert "measured peak" in plot_trace_names(page, "model-memory")
    page.locator("#model-name input").click()
    page.get_by_role("option", name=re.compile(other_model)).click()
    expect(summary).not_to_contain_text("Measured peak", timeout=60_000)
    expect(summary).to_contain_text("Estimate")
    assert "measured peak" not in plot_trace_names(page, "model-memory")
