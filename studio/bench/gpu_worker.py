"""The ``plain`` and ``tuned`` runs of ``studio bench gpu``: TRL SFTTrainer + peft LoRA built by hand, each in its
own worker process (``python -m studio.bench.gpu --worker``); the ``studio`` runs are :mod:`studio.bench.gpu_job`."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from studio.bench.gpu_common import (GPU, LORA, SHAPES, SMOKE, checkpoint, figures, model_config, probe_loss,
                                     synthetic_rows, word_tokenizer)


def _load(shape: str, smoke: bool, attn: str, dtype: Any, workdir: Path, device: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if SHAPES[shape]["quantization"] == "none":
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(model_config(shape, smoke), dtype=dtype,
                                                     attn_implementation=attn)
        return model
    folder = checkpoint(shape, smoke, dtype, workdir)
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=dtype)
    return AutoModelForCausalLM.from_pretrained(str(folder), quantization_config=q, dtype=dtype,
                                                attn_implementation=attn,
                                                device_map={"": 0} if device == "cuda" else "cpu")


def _studio_cfg(shape: str, smoke: bool, settings: dict[str, Any], device: str) -> Any:
    from studio.config import RunConfig

    quant = SHAPES[shape]["quantization"]
    return RunConfig.from_dict({
        "model": {"name_or_path": shape, "quantization": quant, "compute_dtype": "bf16" if device == "cuda" else "fp32"},
        "lora": dict(LORA),
        "train": {"packing": True, "batch_size": settings["batch_size"], "max_length": settings["max_len"],
                  "gradient_checkpointing": "auto", "booster": "auto", "device": device},
    })


class _Meter:
    """Per-step wall time (synchronized) and real tokens, fed by the trainer subclass."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.tokens: list[int] = []
        self.losses: list[float] = []


def _trainer_class(meter: _Meter, device: str, stop_after: dict[str, Any]) -> Any:
    import torch
    from trl import SFTTrainer

    from studio.speed.flops import batch_token_counts

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    class TimedTrainer(SFTTrainer):
        def training_step(self, model, inputs, *args, **kwargs):
            real, _, _ = batch_token_counts(inputs)
            sync()
            t0 = time.perf_counter()
            loss = super().training_step(model, inputs, *args, **kwargs)
            sync()
            meter.times.append(time.perf_counter() - t0)
            meter.tokens.append(real)
            meter.losses.append(float(loss.detach().float().item()))
            measured = meter.tokens[stop_after["warmup"]:]
            if len(meter.times) > stop_after["warmup"] and (
                    sum(measured) >= stop_after["tokens"]
                    or sum(meter.times[stop_after["warmup"]:]) >= stop_after["max_seconds"]):
                self.control.should_training_stop = True
            return loss

    return TimedTrainer


def run_one(shape: str, run: str, *, smoke: bool, workdir: Path, tuned_attn: str | None = None,
            tokens: int | None = None, max_seconds: float | None = None) -> dict[str, Any]:
    """Train one run in this process and return its figures."""
    import warnings

    warnings.filterwarnings("ignore")
    if run in ("studio", "studio-lowmem"):  # the real engine, as a user's run
        from studio.bench.gpu_job import run_studio_job

        return run_studio_job(shape, run, smoke=smoke, workdir=workdir, tokens=tokens, max_seconds=max_seconds)

    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from trl import SFTConfig

    from studio.modeling import estimate_memory
    from studio.speed.boosters import choose_booster
    from studio.modeling.memory import decide_checkpointing
    from studio.speed.kbit import fp32_param_count

    settings = dict(SMOKE if smoke else GPU)
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    quant = SHAPES[shape]["quantization"]
    mconf = model_config(shape, smoke)
    rows = synthetic_rows(settings["rows"], settings["min_len"], settings["max_len"], mconf.vocab_size)
    cfg = _studio_cfg(shape, smoke, settings, device)
    notes: list[str] = []
    bs, max_len = settings["batch_size"], settings["max_len"]
    args: dict[str, Any] = dict(
        output_dir=str(workdir / f"out-{shape}-{run}"), max_steps=100_000, learning_rate=2e-4, logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True, max_length=max_len, completion_only_loss=True,
        per_device_train_batch_size=bs, bf16=device == "cuda", use_cpu=device == "cpu",
        dataloader_pin_memory=device == "cuda", seed=0, data_seed=0)

    if run == "plain":
        attn, packing, gc_on, booster = "sdpa", False, True, "none"
        model = _load(shape, smoke, attn, dtype, workdir, device)
        if quant != "none":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        kbit = "peft" if quant != "none" else "none"
        args.update(gradient_checkpointing=True)
    elif run == "tuned":
        if tuned_attn:
            attn = tuned_attn
        else:
            from studio.modeling import _flash_attn_version

            attn = "flash_attention_2" if device == "cuda" and _flash_attn_version() else "sdpa"
        packing = True
        est = None
        try:
            tuned_cfg = cfg.with_overrides([f"train.batch_size={bs}"])
            est = estimate_memory(tuned_cfg, mconf, gradient_checkpointing=False, device=device)
        except Exception:  # noqa: BLE001
            pass
        gc_on, _ = decide_checkpointing("auto", est)
        booster, _ = choose_booster("auto", mconf.model_type, device=device)
        model = _load(shape, smoke, attn, dtype, workdir, device)
        if quant != "none":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc_on)
        kbit = "peft" if quant != "none" else "none"
        args.update(packing=True, packing_strategy="bfd", gradient_checkpointing=gc_on,
                    use_liger_kernel=booster == "liger")
    else:
        raise ValueError(f"unknown run {run!r}; choose from plain, tuned, studio, studio-lowmem")

    if device == "cuda" and attn not in ("flash_attention_2", "flex_attention") and packing:
        notes.append(f"{attn} with packing: dense block-diagonal mask over the flattened batch")
    fp32_left = fp32_param_count(model)
    peft_cfg = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                          target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    model = get_peft_model(model, peft_cfg)
    lora_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    probe = probe_loss(model, rows[:4], padding_free=packing, device=device)

    meter = _Meter()
    stop = {"warmup": settings["warmup"], "tokens": tokens or settings["tokens"][shape],
            "max_seconds": max_seconds or settings["max_seconds"]}
    trainer_cls = _trainer_class(meter, device, stop)
    trainer = trainer_cls(model=model, args=SFTConfig(**args), train_dataset=Dataset.from_list(rows),
                          processing_class=word_tokenizer(mconf.vocab_size))
    trainer.train()

    first = round(meter.losses[0], 4) if meter.losses else None
    return {**figures(run, shape, device=device, times=meter.times, tokens=meter.tokens, warmup=stop["warmup"],
                      rows=rows, model_config=mconf, lora_params=lora_params),
            "first_loss": first, "probe_loss": round(probe, 4), "attn": attn, "packing": packing,
            "gradient_checkpointing": gc_on, "booster": booster, "kbit": kbit, "fp32_params": fp32_left,
            "notes": notes}
