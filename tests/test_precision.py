"""``train.precision``: bf16 (bf16 base, fp32 LoRA and optimizer, autocast) on CPUs with native bf16, fp32
elsewhere; per method; said in the speed plan. Both CPU kinds are exercised by faking torch's detection."""
from __future__ import annotations

import pytest

from studio.config import RunConfig
from studio.speed import plan_speed, sft_speed_kwargs
from studio.speed import precision as prec
from studio.speed.plan import model_config_for_plan

NATIVE, EMULATED = (True, "AVX512-BF16"), (False, "no AVX512-BF16 or AMX")


def _cfg(**kw):
    train = {k: v for k, v in kw.items() if k in ("precision", "method")}
    model = {k: v for k, v in kw.items() if k in ("quantization", "compute_dtype")}
    return RunConfig.from_dict({"model": model, "train": train})


@pytest.fixture
def cpu_kind(monkeypatch):
    """``cpu_kind(avx512_bf16, amx)``: what torch reports about this CPU."""
    import torch

    def set_kind(avx512_bf16: bool, amx: bool = False) -> None:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)

    return set_kind


def test_detection_asks_torch_for_avx512_bf16_or_amx(cpu_kind):
    cpu_kind(False)
    assert prec.cpu_bf16_support() == EMULATED
    cpu_kind(True)
    assert prec.cpu_bf16_support() == (True, "AVX512-BF16")
    cpu_kind(False, amx=True)
    assert prec.cpu_bf16_support() == (True, "AMX")


@pytest.fixture
def sft_measured(monkeypatch):
    """As if bf16 had been measured at fp32's loss for SFT on this CPU kind (the policy once it is)."""
    monkeypatch.setattr(prec, "CPU_BF16_METHODS", {"sft": "measured for the test"})


def test_auto_is_bf16_for_sft_as_measured_and_fp32_for_a_method_not_measured():
    choice, why = prec.choose_precision(_cfg(), "cpu", support=NATIVE)
    assert choice == "bf16" and "losses 0.08 % apart" in why and "projections return fp32" in why
    cfg = _cfg()
    object.__setattr__(cfg.train, "method", "grpo")
    choice, why = prec.choose_precision(cfg, "cpu", support=NATIVE)
    assert choice == "fp32" and "not yet measured" in why and "train.precision: bf16" in why


def test_auto_is_bf16_for_sft_on_a_native_cpu_and_fp32_elsewhere(sft_measured):
    assert prec.choose_precision(_cfg(), "cpu", support=NATIVE)[0] == "bf16"
    choice, why = prec.choose_precision(_cfg(), "cpu", support=EMULATED)
    assert choice == "fp32" and "emulated" in why
    assert prec.choose_precision(_cfg(quantization="4bit"), "cpu", support=NATIVE)[0] == "fp32"
    assert prec.choose_precision(_cfg(compute_dtype="fp32"), "cpu", support=NATIVE)[0] == "fp32"
    assert prec.choose_precision(_cfg(precision="fp32"), "cpu", support=NATIVE) == \
        ("fp32", "fp32 as configured (train.precision)")
    assert prec.choose_precision(_cfg(), "cuda")[0] == "auto"  # a GPU keeps model.compute_dtype


def test_bf16_asked_on_a_cpu_without_it_is_said_in_one_line():
    choice, why = prec.choose_precision(_cfg(precision="bf16"), "cpu", support=EMULATED)
    assert choice == "bf16" and "emulated" in why and "\n" not in why


def test_the_policy_is_a_function_of_the_method(monkeypatch):
    cfg = _cfg()
    object.__setattr__(cfg.train, "method", "dpo")  # the method registry (pref-engine) adds train.method
    choice, why = prec.choose_precision(cfg, "cpu", support=NATIVE)
    assert choice == "fp32" and "dpo" in why
    monkeypatch.setattr(prec, "CPU_BF16_METHODS", dict(prec.CPU_BF16_METHODS))
    prec.allow_cpu_bf16("dpo", "DPO measured: margins within 1 %")
    choice, why = prec.choose_precision(cfg, "cpu", support=NATIVE)
    assert choice == "bf16" and "DPO measured" in why


@pytest.mark.parametrize("kind", [NATIVE, EMULATED])
def test_the_speed_plan_says_which_and_why_and_the_trainer_follows(kind, sft_measured):
    cfg = _cfg()
    plan = plan_speed(cfg, {"model_type": "llama"}, device="cpu", cpu_bf16=kind)
    want = "bf16" if kind[0] else "fp32"
    line = plan.lines()[-1]
    assert plan.precision == want and line.startswith(f"precision: {want} -- ") and kind[1] in line
    assert sft_speed_kwargs(plan)["bf16"] is kind[0] and sft_speed_kwargs(plan)["fp16"] is False
    assert model_config_for_plan(cfg.model, plan).compute_dtype == want
    assert plan.to_dict()["precision_reason"] == plan.precision_reason


@pytest.mark.slow
def test_bf16_and_fp32_runs_of_the_demo_start_at_the_same_loss(tiny_cfg, cpu_kind, sft_measured):
    """The real engine on both CPU kinds (detection faked): the native kind trains a bf16 base with fp32 LoRA
    weights and optimizer under autocast; the other stays all fp32; logged losses within 1 %."""
    from transformers import TrainerCallback

    from studio.events import Log
    from studio.training import TrainingJob

    class Peek(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, optimizer=None, **kw):
            if state.global_step == 1:
                self.seen = (args.bf16, {str(p.dtype) for p in model.parameters() if p.requires_grad},
                             {str(p.dtype) for p in model.parameters() if not p.requires_grad},
                             {str(v.dtype) for s in optimizer.state.values() for v in s.values() if v.dim()})
                self.fp32_out = sum("forward" in vars(m) for n, m in model.named_modules()
                                    if n.endswith("base_layer"))  # studio.speed.bf16_linear's projections

    losses, seen = {}, {}
    for native in (True, False):
        cpu_kind(native)
        peek = Peek()
        job = TrainingJob(tiny_cfg(max_steps=3, logging_steps=1, seed=0), extra_callbacks=[peek])
        job.run()
        assert job.plan.precision == ("bf16" if native else "fp32"), job.plan.precision_reason
        losses[native] = [e.loss for e in job.events.all() if isinstance(e, Log) and e.loss is not None]
        seen[native] = (*peek.seen, peek.fp32_out > 0)
    assert seen[True] == (True, {"torch.float32"}, {"torch.bfloat16"}, {"torch.float32"}, True)
    assert seen[False] == (False, {"torch.float32"}, {"torch.float32"}, {"torch.float32"}, False)
    assert len(losses[True]) == len(losses[False]) == 3
    assert all(abs(a - b) <= 0.01 * b for a, b in zip(losses[True], losses[False])), losses
