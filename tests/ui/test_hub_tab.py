"""Publish tab: card preview glue, and a served app pushing to the local Hub server through gradio_client (whoami,
edited card arrives, private flag, link, 401/500 sentences, export only, the token written nowhere)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fake_progress import FakeProgress, monotonic_and_readable

from conftest import free_port
from hub_fixtures import local_hub
from hub_server import TEST_TOKEN
from studio.session import Studio
from studio.ui import hub_tab

TOKEN = TEST_TOKEN


def test_card_preview_shows_the_yaml_header_as_code_and_images_as_notes():
    card = "---\nbase_model: x\ntags:\n- lora\n---\n\n# Title\n\n![Training loss](loss_curve.png)\n"
    out = hub_tab.card_preview(card)
    assert out.startswith("**Metadata (YAML header)**\n\n```yaml\nbase_model: x\ntags:\n- lora\n```")
    assert "# Title" in out and "](loss_curve.png)" not in out and "`loss_curve.png`" in out
    assert "Pick a run" in hub_tab.card_preview("")
    broken = hub_tab.card_preview("---\nlicense: [mit\n---\n# Title\n")
    assert broken.startswith("⚠️ the model card's YAML header is invalid") and "# Title" in broken


def test_run_defaults_and_token_status(tmp_path, monkeypatch):
    assert hub_tab.run_defaults(None) == ("", True, "adapter")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "none"))
    assert "No token yet" in hub_tab.token_status("")
    assert "kept in memory" in hub_tab.token_status("hf_abc")
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert "HF_TOKEN" in hub_tab.token_status(None)


# ------------------------------------------------------------------------------------------------- served app
def test_run_defaults_name_the_model_and_dataset(hub_base_run):
    assert hub_tab.run_defaults(str(hub_base_run)) == ("demo-tiny-gsm8k-lora", True, "adapter")


def test_a_run_from_the_app_default_config_is_named_after_its_own_data(hub_base_run, tmp_path):
    """The app starts from linear_equations.yaml; a run trained on word_problems.jsonl from it is offered under its
    own model and data, not the bundled config's name (issue 23.8)."""
    from studio.config import ASSETS_CONFIGS, load_config
    from studio.paths import ASSETS

    run_dir = tmp_path / "run"
    shutil.copytree(hub_base_run, run_dir)
    cfg = load_config(ASSETS_CONFIGS / "linear_equations.yaml").with_overrides([])
    cfg.data.sources[0].path = str(ASSETS / "datasets" / "word_problems.jsonl")
    cfg.save(run_dir / "config.yaml")
    assert hub_tab.run_defaults(str(run_dir))[0] == "demo-tiny-word_problems-lora"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The local Hub for this module's served app (module-scoped, so its own MonkeyPatch)."""
    mp = pytest.MonkeyPatch()
    try:
        with local_hub(mp, tmp_path_factory.mktemp("hf-home")) as server:
            yield server
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def served(hub_base_run, hub):
    from gradio_client import Client

    from studio.ui.app import build_app, initial_config, launch_kwargs

    studio = Studio(runs_dir=hub_base_run.parent)
    app = build_app(studio, initial=initial_config(demo=True))
    port = free_port()
    app.queue().launch(server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False), str(hub_base_run)
    finally:
        app.close()


def _text(update) -> str:
    return update.get("value") or "" if isinstance(update, dict) else str(update or "")


def test_the_tab_opens_on_the_newest_run_with_its_card(served):
    client, run = served
    card, preview, error = client.predict(run, "me/demo", "adapter", api_name="/render_card")
    assert card.startswith("---\n") and "library_name: peft" in card and "me/demo" in card
    assert "```yaml" in preview


def test_whoami_names_the_account_and_a_bad_token_is_one_sentence(served, hub):
    client, _ = served
    account, error = client.predict(TOKEN, api_name="/whoami")
    assert "Logged in as tester" in account and hub.url in account
    account, error = client.predict("hf_wrong", api_name="/whoami")
    assert "rejected the token (401" in _text(error) and "Traceback" not in _text(error)
    assert "hf_wrong" not in _text(error)


def test_push_sends_the_edited_card_privately_and_shows_the_link(served, hub):
    client, run = served
    card, _, _ = client.predict(run, "demo-lora", "adapter", api_name="/render_card")
    edited = card + "\nEdited in the Publish tab.\n"
    status, link, error = client.predict(run, "demo-lora", True, "adapter", edited, TOKEN, api_name="/push")
    assert "Pushed" in status, _text(error)
    assert f"{hub.url}/tester/demo-lora" in link
    repo = hub.repo("tester/demo-lora")
    assert repo.private is True
    assert {"README.md", "adapter_model.safetensors", "adapter_config.json"} <= set(repo.files)
    assert repo.files["README.md"].decode().endswith("Edited in the Publish tab.\n")
    written = [p for p in Path(run).rglob("*") if p.is_file()]
    assert written and not any(TOKEN.encode() in p.read_bytes() for p in written)


def test_push_failure_is_one_sentence_and_keeps_the_export(served, hub):
    client, run = served
    hub.fail["create"] = 500
    try:
        status, link, error = client.predict(run, "broken", False, "adapter", "", TOKEN, api_name="/push")
    finally:
        hub.fail.clear()
    assert "Push failed" in status and "kept" in status
    text = _text(error)
    assert "500" in text or "server" in text.lower()
    assert "Traceback" not in text and TOKEN not in text
    assert (Path(run) / "export" / "adapter" / "adapter_model.safetensors").exists()


def test_no_repo_id_and_no_token_are_sentences(served):
    client, run = served
    _, _, error = client.predict(run, "  ", True, "adapter", "", TOKEN, api_name="/push")
    assert "Type a repo id" in _text(error)
    _, _, error = client.predict(run, "x", True, "adapter", "", "", api_name="/push")
    assert "No Hugging Face token found" in _text(error)


def test_export_only_writes_a_folder_without_the_network(served, tmp_path):
    client, run = served
    out = tmp_path / "exported"
    status, error = client.predict(run, "demo-lora", "adapter", "# My card\n", str(out), api_name="/export")
    assert "Exported" in status and str(out) in status
    assert (out / "README.md").read_text() == "# My card\n"
    assert (out / "adapter_model.safetensors").exists()
    shutil.rmtree(out)


def test_export_and_push_report_progress(served, hub_base_run, hub, tmp_path):
    from studio.ui.app import compose, initial_config

    handles = compose(Studio(runs_dir=hub_base_run.parent), initial=initial_config(demo=True)).handles["publish"]
    exporting = FakeProgress()
    out = handles.on_export(str(hub_base_run), "demo-lora", "adapter", "# card\n", str(tmp_path / "out"), "q8_0",
                            progress=exporting)
    assert "Exported" in out[handles.status], out
    text = monotonic_and_readable(exporting.calls)
    assert "copying the adapter" in text and "exported to" in text, text
    pushing = FakeProgress()
    out = handles.on_push(str(hub_base_run), "progress-lora", True, "adapter", "# card\n", TOKEN, "q8_0", progress=pushing)
    assert "Pushed" in out[handles.status], out
    text = monotonic_and_readable(pushing.calls)
    assert "checking the token" in text and "uploading" in text and "pushed to" in text, text


def test_gguf_export_is_described_with_its_check(tmp_path):
    from studio.hub.gguf_export import GGUFCheck, GGUFExport, ProbeParity, Stage

    probes = [ProbeParity("What is 2+2?", "4", "4", True, 3),
              ProbeParity("Solve x+1=3", "x = 2", "x = 3", False, 2, gap=0.25)]
    check = GGUFCheck("q8_0", probes=probes, template_ok=True, eos_ok=True, modelfile_ok=True, compared=True)
    result = GGUFExport(path=tmp_path, gguf_file="m-q8_0.gguf", outtype="q8_0", check=check,
                        files=["Modelfile", "README.md", "m-q8_0.gguf"], stages=[Stage("convert (q8_0)", 9.5, 3 << 20)])
    text = hub_tab.describe_gguf(result)
    assert text.startswith("✅ GGUF q8_0: 1/2 probe answers identical to the merged model")
    assert "first divergence at answer token 3, logit gap 0.25" in text and "convert (q8_0): 9.5 s, 3.0 MB" in text
    check.template_ok = False
    text = hub_tab.describe_gguf(result)
    assert "Check failed: this GGUF will not be pushed" in text and "does NOT give the trained prompt" in text
    check.outtype, check.template_ok = "f16", True
    assert not check.passed  # f16 must be identical on every probe
