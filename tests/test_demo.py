"""The offline demo model: paths, build, reuse, determinism, tokenizer contract, and that it runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio import demo
from studio.config import DEMO_MODEL
from studio.errors import ModelError

REPO = Path(__file__).resolve().parent.parent
MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "Thanks"},
    {"role": "assistant", "content": "You're welcome!"},
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_CACHE_DIR", str(root))
        demo.ensure_demo_model()
    return root


@pytest.fixture
def folder(cache, monkeypatch) -> Path:
    monkeypatch.setenv("STUDIO_CACHE_DIR", str(cache))
    return demo.demo_model_dir()


@pytest.fixture(scope="module")
def tokenizer(cache):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(cache / demo.BUILD_NAME)


@pytest.fixture(scope="module")
def model(cache):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(cache / demo.BUILD_NAME)


def test_paths_follow_env_or_home(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CACHE_DIR", str(tmp_path / "c"))
    assert demo.cache_root() == tmp_path / "c"
    assert demo.demo_model_dir() == tmp_path / "c" / demo.BUILD_NAME
    monkeypatch.delenv("STUDIO_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert demo.cache_root() == tmp_path / "home" / ".cache" / "fine-tune-studio"


def test_resolve_model_path(folder):
    from studio.modeling.sources import resolve_model_path

    assert resolve_model_path(DEMO_MODEL) == str(folder)
    assert resolve_model_path("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert resolve_model_path("/models/local") == "/models/local"


def test_loads_with_auto_classes(folder, tokenizer, model):
    assert (folder / demo.MARKER).is_file()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000
    from studio.modeling.kbit_cpu import unpackable_layers

    assert unpackable_layers(model) == []  # every Linear packs for bitsandbytes' AVX512-BF16 4-bit kernel
    assert model.config.vocab_size == len(tokenizer) == 2048
    assert not model.config.tie_word_embeddings
    for cfg in (model.config, model.generation_config):
        assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (0, 1, 2)


def test_special_tokens(tokenizer):
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<|endoftext|>", "<|im_end|>", "<pad>")
    assert tokenizer.convert_tokens_to_ids(list(demo.SPECIAL_TOKENS)) == [0, 1, 2, 3]
    assert "<|im_start|>" in tokenizer.all_special_tokens
    assert tokenizer.model_max_length == 2048
    assert tokenizer("<|im_start|>user").input_ids[0] == 3  # special tokens are never split


def test_encode_adds_no_bos_or_eos(tokenizer):
    text = "Solve for x: 3x + 7 = 22"
    ids = tokenizer(text).input_ids
    assert ids[0] not in (0, 1) and ids[-1] not in (0, 1)
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(tokenizer("  def f(x):\n\treturn x * 2  # ok\n").input_ids) == "  def f(x):\n\treturn x * 2  # ok\n"


def test_chat_template_renders_chatml(tokenizer):
    assert tokenizer.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert tokenizer.apply_chat_template(MESSAGES[:3], tokenize=False).endswith(
        "<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n")


def test_assistant_mask_covers_answers_and_im_end(tokenizer):
    out = tokenizer.apply_chat_template(MESSAGES, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask)
    masked = [i for i, m in zip(ids, mask) if m]
    assert tokenizer.decode(masked) == "2 + 2 = 4.<|im_end|>You're welcome!<|im_end|>"
    assert masked.count(tokenizer.eos_token_id) == 2
    assert 3 not in masked  # no <|im_start|> trained


def test_build_is_deterministic(cache, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    monkeypatch.setenv("STUDIO_CACHE_DIR", str(tmp_path))
    other = demo.ensure_demo_model()
    first = cache / demo.BUILD_NAME
    a, b = load_file(first / "model.safetensors"), load_file(other / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(a[k].equal(b[k]) for k in a)
    assert (first / "tokenizer.json").read_bytes() == (other / "tokenizer.json").read_bytes()


def test_second_call_reuses_the_folder(folder, monkeypatch):
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    def fail(_out):
        raise AssertionError("rebuilt an existing demo model")

    monkeypatch.setattr(demo, "_build", fail)
    assert demo.ensure_demo_model() == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


def test_half_built_folder_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CACHE_DIR", str(tmp_path))
    stale = demo.demo_model_dir()
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{", encoding="utf-8")  # a crash before the marker was written
    assert demo.ensure_demo_model() == stale
    assert (stale / demo.MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{demo.BUILD_NAME}.lock", demo.BUILD_NAME]


def test_unwritable_cache_is_a_model_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("STUDIO_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(ModelError, match="STUDIO_CACHE_DIR"):
        demo.ensure_demo_model()


BUILD_STUB = """
import sys, time
from pathlib import Path
from studio import demo

def stub(out):  # stands in for the real build: slow enough to overlap, and counted
    with open(sys.argv[1], "a") as log:
        log.write("build\\n")
    time.sleep(1.0)
    (out / "config.json").write_text("{}")
    return {}

demo._build = stub
print(demo.ensure_demo_model())
"""


def test_concurrent_processes_build_once(tmp_path):
    cache, log = tmp_path / "cache", tmp_path / "builds.log"
    env = {**os.environ, "STUDIO_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_STUB, str(log)], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outs == [str(cache / demo.BUILD_NAME)] * 3
    assert log.read_text().splitlines() == ["build"]
    assert sorted(p.name for p in cache.iterdir()) == [f".{demo.BUILD_NAME}.lock", demo.BUILD_NAME]
    assert sorted(p.name for p in (cache / demo.BUILD_NAME).iterdir()) == ["config.json", demo.MARKER]


def test_forward_and_generate(tokenizer, model):
    import torch

    batch = tokenizer(["Solve for x: 2x = 8", "Hi"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**batch, labels=batch["input_ids"])
    assert out.logits.shape == (*batch["input_ids"].shape, len(tokenizer))
    assert torch.isfinite(out.loss)
    prompt = tokenizer.apply_chat_template(MESSAGES[:2], add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    gen = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert gen.shape[0] == 1 and prompt["input_ids"].shape[1] < gen.shape[1] <= prompt["input_ids"].shape[1] + 4
    assert isinstance(tokenizer.decode(gen[0]), str)


def test_demo_model_never_generates_broken_bytes():
    """A random model would sample stray bytes of multi-byte characters; the demo suppresses those tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.demo import ensure_demo_model

    path = ensure_demo_model()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    suppressed = model.generation_config.suppress_tokens
    assert suppressed and all("\ufffd" in tok.decode([i]) for i in suppressed)
    ids = tok("Solve for x:", return_tensors="pt")["input_ids"]
    torch.manual_seed(0)
    out = model.generate(ids, max_new_tokens=40, do_sample=True, top_k=0)
    assert not set(out[0, ids.shape[1]:].tolist()) & set(suppressed)
