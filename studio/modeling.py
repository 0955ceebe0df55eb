"""Model setup: presets (data under assets/presets/), quantization, attention choice, loading, LoRA, memory estimate.

Heavy imports (torch, transformers, peft) happen inside the functions that need them.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from studio.errors import ModelError
from studio.paths import ASSETS

PRESETS_DIR = ASSETS / "presets"
GB = 1024 ** 3


# ----------------------------------------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """What a model family needs, learned the hard way (pad token, chat template, LoRA, attention quirks).

    ``config`` is a partial RunConfig mapping (model/lora/train sections) that :func:`apply_preset` layers under
    the user's choices; ``arch`` lets :func:`estimate_memory` work before anything is downloaded.
    """

    name: str
    model: str
    family: str = ""
    description: str = ""
    pad_token: str | None = None
    license: str | None = None
    """The base model's licence id on the Hub (used by the model card when the base card isn't on disk)."""
    notes: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    arch: dict[str, Any] = field(default_factory=dict)
    attention: dict[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=1)
def _load_presets() -> tuple[Preset, ...]:
    out = []
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        raw["notes"] = tuple(raw.get("notes") or ())
        for key in ("config", "arch", "attention"):
            raw[key] = raw.get(key) or {}
        out.append(Preset(**raw))
    return tuple(out)


def list_presets() -> list[Preset]:
    """All presets, the demo model first."""
    return sorted(_load_presets(), key=lambda p: (p.name != "demo-tiny", p.name))


def find_preset(name_or_path: str) -> Preset | None:
    """The preset named ``name_or_path`` or whose Hub id it is (case-insensitive), else None."""
    key = name_or_path.strip().lower()
    for p in _load_presets():
        if key in (p.name.lower(), p.model.lower()):
            return p
    return None


def apply_preset(cfg: Any, preset: Preset | str) -> Any:
    """A copy of RunConfig ``cfg`` with the preset's model/lora/train settings and its Hub id."""
    from studio.config import RunConfig

    preset = find_preset(preset) if isinstance(preset, str) else preset
    if preset is None:
        raise ModelError("unknown preset")
    raw = cfg.to_dict()
    for section, values in preset.config.items():
        raw[section].update(values)
    raw["model"]["name_or_path"] = preset.model
    return RunConfig.from_dict(raw)


def model_id(model_cfg: Any) -> str:
    """The Hub id or folder that ``model_cfg.name_or_path`` stands for (a preset name maps to its Hub id)."""
    preset = find_preset(model_cfg.name_or_path)
    return preset.model if preset else model_cfg.name_or_path


def _with_id(model_cfg: Any) -> Any:
    mid = model_id(model_cfg)
    return model_cfg if mid == model_cfg.name_or_path else dataclasses.replace(model_cfg, name_or_path=mid)


# ------------------------------------------------------------------------------------------------- devices, dtypes
def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("train.device is cuda but no CUDA GPU is visible; use auto or cpu")
    return device


def compute_dtype(model_cfg: Any, device: str) -> Any:
    """torch dtype for weights/compute: ``auto`` is bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU."""
    import torch

    choice = model_cfg.compute_dtype
    if choice == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[choice]


def quantization_config(model_cfg: Any, device: str = "auto") -> Any:
    """``BitsAndBytesConfig`` for 8-bit / 4-bit (nf4/fp4, double quant, compute dtype), or None."""
    if model_cfg.quantization == "none":
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(f"{model_cfg.quantization} quantization needs bitsandbytes: pip install bitsandbytes")
    from studio.imports import ml_libs
    ml_libs()
    from transformers import BitsAndBytesConfig

    if model_cfg.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=model_cfg.bnb_4bit_quant_type,
                              bnb_4bit_use_double_quant=model_cfg.double_quant,
                              bnb_4bit_compute_dtype=compute_dtype(model_cfg, resolve_device(device)))


# ------------------------------------------------------------------------------------------------------- attention
def _flash_attn_version() -> str | None:
    if importlib.util.find_spec("flash_attn") is None:
        return None
    try:
        import flash_attn  # noqa: F401

        return getattr(flash_attn, "__version__", "0")
    except Exception:  # noqa: BLE001 - a broken build counts as missing
        return None


def _cuda_capability() -> tuple[int, int] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability()


def choose_attention(requested: str = "auto", *, preset: Preset | None = None, device: str = "auto",
                     flash_version: str | None | bool = False,
                     capability: tuple[int, int] | None | bool = False) -> tuple[str, str]:
    """Pick the attention kernel and say why in one sentence.

    ``auto``: flash_attention_2 when flash-attn imports and the GPU is Ampere or newer (compute capability >= 8),
    else PyTorch SDPA. A preset can rule SDPA out (Gemma-2 soft-capping -> eager). Asking for flash_attention_2
    without the package (or without a suitable GPU) falls back with that sentence instead of an ImportError.
    ``flash_version`` / ``capability`` override detection (tests).

    Returns:
        ``(attn_implementation, reason)``
    """
    fv = _flash_attn_version() if flash_version is False else flash_version
    dev = resolve_device(device) if device == "auto" else device
    cap = (_cuda_capability() if dev == "cuda" else None) if capability is False else capability
    quirk = (preset.attention if preset else {}) or {}
    min_fa = quirk.get("min_flash_attn")

    def _vt(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in "".join(c if c.isdigit() or c == "." else " " for c in v).split()[0].split(".")
                     if x.isdigit())

    fa_ok = fv is not None and cap is not None and cap[0] >= 8 and (not min_fa or _vt(fv) >= _vt(min_fa))
    if fv is None:
        why_not = "flash-attn not installed"
    elif cap is None:
        why_not = "flash-attn needs a CUDA GPU"
    elif cap[0] < 8:
        why_not = f"flash-attn needs an Ampere or newer GPU (compute capability {cap[0]}.{cap[1]} < 8.0)"
    elif min_fa and _vt(fv) < _vt(min_fa):
        why_not = f"flash-attn {fv} is older than the {min_fa} this model needs"
    else:
        why_not = ""
    fallback = "sdpa"
    fallback_text = "PyTorch SDPA, which uses FlashAttention kernels on Ampere+"
    if "sdpa" in quirk.get("avoid", ()):
        fallback = quirk.get("fallback", "eager")
        fallback_text = f"{fallback} attention ({quirk.get('reason', 'this model needs it')})"

    if requested == "flash_attention_2":
        if fa_ok:
            return "flash_attention_2", f"flash-attn {fv} as requested"
        return fallback, f"{why_not}: using {fallback_text}"
    if requested == "auto":
        if fa_ok:
            return "flash_attention_2", f"flash-attn {fv} is installed and the GPU supports it"
        return fallback, f"{why_not}: using {fallback_text}"
    if requested == "sdpa" and fallback != "sdpa":
        return fallback, f"sdpa was requested, but {quirk.get('reason', 'this model needs another kernel')}: " \
                         f"using {fallback}"
    return requested, f"{requested} as requested"


# ---------------------------------------------------------------------------------------------------------- loading
def base_tokenizer(model_cfg: Any) -> tuple[Any, int]:
    """The tokenizer :func:`load_base` pairs with ``model_cfg`` (preset pad token, chat template), and how many
    tokens were added to it; pass the pair back as ``load_base(..., tokenizer=pair)`` to load the model for it."""
    from studio.tokenizer import load_tokenizer

    preset = find_preset(model_cfg.name_or_path)
    return load_tokenizer(_with_id(model_cfg), pad_token=preset.pad_token if preset else None)


def load_base(model_cfg: Any, *, device: str = "auto", for_training: bool = False, kbit_prep: bool = True,
              tokenizer: tuple[Any, int] | None = None) -> tuple[Any, Any]:
    """Load the base model and its tokenizer as configured.

    Resolves presets and the demo id, applies the preset's pad token and the chat-template choice (resizing the
    embeddings when tokens were added), quantizes with bitsandbytes (4/8-bit also on CPU), and picks the attention
    kernel. With ``for_training`` (and ``kbit_prep``) a quantized model is prepared for k-bit training by peft
    (norms upcast to fp32, base frozen); the training engine passes ``kbit_prep=False`` and prepares it itself
    without the upcast (:func:`studio.speed.plan.prepare_for_training`). Without ``for_training`` the model is in
    eval mode with every parameter frozen. ``tokenizer``: a ``(tokenizer, n_added)`` pair from
    :func:`base_tokenizer`, reused instead of loading it again. The attention reason is stored on
    ``model.studio_attention_reason``; added token ids on ``model.studio_added_token_ids``.

    Raises:
        ModelError: the model can't be found or loaded as asked.
    """
    import torch
    from studio.imports import ml_libs
    ml_libs()
    from transformers import AutoModelForCausalLM

    from studio.demo import resolve_model_path
    from studio.tokenizer import load_tokenizer

    preset = find_preset(model_cfg.name_or_path)
    mcfg = _with_id(model_cfg)
    dev = resolve_device(device)
    tok, n_added = tokenizer if tokenizer is not None else \
        load_tokenizer(mcfg, pad_token=preset.pad_token if preset else None)
    attn, reason = choose_attention(mcfg.attn_implementation, preset=preset, device=dev)
    quant = quantization_config(mcfg, dev)
    dtype = compute_dtype(mcfg, dev)
    path = resolve_model_path(mcfg.name_or_path)
    kwargs: dict[str, Any] = dict(revision=mcfg.revision, trust_remote_code=mcfg.trust_remote_code,
                                  attn_implementation=attn, dtype=dtype)
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": 0} if dev == "cuda" else "cpu"
    try:
        model = _from_pretrained(AutoModelForCausalLM, path, kwargs)
    except OSError as exc:
        raise ModelError(_explain_load(mcfg.name_or_path, exc)) from None
    except (ValueError, ImportError, RuntimeError) as exc:
        raise ModelError(f"{mcfg.name_or_path} could not be loaded: {str(exc).splitlines()[0][:300]}") from None
    if quant is None and dev == "cuda":
        model.to("cuda")
    added_ids: list[int] = []
    if n_added:
        added_ids = sorted(i for t, i in tok.get_vocab().items() if i >= model.get_input_embeddings().num_embeddings)
        model.resize_token_embeddings(len(tok), pad_to_multiple_of=8 if dev == "cuda" else None)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if for_training and quant is not None and kbit_prep:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if not for_training:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    model.studio_attention_reason = reason
    model.studio_added_token_ids = added_ids
    model.studio_device = dev
    del torch
    return model, tok


def _from_pretrained(cls: Any, path: str, kwargs: dict[str, Any]) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
        return cls.from_pretrained(path, **kwargs)


def _explain_load(name: str, exc: Exception) -> str:
    text = str(exc)
    if Path(name).expanduser().exists():
        return f"{name} has no model weights or config.json ({text.splitlines()[0][:160]})"
    if any(k in text for k in ("offline", "connect", "resolve", "Connection", "internet", "outgoing traffic")):
        return (f"can't reach the Hugging Face Hub to download {name!r}; use a local folder or the offline demo "
                f"model 'studio/demo-tiny'")
    return f"model {name!r} was not found locally or on the Hub ({text.splitlines()[0][:160]})"


def lora_config(cfg: Any, model: Any = None) -> Any:
    """peft ``LoraConfig`` from RunConfig ``cfg``; new token rows (chat template tokens) are trained too."""
    from peft import LoraConfig as PeftLoraConfig

    lc = cfg.lora
    kwargs: dict[str, Any] = dict(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, bias=lc.bias,
                                  target_modules=lc.target_modules, use_rslora=lc.use_rslora, use_dora=lc.use_dora,
                                  task_type="CAUSAL_LM")
    added = list(getattr(model, "studio_added_token_ids", []) or [])
    if added:
        kwargs["trainable_token_indices"] = {"embed_tokens": added}
        if not getattr(model.config, "tie_word_embeddings", False):
            kwargs["modules_to_save"] = ["lm_head"]
    return PeftLoraConfig(**kwargs)


def add_lora(model: Any, cfg: Any) -> Any:
    """Wrap ``model`` in a peft LoRA model as configured."""
    from peft import get_peft_model

    return get_peft_model(model, lora_config(cfg, model))


# ------------------------------------------------------------------------------------------------ what was loaded
@dataclass(frozen=True)
class Loaded:
    """Read back from a model as actually loaded (not copied from the config)."""

    quantization: str
    attn_implementation: str
    dtype: str
    trainable_params: int
    total_params: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def describe_loaded(model: Any) -> Loaded:
    """Quantization, attention kernel, dtype, parameter counts and device of a (peft) model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    quant = "4bit" if getattr(base, "is_loaded_in_4bit", False) else \
        "8bit" if getattr(base, "is_loaded_in_8bit", False) else "none"
    attn = getattr(base.config, "_attn_implementation", None) or "unknown"
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":
            n *= 2  # two 4-bit values per stored byte
        total += n
        if p.requires_grad:
            trainable += n
    dtypes: dict[str, int] = {}
    for p in base.parameters():
        if p.__class__.__name__ in ("Params4bit", "Int8Params"):
            continue
        dtypes[str(p.dtype).replace("torch.", "")] = dtypes.get(str(p.dtype).replace("torch.", ""), 0) + p.numel()
    dtype = max(dtypes, key=dtypes.get) if dtypes else "unknown"
    try:
        device = str(next(base.parameters()).device)
    except StopIteration:
        device = "unknown"
    return Loaded(quant, attn, dtype, trainable, total, device)


# --------------------------------------------------------------------------------------------------- memory estimate
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

    @property
    def fits(self) -> bool:
        return self.device_gb <= 0 or self.total_gb <= self.device_gb

    def parts(self) -> dict[str, float]:
        """Bar segments for a chart: label -> GB."""
        return {"weights": self.weights_gb, "LoRA": self.lora_gb, "gradients": self.grads_gb,
                "optimizer": self.optimizer_gb, "activations": self.activations_gb, "overhead": self.overhead_gb}

    def summary(self) -> str:
        gc = "on" if self.gradient_checkpointing else "off"
        quant = "unquantized" if self.quantization == "none" else self.quantization
        return (f"~{_size(self.total_gb)} of {self.device_gb:.1f} GB ({self.device_name}); weights ({quant}) "
                f"{_size(self.weights_gb)}, LoRA+grads+optimizer "
                f"{_size(self.lora_gb + self.grads_gb + self.optimizer_gb)}, activations "
                f"{_size(self.activations_gb)} (gradient checkpointing {gc}; {_size(self.activations_no_ckpt_gb)} "
                f"without, {_size(self.activations_ckpt_gb)} with)")

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
    """(name, in, out) of the linear layers of one decoder layer."""
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
    from studio.imports import ml_libs
    ml_libs()
    from transformers import AutoConfig

    from studio.demo import resolve_model_path

    try:
        return AutoConfig.from_pretrained(resolve_model_path(model_id(model_cfg)), revision=model_cfg.revision,
                                          trust_remote_code=model_cfg.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"can't read the config of {model_cfg.name_or_path!r} to estimate memory "
                         f"({str(exc).splitlines()[0][:160]})") from None


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


def resolve_gradient_checkpointing(cfg: Any, estimate: MemoryEstimate | None = None) -> bool:
    """``auto``: on when the run would not fit the device without it, off otherwise (it costs ~30% speed)."""
    setting = cfg.train.gradient_checkpointing
    if setting != "auto":
        return bool(setting)
    est = estimate or estimate_memory(cfg, gradient_checkpointing=False)
    if est.device == "cpu":
        return False
    no_ckpt_total = est.total_gb - est.activations_gb + est.activations_no_ckpt_gb
    return no_ckpt_total > 0.85 * est.device_gb


def estimate_memory(cfg: Any, model_config: Any = None, *, gradient_checkpointing: bool | None = None,
                    device: str | None = None) -> MemoryEstimate:
    """Estimate training memory before anything loads, from the model config alone.

    Weights at the chosen quantization (4-bit: 0.5 byte + block constants per linear weight; embeddings and norms
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
    a = arch_of(model_config if model_config is not None else _model_config_for(cfg.model))
    dev, dev_name, dev_gb = device_memory(device or cfg.train.device)
    mc, tc, lc = cfg.model, cfg.train, cfg.lora
    cbytes = {"bf16": 2, "fp16": 2, "fp32": 4}.get(mc.compute_dtype, 2 if dev == "cuda" else 4)
    shapes = _linear_shapes(a)
    linear_per_layer = sum(i * o for _, i, o in shapes)
    linear = linear_per_layer * a.num_hidden_layers
    embed = a.vocab_size * a.hidden_size
    head = 0 if a.tie_word_embeddings else embed
    norms = (2 * a.num_hidden_layers + 1) * a.hidden_size
    total_params = linear + embed + head + norms
    # k-bit: the rest stays in the compute dtype (studio.speed.kbit: no fp32 upcast), except with fp16 compute,
    # where peft's preparation upcasts it to fp32
    rest = 4 if mc.compute_dtype == "fp16" else cbytes
    if mc.quantization == "4bit":
        per = 0.5 + (4 / 64 if not mc.double_quant else (1 / 64 + 4 / (64 * 256)))
        weights = linear * per + (embed + head + norms) * rest
    elif mc.quantization == "8bit":
        weights = linear * (1 + 4 / max(a.hidden_size, 1)) + (embed + head + norms) * rest
    else:
        weights = total_params * cbytes
    targets = lc.target_modules
    names = {n for n, _, _ in shapes} if targets == "all-linear" else set(targets)
    lora_params = a.num_hidden_layers * sum(lc.r * (i + o) for n, i, o in shapes if n in names or
                                            (n == "up_proj" and "dense_h_to_4h" in names) or
                                            (n == "down_proj" and "dense_4h_to_h" in names))
    lora_bytes = 2 if mc.quantization != "none" and cbytes == 2 else 4
    lora = lora_params * lora_bytes
    grads = lora_params * lora_bytes
    optimizer = lora_params * 8 if "8bit" not in tc.optim else lora_params * 2
    tokens = tc.batch_size * tc.max_length
    h, i_sz = a.hidden_size, a.intermediate_size
    kvd = a.num_key_value_heads * a.head_dim
    qd = a.num_attention_heads * a.head_dim
    mlp_acts = 4 * i_sz if a.gated_mlp else 2 * i_sz
    # saved tensors per token per layer: norms (in/out, fp32 copies), q/k/v (+ rope copies), attention out,
    # residuals, MLP intermediates; LoRA inputs after dropout
    per_layer = cbytes * (4 * h + 2 * qd + 3 * kvd + qd + mlp_acts) + 4 * 2 * h
    if lc.dropout > 0:
        per_layer += cbytes * sum(i for n, i, _ in shapes if n in names)
    act_full = tokens * per_layer * a.num_hidden_layers
    act_ckpt = tokens * (h * cbytes * a.num_hidden_layers + per_layer)
    lm_chunk = min(tokens, 1024) * a.vocab_size * 4 * 2 + tokens * h * 4 * 2
    act_full += lm_chunk
    act_ckpt += lm_chunk
    overhead = (0.6 * GB if dev == "cuda" else 0.25 * GB) + 0.05 * weights
    if gradient_checkpointing is None:
        setting = tc.gradient_checkpointing
        if setting == "auto":
            base_total = weights + lora + grads + optimizer + overhead
            gradient_checkpointing = dev != "cpu" and (base_total + act_full) / GB > 0.85 * dev_gb
        else:
            gradient_checkpointing = bool(setting)
    acts = act_ckpt if gradient_checkpointing else act_full
    total = weights + lora + grads + optimizer + acts + overhead
    g = lambda x: round(x / GB, 3)  # noqa: E731
    return MemoryEstimate(weights_gb=g(weights), lora_gb=g(lora), grads_gb=g(grads), optimizer_gb=g(optimizer),
                          activations_gb=g(acts), activations_no_ckpt_gb=g(act_full),
                          activations_ckpt_gb=g(act_ckpt), overhead_gb=g(overhead), total_gb=g(total),
                          gradient_checkpointing=bool(gradient_checkpointing), total_params=int(total_params),
                          lora_params=int(lora_params), device=dev, device_name=dev_name, device_gb=round(dev_gb, 2),
                          quantization=cfg.model.quantization)
