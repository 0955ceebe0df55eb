"""Publishing: loss-curve PNG, model card, adapter and merged export, push to a local Hub server, failures, token."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from hub_fixtures import PROBE, make_run_dir, set_config
from hub_server import TEST_TOKEN
from studio.errors import HubError

TOKEN = TEST_TOKEN  # the shared `hub` fixture's token


def _meta(card: str) -> dict:
    from studio.hub import card_metadata_of

    return card_metadata_of(card)


# ------------------------------------------------------------------------------------------------- chart
def _png(data: bytes):
    """The decoded PNG (Pillow), checked to be a complete RGB image."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()  # decodes every row: a truncated or corrupt file raises here
    return image.convert("RGB")


def _mean_row(image, color) -> dict[str, float]:
    """Mean pixel row of ``color`` in the left and right thirds of the plot (smaller is higher up)."""
    width = image.width
    rows: dict[str, list[int]] = {"left": [], "right": []}
    for (x, y), pixel in zip(((x, y) for y in range(image.height) for x in range(width)), image.getdata()):
        if pixel == color:
            third = "left" if x < width / 3 else "right" if x > 2 * width / 3 else None
            if third:
                rows[third].append(y)
    return {k: sum(v) / len(v) for k, v in rows.items() if v}


def test_loss_chart_is_a_png_with_both_curves_going_down():
    from studio.hub.chart import PALETTE, line_chart_png

    png = line_chart_png({"train loss": [(s, 6 - 0.1 * s) for s in range(1, 40)],
                          "eval loss": [(10, 5.5), (20, 5.0), (30, 4.8)]}, width=320, height=200)
    image = _png(png)
    assert image.size == (320, 200)
    colors = {c for _, c in image.getcolors(maxcolors=1 << 16)}
    assert set(PALETTE[:2]) <= colors  # both series were drawn
    train = _mean_row(image, PALETTE[0])
    assert train["left"] < train["right"]  # a falling loss is drawn falling (image rows grow downwards)
    with pytest.raises(ValueError):
        line_chart_png({"train loss": [(1, float("nan"))]})


# ------------------------------------------------------------------------------------------------- card
def test_card_metadata_and_sections(hub_run):
    from studio.hub import render_card

    card = render_card(hub_run, repo_id="tester/demo-adapter")
    meta = _meta(card)
    assert meta["library_name"] == "peft"
    assert meta["pipeline_tag"] == "text-generation"
    assert {"lora", "trl", "sft"} <= set(meta["tags"])
    assert meta["datasets"] == ["openai/gsm8k"]  # the local jsonl is described in the body, not listed
    assert "base_model" not in meta  # the demo model is not on the Hub
    results = meta["model-index"][0]["results"]
    metrics = {m["type"]: m["value"] for r in results for m in r["metrics"]}
    assert metrics == {"accuracy": 0.5, "loss": 5.25, "perplexity": 190.6}
    assert meta["model-index"][0]["name"] == "demo-adapter"
    body = card.split("\n---\n", 1)[1]
    assert "| LoRA rank r | 4 |" in body and "| Learning rate | 0.003 |" in body
    assert "![Training loss](loss_curve.png)" in body
    assert "| accuracy (exact match) | 0 | 0.5 |" in body and "| perplexity | 445.9 | 190.6 |" in body
    assert "/somewhere" not in body
    assert "He has 5 apples" in body and "apples apples" in body  # sample answers, base and tuned
    assert 'AutoPeftModelForCausalLM.from_pretrained("tester/demo-adapter"' in body
    assert "NVIDIA H100 80GB HBM3" in body and "peft 0.21.2" in body
    assert "word_problems.jsonl" in body and str(hub_run) not in body  # no local absolute paths


def test_card_takes_an_eval_report_object(hub_run):
    from studio.evaluate import EvalReport, ModelScores
    from studio.hub import render_card

    report = EvalReport(run_dir=str(hub_run), base=ModelScores(loss=3.0, accuracy=0.25),
                        tuned=ModelScores(loss=2.0, accuracy=0.75), rows=8)
    card = render_card(hub_run, eval_results=report)
    assert "| accuracy (exact match) | 0.25 | 0.75 |" in card and "(8 rows)" in card


def test_card_falls_back_to_events_and_probes(hub_run):
    from studio.hub import render_card

    (hub_run / "eval_results.json").unlink()
    card = render_card(hub_run)
    results = _meta(card)["model-index"][0]["results"]
    assert [m["type"] for r in results for m in r["metrics"]] == ["loss"]  # from the last eval event
    assert PROBE in card and "five, probably" in card  # the step-0 probe is the base answer


def test_card_for_a_hub_base_in_4bit_merged(hub_run, tmp_path):
    from studio.hub import render_card

    set_config(hub_run, name_or_path="tiiuae/falcon-7b", quantization="4bit")
    meta = _meta(card := render_card(hub_run, repo_id="me/falcon-merged", merged=True, license="apache-2.0"))
    assert meta["base_model"] == "tiiuae/falcon-7b"
    assert meta["library_name"] == "transformers"
    assert "qlora" in meta["tags"] and meta["license"] == "apache-2.0"
    assert "reloaded the base in 16-bit" in card
    assert 'AutoModelForCausalLM.from_pretrained("me/falcon-merged"' in card


def test_card_reads_the_license_of_a_local_base(hub_run, tmp_path):
    from studio.hub import render_card

    base = tmp_path / "my-base"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: mit\n---\n# base\n", encoding="utf-8")
    set_config(hub_run, name_or_path=str(base))
    meta = _meta(render_card(hub_run))
    assert meta["license"] == "mit" and "base_model" not in meta


def test_not_a_run_dir(tmp_path):
    from studio.hub import export, render_card

    with pytest.raises(HubError, match="not a run directory"):
        render_card(tmp_path)
    with pytest.raises(HubError, match="not a run directory"):
        export(tmp_path, tmp_path / "out")


# ------------------------------------------------------------------------------------------------- export
def test_export_adapter(hub_run, tmp_path):
    from studio.hub import export

    out = tmp_path / "export"
    result = export(hub_run, out, repo_id="tester/demo")
    names = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "README.md", "loss_curve.png"} <= names
    assert set(result.files) <= names
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "studio/demo-tiny"  # not the local cache folder
    assert (out / "chat_template.jinja").read_text() == (hub_run / "adapter" / "chat_template.jinja").read_text()
    assert (out / "adapter_model.safetensors").read_bytes() == (hub_run / "adapter" / "adapter_model.safetensors").read_bytes()
    assert _png((out / "loss_curve.png").read_bytes()).width > 0
    edited = "---\nlicense: mit\n---\n# my words\n"
    export(hub_run, out, card=edited)  # a previous export is replaced
    assert (out / "README.md").read_text() == edited


def test_export_refuses_foreign_folder_and_missing_adapter(hub_run, tmp_path):
    from studio.hub import export

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(HubError, match="not empty"):
        export(hub_run, mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    shutil.rmtree(hub_run / "adapter")
    with pytest.raises(HubError, match="no saved adapter.*train the run"):
        export(hub_run, tmp_path / "out")


def test_export_merged_matches_the_adapter_model(hub_run, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from studio.demo import ensure_demo_model
    from studio.hub import export

    set_config(hub_run, quantization="4bit")  # trained as QLoRA: the merge must not happen in 4-bit
    steps = []
    result = export(hub_run, tmp_path / "merged", merged=True, max_shard_size="300KB",
                    progress=lambda f, m: steps.append((f, m)))
    out = result.path
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 1 and (out / "model.safetensors.index.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    assert result.probe is not None and result.probe.same and result.probe.prompt == PROBE  # fp32 base: exact
    assert any("4bit base" in n and "unquantized" in n for n in result.notes)
    assert any("unquantized" in m for _, m in steps) and steps[-1][0] == 1.0
    assert _meta((out / "README.md").read_text())["library_name"] == "transformers"

    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(ensure_demo_model())
    adapted = PeftModel.from_pretrained(base, hub_run / "adapter").eval()
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, atol=1e-4, rtol=1e-4)
        with adapted.disable_adapter():
            assert not torch.allclose(adapted(ids).logits, merged(ids).logits, atol=1e-4)  # the merge changed it


def test_merge_refuses_when_answers_differ(hub_run, tmp_path, monkeypatch):
    """A merge that changed the model (here peft's real merge, then the output layer negated: a broken merge) is
    caught by the real greedy answers of both models and refused before anything is saved."""
    import torch
    from peft.tuners.lora import LoraModel

    from studio.hub import export

    real_merge = LoraModel.merge_and_unload

    def broken_merge(self, *args, **kwargs):
        merged = real_merge(self, *args, **kwargs)
        with torch.no_grad():
            merged.get_output_embeddings().weight.neg_()
        return merged

    monkeypatch.setattr(LoraModel, "merge_and_unload", broken_merge)
    with pytest.raises(HubError, match="differently from the adapter model after 0 tokens.*not saved.*fp32"):
        export(hub_run, tmp_path / "merged", merged=True)
    assert not list((tmp_path / "merged").glob("*.safetensors"))


def test_compare_answers_accepts_only_near_ties():
    import torch

    from studio.hub.merge import ProbeCheck, compare_answers

    row = torch.tensor([0.0, 1.0, 0.998, -3.0])
    assert compare_answers([1, 1], [row, row], [1, 1]) == (2, None)
    agreed, gap = compare_answers([1, 1], [row, row], [1, 2])
    assert agreed == 1 and gap == pytest.approx(0.002, abs=1e-6)
    assert ProbeCheck("p", "a", "b", same=False, agreed_tokens=1, gap=gap, tolerance=0.1).passed
    agreed, gap = compare_answers([1, 1], [row, row], [3, 1])
    assert agreed == 0 and not ProbeCheck("p", "a", "b", False, agreed, gap, tolerance=0.1).passed
    assert compare_answers([1, 1], [row, row], [1]) == (1, float("inf"))  # stopped early


def test_merge_in_bf16(hub_run, tmp_path):
    from studio.hub import export

    result = export(hub_run, tmp_path / "bf16", merged=True, dtype="bf16")
    assert result.probe.passed
    config = json.loads((result.path / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"


def test_added_tokens_travel_with_the_adapter_and_the_merge(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.hub import export

    run = make_run_dir(tmp_path / "chatml-run", add_token="<|tool|>", eval_results=False)
    adapter = export(run, tmp_path / "adapter")
    assert any("added tokens" in n for n in adapter.notes)
    tok = AutoTokenizer.from_pretrained(adapter.path)
    assert "<|tool|>" in tok.get_vocab()
    merged = export(run, tmp_path / "merged", merged=True)
    assert merged.probe.same
    model = AutoModelForCausalLM.from_pretrained(merged.path)
    assert model.get_input_embeddings().num_embeddings == len(tok)


# ------------------------------------------------------------------------------------------------- token
def test_resolve_token_order(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    from studio.hub import Token, resolve_token

    stored = tmp_path / "token"
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(stored))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    assert resolve_token() is None
    stored.write_text("hf_stored")
    assert resolve_token().value == "hf_stored" and "stored" in resolve_token().source
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert resolve_token().value == "hf_env" and "HF_TOKEN" in resolve_token().source
    typed = resolve_token("  hf_typed ")
    assert typed.value == "hf_typed" and "memory" in typed.source
    assert "hf_typed" not in repr(typed) and "hf_typed" not in str(typed)
    assert resolve_token(Token("x", "y")) == Token("x", "y")


def test_whoami(hub):
    from studio.hub import whoami

    account = whoami(TOKEN)
    assert (account.name, account.orgs, account.role) == ("tester", ["studio-org"], "write")
    assert account.endpoint == hub.url  # HF_ENDPOINT read at call time
    assert "tester" in account.describe()


# ------------------------------------------------------------------------------------------------- push
def test_push_adapter(hub, hub_run):
    from studio.hub import push

    steps = []
    url = push(hub_run, "demo-adapter", TOKEN, private=True, progress=lambda f, m: steps.append((f, m)))
    assert url == f"{hub.url}/tester/demo-adapter"
    repo = hub.repo("tester/demo-adapter")
    assert repo.private is True
    assert set(repo.files) == {"README.md", "adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
                               "tokenizer_config.json", "chat_template.jinja", "loss_curve.png"}
    assert repo.files["adapter_model.safetensors"] == (hub_run / "adapter" / "adapter_model.safetensors").read_bytes()
    meta = _meta(repo.files["README.md"].decode())
    assert meta["library_name"] == "peft" and "sft" in meta["tags"]
    assert 'from_pretrained("tester/demo-adapter"' in repo.files["README.md"].decode()
    assert repo.files["loss_curve.png"].startswith(b"\x89PNG")
    assert "LoRA adapter" in repo.commits[-1]["summary"]
    assert hub.yaml_checked and hub.yaml_checked[-1] == repo.files["README.md"].decode()
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert hub.routes_called()[:2] == ["whoami", "create"]
    assert all(r.authorised for r in hub.requests if r.route != "validate_yaml")
    assert (hub_run / "export" / "adapter" / "README.md").is_file()  # the export stays beside the run


def test_push_public_into_an_org_with_an_edited_card(hub, hub_run):
    from studio.hub import push, render_card

    card = render_card(hub_run, repo_id="studio-org/shared").replace("# shared", "# Shared, edited by hand")
    push(hub_run, "studio-org/shared", TOKEN, private=False, card=card)
    repo = hub.repo("studio-org/shared")
    assert repo.private is False
    assert repo.files["README.md"].decode() == card


def test_push_merged_and_retry_reuses_the_merge(hub, hub_run):
    from studio.hub import push

    hub.fail = {"commit": 500}
    with pytest.raises(HubError) as err:
        push(hub_run, "demo-merged", TOKEN, merged=True, max_shard_size="300KB")
    message = str(err.value)
    assert "server error (500)" in message and "push again" in message and "export is kept" in message
    kept = hub_run / "export" / "merged"
    assert (kept / "model.safetensors.index.json").is_file()
    hub.fail = {}
    steps = []
    push(hub_run, "demo-merged", TOKEN, merged=True, max_shard_size="300KB", progress=lambda f, m: steps.append(m))
    assert any("reused the merged weights" in m for m in steps)
    assert not any("loading the base" in m for m in steps)
    files = hub.repo("tester/demo-merged").files
    assert "model.safetensors.index.json" in files and "config.json" in files and "tokenizer.json" in files
    assert ".studio-export.json" not in files
    assert _meta(files["README.md"].decode())["library_name"] == "transformers"


@pytest.mark.parametrize("fail, token, match", [
    ({}, "hf_wrong", "rejected the token \\(401 Unauthorized\\).*settings/tokens"),
    ({"create": 401}, TOKEN, "rejected the token \\(401"),
    ({"create": 403}, TOKEN, "may not write to tester/new-repo \\(403 Forbidden\\).*write access"),
    ({"commit": 404}, TOKEN, "tester/new-repo was not found \\(404\\)"),
    ({"create": 500}, TOKEN, "server error \\(500\\).*push again"),
    ({"whoami": 503}, TOKEN, "server error \\(503\\)"),
])
def test_push_failures_are_one_clear_sentence(hub, hub_run, fail, token, match):
    from studio.hub import push

    hub.fail = fail
    with pytest.raises(HubError, match=match) as err:
        push(hub_run, "new-repo", token)
    assert "\n" not in str(err.value) and TOKEN not in str(err.value)
    if "whoami" not in fail and token == TOKEN:
        assert "export is kept" in str(err.value)
        assert (hub_run / "export" / "adapter" / "adapter_model.safetensors").is_file()


def test_timeout_no_network_offline_and_no_token(hub, monkeypatch):
    import huggingface_hub.constants as constants

    from studio.hub import push, whoami

    hub.delay = {"whoami": 1.5}
    monkeypatch.setenv("STUDIO_HUB_TIMEOUT", "0.3")
    with pytest.raises(HubError, match="did not answer within 0.3 s"):
        whoami(TOKEN)
    monkeypatch.delenv("STUDIO_HUB_TIMEOUT")
    hub.delay = {}
    with pytest.raises(HubError, match="Cannot reach the Hub at http://127.0.0.1:9.*export-only"):
        whoami(TOKEN, endpoint="http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE .*unset it"):
        whoami(TOKEN)
    with pytest.raises(HubError, match="No Hugging Face token found: set HF_TOKEN"):
        push("unused", "x", None)


def test_the_token_is_never_written(hub, hub_run, tmp_path, caplog, capfd):
    import logging

    from studio.cli import main
    from studio.hub import export, push, whoami

    caplog.set_level(logging.DEBUG)
    whoami(TOKEN)
    push(hub_run, "secret-check", TOKEN)
    export(hub_run, tmp_path / "offline")
    hub.fail = {"commit": 500}
    with pytest.raises(HubError):
        push(hub_run, "secret-check", TOKEN)
    hub.fail = {}
    hub_token_env = pytest.MonkeyPatch()
    try:
        hub_token_env.setenv("HF_TOKEN", TOKEN)
        assert main(["push", "--run", str(hub_run), "--repo", "secret-cli"]) == 0
    finally:
        hub_token_env.undo()
    from studio.paths import cache_root

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    written += [p for p in [cache_root() / "cli-errors.log"] if p.is_file()]
    assert len(written) > 20
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), f"token found in {path}"
    out, err = capfd.readouterr()
    assert TOKEN not in out + err and TOKEN not in caplog.text


# ------------------------------------------------------------------------------------------------- Studio
def test_studio_publish_exports_pushes_and_is_one_at_a_time(hub, hub_run, tmp_path):
    from studio.errors import BusyError
    from studio.session import Studio

    studio = Studio(runs_dir=hub_run.parent)
    folder = studio.publish(hub_run, export_dir=tmp_path / "only-export")
    assert (Path(folder) / "adapter_model.safetensors").is_file()
    url = studio.publish(hub_run, "from-studio", TOKEN, private=False)
    assert url.endswith("/tester/from-studio") and hub.repo("tester/from-studio").private is False
    assert not any(TOKEN in repr(v) for v in vars(studio).values())
    with studio.publishing:
        with pytest.raises(BusyError, match="already running"):
            studio.publish(hub_run, export_dir=tmp_path / "second")
    with pytest.raises(HubError, match="repo id to push to, or a folder"):
        studio.publish(hub_run)
