"""The fast path: attention that respects packed boundaries, kernel boosters, a checkpointing policy, k-bit
preparation without needless fp32 upcasts, and FLOPs/MFU accounting.

Each module is a few small functions that return ``(choice, reason)``; :func:`studio.speed.plan.plan_speed`
composes them into one :class:`~studio.speed.plan.SpeedPlan` that the training engine applies and records.
Heavy imports (torch, transformers, peft, liger) happen inside the functions.
"""
from studio.speed.plan import SpeedPlan, apply_booster, plan_speed, sft_speed_kwargs

__all__ = ["SpeedPlan", "apply_booster", "plan_speed", "sft_speed_kwargs"]
