"""`studio push`: export-only, push to a local Hub server, one-line errors with exit code 2."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hub_server import TEST_TOKEN
from studio.cli import main

TOKEN = TEST_TOKEN  # the shared `hub` fixture's token
ROOT = Path(__file__).resolve().parent.parent


def test_help_names_the_token_sources_and_has_no_token_flag():
    out = subprocess.run([sys.executable, "-m", "studio.cli", "push", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0
    assert "--export-only" in out.stdout and "--merged" in out.stdout and "--private" in out.stdout
    assert "HF_TOKEN" in out.stdout and "hf auth login" in out.stdout and "shell history" in out.stdout
    assert not re.search(r"^\s+--token", out.stdout, re.M)  # no such option (the epilog says why)


def test_export_only_needs_no_network_or_token(hub_run, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = tmp_path / "exported"
    assert main(["push", "--run", str(hub_run), "--export-only", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "100%" in captured.err
    assert {"adapter_model.safetensors", "README.md", "loss_curve.png", "tokenizer.json"} <= {
        p.name for p in out.iterdir()}


def test_push_uses_hf_token_and_the_run_config(hub, hub_run, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", "--run", str(hub_run), "--repo", "cli-adapter", "--message", "first upload"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"{hub.url}/tester/cli-adapter"
    assert "Logged in as tester" in captured.err and "HF_TOKEN" in captured.err
    repo = hub.repo("tester/cli-adapter")
    assert repo.private is True  # hub.private defaults to true in the config
    assert repo.commits[-1]["summary"] == "first upload"
    assert "adapter_model.safetensors" in repo.files
    assert main(["push", "--run", str(hub_run), "--repo", "studio-org/cli-public", "--public"]) == 0
    assert hub.repo("studio-org/cli-public").private is False


def test_push_with_a_card_file(hub, hub_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    card = tmp_path / "card.md"
    card.write_text("---\nlicense: mit\ntags: [sft]\n---\n# Hand-written\n", encoding="utf-8")
    assert main(["push", "--run", str(hub_run), "--repo", "carded", "--card", str(card)]) == 0
    assert hub.repo("tester/carded").files["README.md"] == card.read_bytes()


@pytest.mark.parametrize("args, env_token, fail, match", [
    (["--repo", "x"], None, {}, "No Hugging Face token found: set HF_TOKEN"),
    (["--repo", "x"], "hf_bad", {}, "rejected the token (401 Unauthorized)"),
    (["--repo", "x"], TOKEN, {"create": 500}, "server error (500)"),
    ([], None, {}, "no --repo given, and the default repo"),
    ([], "hf_bad", {}, "needs your Hugging Face username, which can't be known"),
])
def test_errors_are_one_line_and_exit_2(hub, hub_run, monkeypatch, capsys, args, env_token, fail, match):
    if env_token:
        monkeypatch.setenv("HF_TOKEN", env_token)
    hub.fail = fail
    assert main(["push", "--run", str(hub_run), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and match in err[-1]
    assert TOKEN not in "\n".join(err)


def test_push_without_repo_goes_to_the_runs_default_repo_and_says_so(hub, hub_run, monkeypatch, capsys):
    """The same default as the Publish tab (``default_repo_name`` for the kind), under the token's account."""
    from studio.hub.facts import default_repo_name, load_facts

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    name = default_repo_name(load_facts(hub_run), "adapter")
    assert main(["push", "--run", str(hub_run)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"{hub.url}/tester/{name}"
    assert f"no --repo given: pushing to tester/{name}" in captured.err
    assert "adapter_model.safetensors" in hub.repo(f"tester/{name}").files


def test_not_a_run_dir(tmp_path, capsys):
    assert main(["push", "--run", str(tmp_path), "--export-only", str(tmp_path / "out")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
