"""The training engine end to end on the demo model (CPU): events, adapter, QLoRA, packing, stop/resume, failures."""
from __future__ import annotations

import json
import threading

import pytest

from studio import runs
from studio.config import RunConfig, load_config
from studio.errors import BusyError
from studio.events import Checkpoint, EventLog, Failed, Finished, Log, Note, Started, Stopped
from studio.training import TrainingJob, explain_failure, is_oom


def _callback(fn):
    from transformers import TrainerCallback

    class At(TrainerCallback):
        def __init__(self, job):
            self.job = job

        def on_step_end(self, args, state, control, **kwargs):
            fn(self.job, state)

    return At


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from conftest import tiny_config_dict

    cfg = RunConfig.from_dict(tiny_config_dict(tmp_path_factory.mktemp("runs"), max_steps=8, save_steps=4))
    job = TrainingJob(cfg)
    result = job.run()
    return cfg, job, result


def test_run_finishes_loss_goes_down_and_events_are_written(finished):
    cfg, job, result = finished
    assert isinstance(result, Finished), result
    assert result.step == 8 and job.status().state == "finished"
    events = EventLog.read(job.run_dir / runs.EVENTS).all()
    assert events == job.events.all()
    phases = [e.data["phase"] for e in events[:2] if isinstance(e, Note)]
    assert phases == ["preparing", "loading"]  # named before the first step (issue 23.1)
    events = events[2:]
    assert isinstance(events[0], Started) and events[0].total_steps == 8 and events[0].start_step == 0
    logs = [e for e in events if isinstance(e, Log)]
    assert [e.step for e in logs] == list(range(1, 9))
    assert logs[-1].loss < logs[0].loss
    assert all(e.tokens_per_s and e.tokens_per_s > 0 and e.learning_rate == pytest.approx(3e-3) for e in logs[1:])
    assert all(e.memory_bytes and e.grad_norm is not None for e in logs)
    # live speed: real tokens/s, padding share and MFU (CPU peak estimate) on every log step
    assert all(e.padding_share is not None and 0 <= e.padding_share < 1 and e.mfu and 0 < e.mfu < 1 for e in logs)
    # the speed plan is recorded: what is on and why; the checkpointing choice with the measured peak
    assert [line.split(":")[0] for line in events[0].speed] == [
        "attention", "packing", "booster", "gradient checkpointing", "k-bit preparation", "micro-batch", "precision",
        "CPU threads", "evaluation"]
    assert events[0].gradient_checkpointing is False and "gradient checkpointing: off" in events[0].speed[3]
    note = next(e for e in events if isinstance(e, Note) and e.message.startswith("memory: estimated"))
    assert note.data["gradient_checkpointing"] is False and note.data["peak_bytes"] > 0
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [4, 8]
    assert any(isinstance(e, Note) and e.message.startswith("memory: estimated") for e in events)
    lines = (job.run_dir / runs.EVENTS).read_text().splitlines()
    first_log = next(json.loads(x) for x in lines if json.loads(x)["type"] == "log")
    assert {"step", "loss", "learning_rate", "grad_norm", "tokens_per_s", "epoch"} <= set(first_log)


def test_run_directory_layout_and_environment(finished):
    cfg, job, _ = finished
    d = job.run_dir
    for name in (runs.CONFIG, runs.EVENTS, runs.ENVIRONMENT, runs.TRAIN_LOG):
        assert (d / name).is_file(), name
    assert (d / "adapter" / "adapter_config.json").exists()
    assert (d / "adapter" / "chat_template.jinja").exists() or "chat_template" in \
        (d / "adapter" / "tokenizer_config.json").read_text()
    assert runs.last_checkpoint(d).name == "checkpoint-8"
    env = json.loads((d / runs.ENVIRONMENT).read_text())
    assert env["loaded"]["quantization"] == "none" and env["loaded"]["attn_implementation"] == "sdpa"
    # the frozen base as the plan's precision says (bf16 on CPUs with AVX512-BF16/AMX, else fp32)
    assert env["loaded"]["dtype"] == {"bf16": "bfloat16", "fp32": "float32"}[env["speed"]["precision"]]
    assert 0 < env["loaded"]["trainable_params"] < env["loaded"]["total_params"]
    assert env["data_fingerprint"] and env["packages"]["trl"] and env["device"] == "cpu"
    speed = env["speed"]
    assert (speed["attn_impl"], speed["packing"], speed["booster"], speed["gradient_checkpointing"],
            speed["per_device_batch"]) == ("sdpa", False, "none", False, 2)
    assert env["speed_lines"] and env["attention_reason"] == speed["attn_reason"]
    info = runs.load_run(d)
    assert info.status == "finished" and info.adapter_path is not None and info.final_loss is not None
    assert runs.list_runs(d.parent)[0].path == d


def test_adapter_reloads_and_changes_outputs(finished):
    import torch
    from peft import PeftModel

    from studio.modeling import load_base

    cfg, job, _ = finished
    base, tok = load_base(cfg.model)
    model = PeftModel.from_pretrained(base, str(job.run_dir / "adapter"))
    ids = tok("Solve for x: 2x + 3 = 11\n ### Solution:", return_tensors="pt")
    with torch.no_grad():
        tuned = model(**ids).logits
        with model.disable_adapter():
            plain = model(**ids).logits
    assert not torch.allclose(tuned, plain, atol=1e-4)


def test_config_yaml_reproduces_the_run(finished, tmp_path):
    cfg, job, _ = finished
    again = load_config(job.run_dir / runs.CONFIG)
    assert again.to_dict() == cfg.to_dict()
    rerun = TrainingJob(again.with_overrides(["train.max_steps=2"]), tmp_path)
    assert isinstance(rerun.run(), Finished)
    first = [e.loss for e in job.events.all() if isinstance(e, Log)][:2]
    second = [e.loss for e in rerun.events.all() if isinstance(e, Log)][:2]
    assert second == pytest.approx(first, rel=1e-4)


def test_qlora_4bit_nf4_trains_on_cpu(tiny_cfg):
    cfg = tiny_cfg(max_steps=3).with_overrides(["model.quantization=4bit", "model.bnb_4bit_quant_type=nf4"])
    job = TrainingJob(cfg)
    result = job.run()
    assert isinstance(result, Finished), result
    started = _started(job)
    assert started.loaded["quantization"] == "4bit"
    assert job.plan.kbit == "studio" and "no fp32 upcast" in started.speed[4]  # not peft's blanket upcast
    assert [e.step for e in job.events.all() if isinstance(e, Log)] == [1, 2, 3]
    assert (job.run_dir / "adapter" / "adapter_model.safetensors").exists()


def test_packing_trains_and_a_missing_booster_is_a_reason(tiny_cfg):
    import importlib.util

    job = TrainingJob(tiny_cfg(max_steps=3, packing=True, max_length=96, booster="liger"))
    result = job.run()
    assert isinstance(result, Finished), result
    logs = [e for e in job.events.all() if isinstance(e, Log)]
    assert len(logs) == 3 and all(e.loss is not None for e in logs)
    # padding-free packing; on CPU each bin may be its own row (studio.speed.packrows): only a short pad tail
    assert all(e.padding_share is not None and e.padding_share < 0.2 for e in logs), [e.padding_share for e in logs]
    speed = _started(job).speed
    assert speed[1].startswith("packing: bfd") and "micro-batch" in speed[5] and "rows" in speed[5]
    if importlib.util.find_spec("liger_kernel") is None:
        assert speed[2].startswith("booster: none") and "not installed" in speed[2]


def test_sft_args_never_fail_for_a_missing_booster(tiny_cfg, tmp_path):
    from studio.training import sft_args

    args = sft_args(tiny_cfg(booster="liger"), tmp_path, device="cpu", gradient_checkpointing=False,
                    has_eval=False)
    assert args["use_liger_kernel"] is False


def test_stop_mid_run_saves_adapter_then_resume_continues_from_its_step(tiny_cfg):
    cfg = tiny_cfg(max_steps=6)
    stop_at_2 = _callback(lambda job, state: job.stop() if state.global_step == 2 else None)
    job = TrainingJob(cfg, extra_callbacks=[stop_at_2]).start()
    assert job.wait(120)
    stopped = job.result
    assert isinstance(stopped, Stopped), stopped
    assert 2 <= stopped.step < 6 and job.status().state == "stopped"
    assert (job.run_dir / "adapter" / "adapter_config.json").exists()
    assert stopped.checkpoint_path.endswith(f"checkpoint-{stopped.step}")
    assert runs.load_run(job.run_dir).status == "stopped"

    resumed = TrainingJob(load_config(job.run_dir / runs.CONFIG), resume=job.run_dir)
    result = resumed.run()
    assert isinstance(result, Finished) and result.step == 6
    new_events = resumed.events.all()[len(job.events.all()):]
    started = next(e for e in new_events if isinstance(e, Started))
    assert started.start_step == stopped.step
    assert [e.step for e in new_events if isinstance(e, Log)] == list(range(stopped.step + 1, 7))
    assert runs.load_run(job.run_dir).status == "finished"


def test_injected_oom_becomes_failed_with_run_kept_and_studio_stays_usable(tiny_cfg, tmp_path):
    import torch

    from studio.session import Studio

    release = threading.Event()

    def boom(job, state):
        if state.global_step == 1:
            release.wait(60)
        if state.global_step == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    studio = Studio(runs_dir=tmp_path / "studio-runs")
    job = studio.start_training(tiny_cfg(max_steps=5, save_steps=1), extra_callbacks=[_callback(boom)])
    with pytest.raises(BusyError, match="a run is in progress: .*" + job.run_dir.name):
        studio.start_training(tiny_cfg())
    assert studio.current_job is job
    release.set()
    assert job.wait(120)
    failed = job.result
    assert isinstance(failed, Failed), failed
    assert failed.message == "out of memory while training"
    assert "batch_size" in failed.suggestion and "gradient_checkpointing" in failed.suggestion
    assert failed.checkpoint_path and failed.checkpoint_path.endswith("checkpoint-1")
    assert failed.released_bytes is not None
    assert "OutOfMemoryError" in (job.run_dir / runs.TRAIN_LOG).read_text()
    assert runs.load_run(job.run_dir).status == "failed"
    assert studio.current_job is None and job.trainer is None and job.model is None
    # the app is still usable: a new job starts (and stops before training)
    # a playground model held on the GPU is unloaded before a GPU run starts (a CPU one is kept)
    closed = []

    class FakeEngine:
        def __init__(self, device):
            self.device = device

        def close(self):
            closed.append(self.device)

    studio.chat = FakeEngine("cpu")
    second = studio.start_training(tiny_cfg())
    assert studio.chat is not None and closed == []
    assert studio.stop_training()
    assert second.wait(120) and isinstance(second.result, (Stopped, Finished))
    studio.chat = FakeEngine("cuda:0")
    third = studio.start_training(tiny_cfg())
    assert studio.chat is None and closed == ["cuda:0"]
    assert studio.stop_training()
    assert third.wait(120) and isinstance(third.result, (Stopped, Finished))


def test_explain_failure():
    cfg = RunConfig.from_dict({"train": {"batch_size": 8, "max_length": 2048}})
    msg, tip = explain_failure(RuntimeError("CUDA out of memory. Tried to allocate"), cfg)
    assert msg == "out of memory while training"
    assert "train.batch_size to 4" in tip and "grad_accum to 2" in tip and "4-bit" in tip and "1024" in tip
    assert is_oom(MemoryError()) and not is_oom(ValueError("x"))
    msg, tip = explain_failure(ValueError("bad shape\nmore"), cfg)
    assert msg == "ValueError: bad shape" and "train.log" in tip


@pytest.mark.gpu
def test_bf16_lora_on_cuda(tiny_cfg):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    job = TrainingJob(tiny_cfg(max_steps=3, device="cuda").with_overrides(["model.compute_dtype=bf16"]))
    result = job.run()
    assert isinstance(result, Finished), result
    assert _started(job).loaded["dtype"] == "bfloat16"


@pytest.mark.gpu
def test_qlora_4bit_on_cuda(tiny_cfg):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cfg = tiny_cfg(max_steps=3, device="cuda").with_overrides(["model.quantization=4bit"])
    job = TrainingJob(cfg)
    assert isinstance(job.run(), Finished)
    assert _started(job).loaded["quantization"] == "4bit"


def test_the_callback_needs_only_the_run_state(tmp_path):
    """No job: the callback reports through a RunState and an emit function (Started, Log, progress, stop)."""
    from types import SimpleNamespace

    from studio.training.callbacks import callback_class
    from studio.training.state import RunState

    run = RunState(run_dir=tmp_path, model_name="m", main=False, train_rows=12)
    emitted: list = []
    cb = callback_class()(run, emitted.append)
    args = SimpleNamespace(world_size=1, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                           save_steps=0, save_strategy="no")
    state = SimpleNamespace(global_step=0, max_steps=4, epoch=0.0)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    cb.on_train_begin(args, state, control)
    state.global_step, state.epoch = 1, 0.25
    cb.on_log(args, state, control, logs={"loss": 2.5, "learning_rate": 1e-3, "num_tokens": 40})
    assert isinstance(emitted[0], Started) and emitted[0].train_rows == 12 and emitted[0].total_steps == 4
    log = emitted[1]
    assert isinstance(log, Log) and log.loss == 2.5 and log.num_tokens == 40 and log.tokens_per_s > 0
    status = run.status()
    assert (status.state, status.step, status.total_steps, status.loss) == ("running", 1, 4, 2.5)
    cb.on_log(args, state, control, logs={"train_runtime": 1.0, "train_loss": "2.25"})
    assert run.train_loss == 2.25
    run.request_stop()
    assert cb.on_step_end(args, state, control).should_training_stop and run.status().state == "stopping"


def test_a_stop_before_the_first_step_is_not_lost():
    """stop() between preparing and the first step: the phase read at the first step is "stopping"."""
    from pathlib import Path

    from studio.training.state import RunState

    run = RunState(run_dir=Path("r"), model_name="m")
    run.request_stop()
    run.begin(0, 10)
    assert run.status().state == "stopping"
    run.end("stopped")
    run.request_stop()  # a late stop leaves an ended run as it ended
    assert run.status().state == "stopped"


@pytest.mark.parametrize("phase", ["failed", "stopped", "finished"])
def test_elapsed_time_stops_when_the_run_ends(phase, monkeypatch):
    """A run that failed after 47 s still reads 47 s two minutes later (issue 23.4)."""
    from pathlib import Path

    from studio.training import state as state_mod
    from studio.training.state import RunState

    now = {"t": 1000.0}
    monkeypatch.setattr(state_mod.time, "time", lambda: now["t"])
    run = RunState(run_dir=Path("r"), model_name="m", started_at=now["t"])
    now["t"] += 47
    assert run.status().elapsed_s == 47
    run.end(phase)
    now["t"] += 120
    assert run.status().elapsed_s == 47


def test_the_tracker_choice_reaches_the_trainer_arguments(tiny_cfg, tmp_path, monkeypatch):
    """train.report_to picks transformers' own integration, logged beside the run (issue 23.12)."""
    from studio.training import trackers
    from studio.training.args import sft_args

    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    kw = dict(device="cpu", gradient_checkpointing=False, has_eval=False)
    assert sft_args(tiny_cfg(), tmp_path / "run", **kw)["report_to"] == "none"
    monkeypatch.setattr(trackers, "installed", lambda name: True)
    args = sft_args(tiny_cfg(report_to="wandb"), tmp_path / "run", **kw)
    assert args["report_to"] == "wandb" and args["project"] == "fine-tune-studio" and args["run_name"] == "run"
    import os

    assert os.environ["WANDB_DIR"] == str(tmp_path / "run") and os.environ["WANDB_MODE"] == "offline"


def _started(job):
    """The run's Started event (after the notes naming the phases before it)."""
    return next(e for e in job.events.all() if isinstance(e, Started))
