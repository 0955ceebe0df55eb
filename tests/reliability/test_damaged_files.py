"""Damaged or cut files Studio reads: one line naming the file and what to do, never a raw library error; a damaged
checkpoint is skipped by a resume (said), a damaged cache Studio built is built again."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from checks import one_clear_line, resume_continues
from conftest import tiny_config_dict

from studio import runs
from studio.cli import main
from studio.config import RunConfig


def _cut(path: Path, keep: int = 200) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    from hub_fixtures import make_run_dir

    return make_run_dir(tmp_path_factory.mktemp("damaged") / "run")


@pytest.fixture
def run_copy(base_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(base_run, dst)
    return dst


def _argv(command: str, run_dir: Path, tmp: Path) -> list[str]:
    return {"chat": ["chat", "--run", str(run_dir), "--prompt", "hi", "--max-new-tokens", "2", "--device", "cpu"],
            "eval": ["eval", "--run", str(run_dir), "--rows", "1", "--device", "cpu"],
            "push": ["push", "--run", str(run_dir), "--export-only", str(tmp / "out")]}[command]


@pytest.mark.slow
@pytest.mark.parametrize("name, command", [("adapter_model.safetensors", "chat"), ("adapter_config.json", "eval"),
                                           ("adapter_model.safetensors", "push")])
def test_a_damaged_adapter_is_named(name, command, run_copy, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _cut(run_copy / runs.ADAPTER / name, 100)
    assert main(_argv(command, run_copy, tmp_path)) == 2
    one_clear_line(capsys.readouterr().err,
                   rf"^error: {run_copy / runs.ADAPTER / name} is damaged or cut short.*; train .* again")


@pytest.mark.slow
def test_a_damaged_heldout_file_is_named(run_copy, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (run_copy / runs.HELDOUT).write_text('{"Problem": "2x=4", "Solution": "x=2"}\n{"Problem": "3x', encoding="utf-8")
    assert main(_argv("eval", run_copy, tmp_path)) == 2
    one_clear_line(capsys.readouterr().err, r"heldout\.jsonl is damaged or cut short.*delete it and Studio splits")


@pytest.mark.slow
def test_a_damaged_model_folder_is_named(tmp_path, capsys, monkeypatch):
    from studio.demo import ensure_demo_model

    folder = tmp_path / "my-model"
    shutil.copytree(ensure_demo_model(), folder)
    weights = next(folder.glob("*.safetensors"))
    _cut(weights, 5000)
    raw = tiny_config_dict(tmp_path / "runs", max_steps=1)
    raw["model"]["name_or_path"] = str(folder)
    RunConfig.from_dict(raw).save(tmp_path / "run.yaml")
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--quiet"]) == 2
    one_clear_line(capsys.readouterr().err, rf"{weights} is damaged or cut short.*copy or download .* again")


@pytest.mark.slow
def test_a_resume_skips_a_damaged_checkpoint_and_says_so(tmp_path, capsys):
    from studio.events import EventLog, Note

    RunConfig.from_dict(tiny_config_dict(tmp_path / "runs", max_steps=4, save_steps=2)).save(tmp_path / "run.yaml")
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--quiet"]) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    capsys.readouterr()
    _cut(run_dir / runs.CHECKPOINTS / "checkpoint-4" / "optimizer.pt", 300)
    assert runs.last_checkpoint(run_dir).name == "checkpoint-2"
    resume_continues(run_dir, capsys, 5)
    notes = [e.message for e in EventLog.read(run_dir / runs.EVENTS).all() if isinstance(e, Note)]
    assert any("checkpoint-4 is damaged or incomplete; resuming from checkpoint-2" in n for n in notes), notes


def test_a_damaged_gguf_cache_is_built_again(smollm2_gguf, tmp_path, monkeypatch):
    """The folder Studio dequantized earlier, cut short, is dequantized again instead of being read forever."""
    import torch
    from safetensors.torch import save_file

    from studio.damage import first_damaged
    from studio.modeling import gguf

    monkeypatch.setenv("STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    builds = []

    def dequantize(src, out, header, report):  # a small stand-in; the real one is tested in tests/test_gguf.py
        builds.append(src)
        (out / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
        save_file({"w": torch.zeros(64, 64)}, str(out / "model.safetensors"))
        return {"source": str(src)}

    monkeypatch.setattr(gguf, "_dequantize", dequantize)
    folder = gguf.ensure_gguf_folder(smollm2_gguf)
    assert gguf.ensure_gguf_folder(smollm2_gguf) == folder and len(builds) == 1  # a whole folder is reused
    _cut(folder / "model.safetensors", 1000)
    said = []
    assert gguf.ensure_gguf_folder(smollm2_gguf, lambda f, m: said.append(m)) == folder
    assert len(builds) == 2 and any("is damaged; dequantizing again" in m for m in said), said
    assert first_damaged(folder, crc=False) is None
