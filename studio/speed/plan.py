"""One speed plan per run: which attention kernel, packing, booster, checkpointing, k-bit preparation and precision,
each with the one-line reason the UI shows and the run's environment.json records.

The engine calls, in order::

    plan = plan_speed(cfg, device=device, mean_tokens=mean_row_tokens(prepared.train))
    model, tok = load_base(model_config_for_plan(cfg.model, plan), device=device, for_training=True,
                           kbit_prep=False)
    prepare_for_training(model, plan)          # k-bit prep without fp32 upcast (no-op for unquantized models)
    apply_booster(model, plan)                 # Liger kernels where supported, else a reason
    SFTConfig(**{...the run's own args..., **sft_speed_kwargs(plan)})
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from studio.formatting import plural
from studio.modeling.memory import decide_checkpointing
from studio.speed.attention import choose_packed_attention
from studio.speed.boosters import apply_named_booster, choose_booster
from studio.speed.checkpointing import CHECKPOINT_KWARGS
from studio.speed.precision import choose_precision, compute_dtype_for


@dataclass
class SpeedPlan:
    """What the fast path turns on for one run, and why."""

    device: str
    attn_impl: str
    attn_reason: str
    packing: bool
    packing_strategy: str | None
    packing_reason: str
    booster: str
    booster_reason: str
    gradient_checkpointing: bool
    gc_reason: str
    kbit: str
    """``studio`` (no fp32 upcast), ``peft`` (fp16 compute: peft's upcast) or ``none`` (not quantized)."""
    kbit_reason: str
    per_device_batch: int
    batch_reason: str
    estimate: dict[str, Any] | None = None
    precision: str = "fp32"
    """``bf16`` (bf16 base, fp32 LoRA and optimizer, autocast), ``fp32``, or ``auto`` (GPU: model.compute_dtype)."""
    precision_reason: str = ""
    applied: dict[str, str] = field(default_factory=dict)
    """Filled in by :func:`apply_booster` / :func:`prepare_for_training` with what really happened."""

    @property
    def padding_free(self) -> bool:
        return self.packing and self.packing_strategy in ("bfd", "bfd_split")

    def lines(self) -> list[str]:
        """One line per optimization: what is on and why (UI, logs)."""
        return [f"attention: {self.attn_impl} -- {self.attn_reason}",
                f"packing: {self.packing_strategy if self.packing else 'off'} -- {self.packing_reason}",
                f"booster: {self.booster} -- {self.applied.get('booster', self.booster_reason)}",
                f"gradient checkpointing: {'on' if self.gradient_checkpointing else 'off'} -- {self.gc_reason}",
                f"k-bit preparation: {self.kbit} -- {self.applied.get('kbit', self.kbit_reason)}",
                f"micro-batch: {self.per_device_batch} -- {self.batch_reason}",
                f"precision: {self.precision} -- {self.precision_reason}"]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["padding_free"] = self.padding_free
        return out


def _model_type(cfg: Any, model_config: Any) -> str | None:
    from studio.modeling import find_preset

    mt = model_config.get("model_type") if isinstance(model_config, dict) else \
        getattr(model_config, "model_type", None)
    if mt:
        return str(mt)
    preset = find_preset(cfg.model.name_or_path)
    return preset.family if preset and preset.family else None


def plan_speed(cfg: Any, model_config: Any = None, device: str = "auto", *, mean_tokens: float | None = None,
               flash_version: str | None | bool = False, capability: tuple[int, int] | None | bool = False,
               flex_ok: bool | None = None, liger: str | None | bool = False,
               estimate: Any = None, min_step_tokens: int | None = None,
               cpu_bf16: tuple[bool, str] | None = None) -> SpeedPlan:
    """Decide the fast path for RunConfig ``cfg`` before the model loads.

    Args:
        cfg: the RunConfig.
        model_config: a transformers config or a preset ``arch`` mapping; None reads the preset / the model's config.
        device: ``auto``, ``cuda`` or ``cpu`` (``auto`` follows ``cfg.train.device``).
        mean_tokens: mean tokenized row length (``Prepared.stats.mean_tokens``); with packing it sizes the
            micro-batch so a step still holds about ``train.batch_size`` rows (see ``batch_reason``).
        flash_version, capability, flex_ok, liger, cpu_bf16: detection overrides (tests).
        estimate: a ready :class:`~studio.modeling.MemoryEstimate` for the planned micro-batch (tests).
        min_step_tokens: fewest tokens per packed micro-batch (GPU); None: enough for ~0.1 s of work at 40% of
            the GPU's peak, so fixed per-step costs (optimizer, metrics, launches) stay small. Never more packs
            than ``train.batch_size``.

    Returns:
        a :class:`SpeedPlan`; nothing here raises because an optional package is missing.
    """
    from studio.errors import StudioError
    from studio.modeling import _model_config_for, estimate_memory, find_preset, resolve_device

    tc = cfg.train
    dev = resolve_device(tc.device) if device == "auto" else device  # an explicit device plans without probing
    precision, precision_reason = choose_precision(cfg, dev, support=cpu_bf16)
    mc = _with_dtype(cfg.model, precision, dev)
    preset = find_preset(mc.name_or_path)
    if model_config is None:
        try:
            model_config = _model_config_for(mc)
        except StudioError:
            model_config = None
    attn, attn_reason = choose_packed_attention(mc.attn_implementation, packing=tc.packing, device=dev,
                                                preset=preset, flash_version=flash_version,
                                                capability=capability, flex_ok=flex_ok)
    packing = bool(tc.packing)
    if not packing and dev == "cpu":
        strategy, packing_reason = None, ("off (train.packing: false): the same rows per step, padding-free (one "
                                          "flattened row, or padded rows where the attention mask makes that "
                                          "cheaper; rows are already cut to max_length)")
    elif not packing:
        strategy, packing_reason = None, "off (train.packing: false): rows are padded to the longest in the batch"
    elif attn_reason.startswith("no packing:"):
        packing, strategy, packing_reason = False, None, attn_reason
    else:
        strategy = "bfd"
        packing_reason = ("bfd, padding-free: rows packed best-fit-decreasing into max_length bins, "
                          "flattened into one row per step; position_ids restart per row")

    rows = tc.batch_size
    if packing and mean_tokens and mean_tokens > 0:
        per_row = min(mean_tokens, tc.max_length)
        packs = max(1, math.ceil(rows * per_row / tc.max_length))
        floor = _min_step_tokens(model_config, dev, min_step_tokens)
        raised = packs if floor and packs * tc.max_length < floor and packs < rows else 0
        if raised:
            packs = min(rows, math.ceil(floor / tc.max_length))
        batch_reason = _packed_batch_reason(rows, packs, per_row, mean_tokens, tc, floor, raised)
    elif packing:
        packs = rows
        batch_reason = (f"{plural(rows, 'pack')} of up to {tc.max_length} tokens (row lengths unknown: a step may "
                        f"hold more than train.batch_size={plural(rows, 'row')})")
    else:
        packs = rows
        batch_reason = plural(rows, "row") + (" without padding" if dev == "cpu"
                                              else " padded to the longest in the batch")

    est = estimate
    if est is None and model_config is not None:
        try:
            planned = dataclasses.replace(cfg, model=mc, train=dataclasses.replace(tc, batch_size=packs))
            est = estimate_memory(planned, model_config, gradient_checkpointing=False, device=dev)
        except (StudioError, TypeError, ValueError):
            est = None
    gc_on, gc_reason = decide_checkpointing(tc.gradient_checkpointing, est)

    model_type = _model_type(cfg, model_config) if model_config is not None else \
        (preset.family if preset else None)
    booster, booster_reason = choose_booster(tc.booster, model_type, device=dev, liger=liger)

    if mc.quantization == "none":
        kbit, kbit_reason = "none", "no quantization: nothing to prepare"
    elif _compute_is_fp16(mc, dev):
        kbit, kbit_reason = "peft", "fp16 compute: peft's fp32 upcast of norms/embeddings (fp16 overflows)"
    else:
        kbit, kbit_reason = "studio", ("no fp32 upcast: norms, embeddings and LM head stay in the compute dtype "
                                       "(norm statistics and the loss already run in fp32)")
    return SpeedPlan(device=dev, attn_impl=attn, attn_reason=attn_reason, packing=packing,
                     packing_strategy=strategy, packing_reason=packing_reason, booster=booster,
                     booster_reason=booster_reason, gradient_checkpointing=gc_on, gc_reason=gc_reason, kbit=kbit,
                     kbit_reason=kbit_reason, per_device_batch=packs, batch_reason=batch_reason,
                     estimate=est.to_dict() if est is not None and hasattr(est, "to_dict") else None,
                     precision=precision, precision_reason=precision_reason)


def _with_dtype(model_cfg: Any, precision: str, device: str) -> Any:
    dtype = compute_dtype_for(precision, model_cfg, device)
    return model_cfg if dtype == model_cfg.compute_dtype else dataclasses.replace(model_cfg, compute_dtype=dtype)


def _packed_batch_reason(rows: int, packs: int, per_row: float, mean_tokens: float, tc: Any, floor: int,
                         raised_from: int) -> str:
    """What the packed micro-batch means in rows. ``train.batch_size`` counts rows per device per step, packed or
    not, so the packs are sized to hold about that many rows. Where they can't (one pack already holds more rows,
    or a GPU needs bigger steps to be efficient) the reason says how many rows a step trains instead; nothing is
    rescaled to compensate (learning rate, grad_accum)."""
    per_pack = max(1.0, tc.max_length / per_row)
    expected = packs * per_pack
    size = f"{tc.max_length} tokens"
    if raised_from:
        text = (f"{plural(packs, 'pack')} of up to {size}, raised from {raised_from} (which hold "
                f"~{plural(rows, 'row')} of ~{mean_tokens:.0f} tokens): a step needs >= {floor} tokens to hide "
                f"per-step overhead on this GPU (never more packs than train.batch_size); a step trains "
                f"~{plural(round(expected), 'row')}, not {rows}")
    elif expected > 1.25 * rows:
        why = f"one pack already holds ~{plural(round(per_pack), 'row')}" if packs == 1 else "packs come whole"
        text = (f"{plural(packs, 'pack')} of up to {size} {'holds' if packs == 1 else 'hold'} "
                f"~{plural(round(expected), 'row')} of ~{mean_tokens:.0f} tokens, not train.batch_size={rows}: {why} "
                f"(lower train.max_length to get closer)")
    else:
        return (f"{plural(packs, 'pack')} of up to {size} ~ {plural(rows, 'row')} of ~{mean_tokens:.0f} tokens "
                f"(train.batch_size counts rows, packed or not)")
    accum = getattr(tc, "grad_accum", 1) or 1
    return text + (f"; ~{plural(round(expected * accum), 'row')} per optimizer step (grad_accum {accum}), so "
                   f"fewer steps per epoch; learning rate unchanged")


def _compute_is_fp16(model_cfg: Any, device: str) -> bool:
    """Whether the k-bit matmuls compute in fp16 (``compute_dtype: fp16``, or ``auto`` on a GPU without bf16)."""
    if model_cfg.compute_dtype != "auto":
        return model_cfg.compute_dtype == "fp16"
    if device != "cuda":
        return False
    try:
        from studio.modeling import compute_dtype

        import torch

        return compute_dtype(model_cfg, device) == torch.float16
    except Exception:  # noqa: BLE001 - no GPU to ask: the preparation itself reads the real dtype
        return False


def _min_step_tokens(model_config: Any, device: str, given: int | None) -> int:
    if given is not None:
        return given
    if device != "cuda" or model_config is None:
        return 0
    from studio.speed.flops import flops_per_token, peak_flops

    try:
        peak = peak_flops(device="cuda").flops
        fpt = flops_per_token(model_config, 512)
    except Exception:  # noqa: BLE001 - no floor rather than no plan
        return 0
    return int(0.1 * 0.4 * peak / fpt) if peak > 0 and fpt > 0 else 4096


def mean_row_tokens(dataset: Any) -> float | None:
    """Mean kept length (tokens after the ``max_length`` cut) of a tokenized dataset's rows, read through Arrow;
    None when it has no ``input_ids`` column or no rows."""
    try:
        import pyarrow.compute as pc

        lengths = pc.list_value_length(dataset.with_format("arrow")["input_ids"])
        mean = pc.mean(lengths).as_py()
    except Exception:  # noqa: BLE001 - unknown lengths: the plan says so
        return None
    return float(mean) if mean else None


def model_config_for_plan(model_cfg: Any, plan: SpeedPlan) -> Any:
    """``cfg.model`` with the planned attention kernel and the precision's compute dtype (pass it to
    :func:`studio.modeling.load_base`): a bf16 plan loads the frozen base in bf16 (LoRA weights stay fp32)."""
    return dataclasses.replace(_with_dtype(model_cfg, plan.precision, plan.device), attn_implementation=plan.attn_impl)


def prepare_for_training(model: Any, plan: SpeedPlan) -> Any:
    """k-bit preparation per the plan (load the model with ``for_training=False`` so peft's upcast is not run
    first), or on a CPU bf16 plan the fp32 outputs of :mod:`studio.speed.bf16_linear`. Returns the
    :class:`~studio.speed.kbit.KbitPrep` (None without quantization)."""
    from studio.speed.kbit import prepare_kbit_model

    if plan.kbit == "none":
        if plan.device == "cpu" and plan.precision == "bf16":  # the LoRA update added in fp32, not rounded away
            from studio.speed.bf16_linear import keep_residual_fp32

            keep_residual_fp32(model)
        return None
    compute = None
    if plan.kbit == "peft":
        import torch

        compute = torch.float16
    prep = prepare_kbit_model(model, compute_dtype=compute)
    plan.applied["kbit"] = prep.reason + f" ({prep.fp32_params} fp32 parameters left)"
    return prep


def apply_booster(model: Any, plan: SpeedPlan) -> str:
    """Apply the planned booster to ``model`` in place; a failure downgrades the plan with a reason. Returns the
    reason that is recorded."""
    if plan.booster == "none":
        return plan.booster_reason
    ok, reason = apply_named_booster(model, plan.booster)
    if not ok:
        plan.booster = "none"
    plan.applied["booster"] = reason
    return reason


def sft_speed_kwargs(plan: SpeedPlan) -> dict[str, Any]:
    """``SFTConfig`` keyword arguments that carry the plan (override the run's own)."""
    out: dict[str, Any] = {
        "packing": plan.packing,
        "gradient_checkpointing": plan.gradient_checkpointing,
        "per_device_train_batch_size": plan.per_device_batch,
    }
    if plan.packing:  # eval rows are packed too: the same micro-batch, not train.batch_size packs
        out["per_device_eval_batch_size"] = plan.per_device_batch
    if plan.packing:
        out["packing_strategy"] = plan.packing_strategy
    elif plan.device == "cpu":  # the data layer already cut rows to max_length; TRL wants None for padding-free
        out.update(padding_free=True, max_length=None)
    if plan.gradient_checkpointing:
        out["gradient_checkpointing_kwargs"] = dict(CHECKPOINT_KWARGS)
    out["use_liger_kernel"] = False  # the booster is applied by apply_booster (instance patch, reason on failure)
    if plan.device == "cpu" or plan.precision != "auto":  # autocast in bf16, or none; a GPU's auto: the run's args
        out.update(bf16=plan.precision == "bf16", fp16=False)
    return out
