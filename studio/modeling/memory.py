"""Training memory estimate from the model config alone, and device memory (``auto`` checkpointing is decided by
``studio.speed.checkpointing``).

torch and transformers are imported inside the functions that need them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from studio.errors import ModelError
from studio.modeling.devices import resolve_device
from studio.modeling.presets import find_preset, model_id

GB = 1024 ** 3
SAFETY_MARGIN = 0.20
"""Share of device memory kept free when ``auto`` decides checkpointing (allocator fragmentation, long outlier
batches)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Training memory from the model config alone, in GB (GiB). ``device_gb`` is the detected GPU's memory
    (or RAM on CPU), ``device_name`` names it."""

    weights_gb: float
    lora_gb: float
    grads_gb: float
    optimizer_gb: float
    activations_gb: float
    activations_no_ckpt_gb: float
    activations_ckpt_gb: float
    overhead_gb: float
    total_gb: float
    gradient_checkpointing: bool
    total_params: int
    lora_params: int
    device: str
    device_name: str
    device_gb: float
    quantization: str = "none"
    method: str = "sft"
    reference_gb: float = 0.0
    """The reference pass of DPO/KTO (the base with the adapter off, no grad): its transient working memory."""
    sequences_per_row: int = 1
    """Sequences per row in a step: 2 for paired methods (chosen and rejected) and KTO (its KL completions)."""

    @property
    def fits(self) -> bool:
        return self.device_gb <= 0 or self.total_gb <= self.device_gb

    def parts(self) -> dict[str, float]:
        """Bar segments for a chart: label -> GB."""
        return {"weights": self.weights_gb, "LoRA": self.lora_gb, "gradients": self.grads_gb,
                "optimizer": self.optimizer_gb, "activations": self.activations_gb, "overhead": self.overhead_gb,
                **({"reference pass": self.reference_gb} if self.reference_gb else {})}

    def summary(self) -> str:
        gc = "on" if self.gradient_checkpointing else "off"
        quant = "unquantized" if self.quantization == "none" else self.quantization
        return (f"~{_size(self.total_gb)} of {self.device_gb:.1f} GB ({self.device_name}); weights ({quant}) "
                f"{_size(self.weights_gb)}, LoRA+grads+optimizer "
                f"{_size(self.lora_gb + self.grads_gb + self.optimizer_gb)}, activations "
                f"{_size(self.activations_gb)} (gradient checkpointing {gc}; {_size(self.activations_no_ckpt_gb)} "
                f"without, {_size(self.activations_ckpt_gb)} with)"
                + (f"; {self.method}: {self.sequences_per_row} sequences per row"
                   + (f", reference pass {_size(self.reference_gb)}" if self.reference_gb else "")
                   if self.method != "sft" else ""))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _size(gb: float) -> str:
    """``1.23 GB`` or, below 1 GB, ``45.6 MB`` (small models would show 0.00 GB)."""
    return f"{gb:.2f} GB" if gb >= 1 else f"{gb * 1024:.1f} MB"


@dataclass(frozen=True)
class Arch:
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    head_dim: int
    tie_word_embeddings: bool
    gated_mlp: bool


def arch_of(model_config: Any) -> Arch:
    """Architecture figures from a transformers config object or a plain mapping (a preset's ``arch``)."""
    get = (model_config.get if isinstance(model_config, dict) else
           lambda k, d=None: getattr(model_config, k, d))
    h = int(get("hidden_size", None) or get("n_embd", None) or get("d_model", 0))
    n_layers = int(get("num_hidden_layers", None) or get("n_layer", 0))
    heads = int(get("num_attention_heads", None) or get("n_head", 1))
    kv = get("num_key_value_heads", None)
    if kv is None:
        kv = 1 if get("multi_query", False) else heads
    inter = get("intermediate_size", None) or get("ffn_hidden_size", None) or get("n_inner", None) or 4 * h
    head_dim = get("head_dim", None) or h // max(heads, 1)
    gated = get("gated_mlp", None)
    if gated is None:
        act = str(get("hidden_act", None) or get("hidden_activation", None) or "")
        mtype = str(get("model_type", "") or "")
        gated = mtype not in ("falcon", "phi", "gpt2", "gpt_neox", "gptj") and act in ("silu", "swish", "gelu_pytorch_tanh", "")
    if not h or not n_layers:
        raise ModelError("can't estimate memory: the model config has no hidden_size / num_hidden_layers")
    return Arch(h, n_layers, int(inter), heads, int(kv), int(get("vocab_size", 32000)), int(head_dim),
                bool(get("tie_word_embeddings", True)), bool(gated))


def _linear_shapes(a: Arch) -> list[tuple[str, int, int]]:
    """(name, in, out) of the linear layers of one decoder layer, from the config's widths (studio.speed.flops's
    matmul count; the memory estimate counts parameters exactly instead)."""
    q = a.num_attention_heads * a.head_dim
    kv = a.num_key_value_heads * a.head_dim
    shapes = [("q_proj", a.hidden_size, q), ("k_proj", a.hidden_size, kv), ("v_proj", a.hidden_size, kv),
              ("o_proj", q, a.hidden_size)]
    if a.gated_mlp:
        shapes += [("gate_proj", a.hidden_size, a.intermediate_size), ("up_proj", a.hidden_size, a.intermediate_size),
                   ("down_proj", a.intermediate_size, a.hidden_size)]
    else:
        shapes += [("up_proj", a.hidden_size, a.intermediate_size), ("down_proj", a.intermediate_size, a.hidden_size)]
    return shapes


def _model_config_for(model_cfg: Any) -> Any:
    preset = find_preset(model_cfg.name_or_path)
    if preset and preset.arch:
        return preset.arch
    from studio.modeling.sources import config_path, hub_problem

    problem = hub_problem(model_cfg.name_or_path, model_cfg.revision)  # at once, not after ~25 s of retries
    if problem:
        raise ModelError(f"no memory estimate: {problem}")
    from studio.imports import ml_libs
    ml_libs()
    from transformers import AutoConfig

    try:
        path, extra = config_path(model_id(model_cfg))
        return AutoConfig.from_pretrained(path, revision=model_cfg.revision,
                                          trust_remote_code=model_cfg.trust_remote_code, **extra)
    except (OSError, ValueError) as exc:
        raise ModelError(f"can't read the config of {model_cfg.name_or_path!r} to estimate memory "
                         f"({str(exc).splitlines()[0][:160]})") from None


def read_model_config(model_cfg: Any) -> Any:
    """The model's transformers config without loading weights: a preset's bundled shapes, else its config file.

    Raises:
        ModelError: the config can't be read (the Hub out of reach included, at once).
    """
    from studio.modeling.params import transformers_config

    return transformers_config(_model_config_for(model_cfg))


def device_memory(device: str = "auto") -> tuple[str, str, float]:
    """``(device, name, GB)`` of the first GPU, or of system RAM on CPU."""
    import torch

    dev = resolve_device(device) if device != "cuda" or torch.cuda.is_available() else "cpu"
    if dev == "cuda":
        props = torch.cuda.get_device_properties(0)
        return "cuda", props.name, props.total_memory / GB
    try:
        import psutil

        total = psutil.virtual_memory().total
    except ImportError:  # pragma: no cover
        import os

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return "cpu", "system RAM", total / GB


def estimate_memory(cfg: Any, model_config: Any = None, *, gradient_checkpointing: bool | None = None,
                    device: str | None = None) -> MemoryEstimate:
    """Estimate training memory before anything loads, from the model config alone.

    Parameters are counted exactly on a meta-device copy of the model (:mod:`studio.modeling.params`). Weights at
    the chosen quantization (4-bit: 0.5 byte + block constants per linear weight; embeddings and norms
    in the compute dtype after Studio's k-bit preparation, fp32 with fp16 compute), LoRA parameters (fp32; bf16
    when quantized, as TRL casts them), their gradients and AdamW states (2 x fp32), activations for batch x max_length with and without gradient
    checkpointing (SDPA/flash attention: no seq^2 scores; TRL's fused LM head: no full logits), and a fixed
    runtime overhead (CUDA context, allocator slack).

    Args:
        cfg: the RunConfig.
        model_config: a transformers config or an ``arch`` mapping; None reads the preset or the model's config.
        gradient_checkpointing: override ``cfg.train.gradient_checkpointing`` (``auto`` resolves here).
        device: override ``cfg.train.device``.
    """
    from studio.modeling.params import count_parameters, transformers_config

    config = transformers_config(model_config if model_config is not None else _model_config_for(cfg.model))
    a = arch_of(config)
    counts = count_parameters(config, cfg.lora)
    dev, dev_name, dev_gb = device_memory(device or cfg.train.device)
    mc, tc, lc = cfg.model, cfg.train, cfg.lora
    cbytes = {"bf16": 2, "fp16": 2, "fp32": 4}.get(mc.compute_dtype, 2 if dev == "cuda" else 4)
    total_params, linear = counts.total, counts.linear
    # k-bit: the rest stays in the compute dtype (studio.speed.kbit: no fp32 upcast), except with fp16 compute,
    # where peft's preparation upcasts it to fp32
    rest = 4 if mc.compute_dtype == "fp16" else cbytes
    if mc.quantization == "4bit":
        per = 0.5 + (4 / 64 if not mc.double_quant else (1 / 64 + 4 / (64 * 256)))
        weights = linear * per + (total_params - linear) * rest
    elif mc.quantization == "8bit":
        weights = linear * (1 + 4 / max(a.hidden_size, 1)) + (total_params - linear) * rest
    else:
        weights = total_params * cbytes
    lora_params = counts.lora
    lora_bytes = 2 if mc.quantization != "none" and cbytes == 2 else 4
    lora = lora_params * lora_bytes
    grads = lora_params * lora_bytes
    optimizer = lora_params * 8 if "8bit" not in tc.optim else lora_params * 2
    from studio.config import METHOD_SHAPES

    method = getattr(tc, "method", "sft")
    sequences, uses_reference = METHOD_SHAPES.get(method, (1, False))
    tokens = tc.batch_size * tc.max_length * sequences  # a pair is two sequences of up to max_length
    h, i_sz = a.hidden_size, a.intermediate_size
    kvd = a.num_key_value_heads * a.head_dim
    qd = a.num_attention_heads * a.head_dim
    mlp_acts = 4 * i_sz if a.gated_mlp else 2 * i_sz
    # saved tensors per token per layer: norms (in/out, fp32 copies), q/k/v (+ rope copies), attention out,
    # residuals, MLP intermediates; LoRA inputs after dropout
    # a bf16 base on a CPU returns fp32 from its projections (studio.speed.bf16_linear): fp32 activations, plus the
    # bf16 copies autocast makes of each LoRA input
    abytes = 4 if dev == "cpu" and mc.quantization == "none" else cbytes
    per_layer = abytes * (4 * h + 2 * qd + 3 * kvd + qd + mlp_acts) + 4 * 2 * h
    if abytes != cbytes:
        per_layer += cbytes * (5 * h + qd + i_sz)
    if lc.dropout > 0:
        per_layer += cbytes * counts.lora_inputs // max(a.num_hidden_layers, 1)
    act_full = tokens * per_layer * a.num_hidden_layers
    act_ckpt = tokens * (h * cbytes * a.num_hidden_layers + per_layer)
    lm_chunk = min(tokens, 1024) * a.vocab_size * 4 * 2 + tokens * h * 4 * 2
    act_full += lm_chunk
    act_ckpt += lm_chunk
    # the reference runs without grad: one layer's working set and the LM head chunk at a time, freed after
    reference = tokens * per_layer + lm_chunk if uses_reference else 0
    overhead = (0.6 * GB if dev == "cuda" else 0.25 * GB) + 0.05 * weights
    g = lambda x: round(x / GB, 3)  # noqa: E731
    without = MemoryEstimate(weights_gb=g(weights), lora_gb=g(lora), grads_gb=g(grads), optimizer_gb=g(optimizer),
                             activations_gb=g(act_full), activations_no_ckpt_gb=g(act_full),
                             activations_ckpt_gb=g(act_ckpt), overhead_gb=g(overhead),
                             total_gb=g(weights + lora + grads + optimizer + act_full + overhead + reference),
                             gradient_checkpointing=False, total_params=int(total_params),
                             lora_params=int(lora_params), device=dev, device_name=dev_name,
                             device_gb=round(dev_gb, 2), quantization=cfg.model.quantization, method=method,
                             reference_gb=g(reference), sequences_per_row=sequences)
    if gradient_checkpointing is None:  # the one policy, ``auto`` included
        gradient_checkpointing = decide_checkpointing(tc.gradient_checkpointing, without)[0]
    if not gradient_checkpointing:
        return without
    return dataclasses.replace(without, activations_gb=g(act_ckpt), gradient_checkpointing=True,
                               total_gb=g(weights + lora + grads + optimizer + act_ckpt + overhead + reference))


def decide_checkpointing(setting: Any, estimate: Any = None) -> tuple[bool, str]:
    """Whether to checkpoint activations, and why: the one policy of ``train.gradient_checkpointing``.

    Recomputing activations costs about a third more compute (one extra forward per step), so ``auto`` turns it
    off whenever the estimate *without* it fits the device with :data:`SAFETY_MARGIN` kept free, and on otherwise.

    Args:
        setting: ``"auto"``, True or False (``TrainConfig.gradient_checkpointing`` after validation).
        estimate: a :class:`MemoryEstimate` for the planned micro-batch (any ``gradient_checkpointing``: both
            activation figures are in it); required for ``auto``.

    Returns:
        ``(on, reason)``
    """
    if setting is True:
        return True, "gradient checkpointing on as configured (non-reentrant)"
    if setting is False:
        return False, "gradient checkpointing off as configured"
    if estimate is None:
        return True, "gradient checkpointing on (auto, no memory estimate available: the safe choice)"
    if estimate.device == "cpu":
        return False, "gradient checkpointing off (auto: CPU run, memory is system RAM)"
    margin = SAFETY_MARGIN  # one margin for every caller (the engine, the estimate, the benchmarks)
    base = estimate.total_gb - estimate.activations_gb
    without = base + estimate.activations_no_ckpt_gb
    budget = (1 - margin) * estimate.device_gb
    if without <= budget:
        return False, (f"gradient checkpointing off (auto): ~{without:.1f} GB without it fits "
                       f"{budget:.1f} GB ({1 - margin:.0%} of {estimate.device_gb:.0f} GB); saves ~25% step time")
    with_ = base + estimate.activations_ckpt_gb
    return True, (f"gradient checkpointing on (auto, non-reentrant): ~{without:.1f} GB without it exceeds "
                  f"{budget:.1f} GB ({1 - margin:.0%} of {estimate.device_gb:.0f} GB); ~{with_:.1f} GB with it")
