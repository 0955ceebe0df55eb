"""Publish as a newcomer meets it (issue 23.8): every offered format named, the card of the format chosen, the GGUF
file named alike in the app and the CLI, no intermediate merged model left behind by the CLI, the per-row eval
table never blank, and the card's metadata saying how many rows an accuracy stands on. Demo model, no converter."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from studio.cli import main
from studio.ui import hub_tab


@pytest.fixture
def fake_converter(monkeypatch):
    """The converter and the parity check stubbed (the demo tokenizer is unknown to llama.cpp's converter): the
    export's own steps around them (merge, names, card, manifest, clean-up) run for real."""
    from studio.hub import gguf_export

    def convert(stage, outfile, outtype, progress):
        outfile.write_bytes(b"GGUF" + bytes(64))

    check = SimpleNamespace(passed=True, summary=lambda: "GGUF f16: 1/1 probe answers identical to the merged model",
                            lines=lambda: ["'What is 2 + 2?': identical"], to_dict=lambda: {"passed": True})
    monkeypatch.setattr(gguf_export, "converter_available", lambda: True)
    monkeypatch.setattr(gguf_export, "_convert", convert)
    monkeypatch.setattr(gguf_export, "check_gguf", lambda *a, **k: check)


def test_the_help_names_every_format_the_publish_tab_offers():
    from studio.config import HubConfig, choices_of, field_help

    offered = [value for _, value in hub_tab.KINDS]
    assert choices_of(HubConfig, "push") == tuple(offered) or list(choices_of(HubConfig, "push")) == offered
    help_text = field_help(HubConfig, "push")
    assert all(kind in help_text for kind in offered), help_text


def test_with_gguf_chosen_the_card_describes_the_gguf_file(hub_run):
    repo, _, _ = hub_tab.run_defaults(str(hub_run))
    gguf_repo = hub_tab.repo_for_kind(str(hub_run), repo, "gguf")
    assert gguf_repo == "demo-tiny-gsm8k-gguf"
    card = hub_tab.card_for(str(hub_run), gguf_repo, "gguf", "f16")
    assert "## GGUF (llama.cpp, Ollama)" in card and "`demo-tiny-gsm8k-f16.gguf` (f16)" in card
    assert "library_name: gguf" in card and 'gguf_file="demo-tiny-gsm8k-f16.gguf"' in card
    assert "a GGUF of the merged model" in card and "# demo-tiny-gsm8k-gguf" in card
    merged = hub_tab.card_for(str(hub_run), "demo-tiny-gsm8k-merged", "merged")
    assert "## GGUF" not in merged and "library_name: transformers" in merged
    assert hub_tab.repo_for_kind(str(hub_run), "my-own-name", "gguf") is None  # a typed name is kept


def test_the_app_and_the_cli_name_the_gguf_file_alike_and_leave_no_merged_folder(hub_run, fake_converter,
                                                                                 capsys):
    from studio.hub.facts import load_facts
    from studio.hub.gguf_export import gguf_name

    facts = load_facts(hub_run)
    repo, _, kind = hub_tab.run_defaults(str(hub_run))
    app_names = {gguf_name(facts, repo, "f16"), gguf_name(facts, hub_tab.repo_for_kind(str(hub_run), repo, "gguf"),
                                                                 "f16")}
    assert main(["export", "--run", str(hub_run), "--format", "gguf", "--outtype", "f16", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    folder = Path(out.strip().splitlines()[-1])
    manifest = json.loads((folder / ".studio-export.json").read_text())
    assert app_names == {manifest["gguf"]} == {"demo-tiny-gsm8k-f16.gguf"}
    assert not (hub_run / "export" / "merged").exists(), "the intermediate merged model was left behind"
    assert "removed the intermediate merged model" in err
    import re

    for phase in ("merge: loading the base model", "stage 2/3 convert", "stage 3/3 check"):  # each phase, timed
        assert re.search(r"\] " + re.escape(phase) + r".* · elapsed \d\d:\d\d", err), (phase, err)
    from studio.session import Studio

    app = Studio(runs_dir=hub_run.parent)  # the Publish tab's Export: no merged folder left either (issue 23.8)
    app.export_run(hub_run, hub_run / "export" / "app-gguf", gguf="f16", device="cpu")
    assert not (hub_run / "export" / "merged").exists(), "the app left the intermediate merged model behind"
    assert main(["export", "--run", str(hub_run), "--format", "gguf", "--outtype", "f16", "--device", "cpu",
                 "--keep-merged"]) == 0
    assert (hub_run / "export" / "merged" / "config.json").is_file()


def test_the_per_row_eval_table_shows_the_text_where_no_answer_was_found():
    from studio.evaluate import EvalReport, ModelScores, RowResult
    from studio.ui.chat_tab import eval_tables

    row = RowResult(index=0, prompt="What is 10 - 4?", reference="#### 6", reference_answer="6",
                    base_output="ten minus four is six", base_answer=None, base_correct=False,
                    tuned_output="#### 6", tuned_answer="6", tuned_correct=True)
    report = EvalReport(run_dir="r", base=ModelScores(), tuned=ModelScores(), rows=1, per_row=[row])
    _, rows = eval_tables(report)
    assert rows[0][3] == "(no answer found) ten minus four is six" and rows[0][5] == "6"


def test_the_card_metadata_says_how_many_rows_an_accuracy_stands_on(hub_run):
    from studio.hub import render_card
    from studio.hub.card_data import card_metadata_of

    results = json.loads((hub_run / "eval_results.json").read_text())
    results["rows"], results["counts"] = 3, {"base": {"scored": 3}, "tuned": {"scored": 3}}
    (hub_run / "eval_results.json").write_text(json.dumps(results))
    meta = card_metadata_of(render_card(hub_run, repo_id="tester/demo"))
    metrics = {m["type"]: m for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert metrics["accuracy"]["args"] == {"n": 3} and "(n=3)" in metrics["accuracy"]["name"]
    assert metrics["loss"]["args"] == {"n": 3}


def test_publish_and_export_name_each_phase_in_their_status(hub_run, hub, tmp_path, fake_converter):
    """The Publish tab's status names the running phase: merge, convert, check, push (issue 23.1)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "ui"))
    from fake_progress import FakeProgress, monotonic_and_readable
    from hub_server import TEST_TOKEN

    from studio.session import Studio
    from studio.ui.app import compose, initial_config

    handles = compose(Studio(runs_dir=hub_run.parent), initial=initial_config(demo=True)).handles["publish"]
    merging = FakeProgress()
    out = handles.on_export(str(hub_run), "demo-merged", "merged", "", str(tmp_path / "merged"), "q8_0", progress=merging)
    assert "Exported" in out[handles.status], out
    text = monotonic_and_readable(merging.calls)
    assert "merge: loading the base model" in text and "merge: merging the adapter" in text, text
    gguf = FakeProgress()
    out = handles.on_export(str(hub_run), "demo-gguf", "gguf", "", str(tmp_path / "gguf"), "f16", progress=gguf)
    text = monotonic_and_readable(gguf.calls)
    assert all(phase in text for phase in ("merge: ", "convert: ", "check: ")), text
    pushing = FakeProgress()
    out = handles.on_push(str(hub_run), "phases-lora", True, "adapter", "# card\n", TEST_TOKEN, "q8_0", progress=pushing)
    assert "Pushed" in out[handles.status], out
    text = monotonic_and_readable(pushing.calls)
    assert "push: checking the token" in text and "push: uploading" in text and "export: copying the adapter" in text
