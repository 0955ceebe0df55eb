"""Loading: quantization config, base model and tokenizer, LoRA, and what was actually loaded.

Heavy imports (torch, transformers, peft) happen inside the functions that need them.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from studio.errors import ModelError, hub_unreachable
from studio.modeling import kbit_cpu
from studio.modeling.attention import choose_attention
from studio.modeling.devices import compute_dtype, resolve_device
from studio.modeling.presets import _with_id, find_preset


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



# ---------------------------------------------------------------------------------------------------------- loading
def base_tokenizer(model_cfg: Any, progress: Any = None) -> tuple[Any, int]:
    """The tokenizer :func:`load_base` pairs with ``model_cfg`` (preset pad token, chat template), and how many
    tokens were added to it; pass the pair back as ``load_base(..., tokenizer=pair)`` to load the model for it."""
    from studio.modeling.tokenizer import load_tokenizer

    preset = find_preset(model_cfg.name_or_path)
    return load_tokenizer(_with_id(model_cfg), pad_token=preset.pad_token if preset else None, progress=progress)


@dataclass(frozen=True)
class LoadedBase:
    """What :func:`load_base` returns: the model, its tokenizer, and what was decided while loading them.

    Unpacks as ``model, tokenizer = load_base(...)``.
    """

    model: Any
    tokenizer: Any
    device: str
    attention_reason: str = ""
    """Why this attention kernel (:func:`choose_attention`)."""
    quant_reason: str = ""
    """Layers kept unquantized for bitsandbytes' AVX512-BF16 CPU kernel (:mod:`studio.modeling.kbit_cpu`), or ""."""
    added_token_ids: tuple[int, ...] = ()
    """Token ids added to the vocabulary (chat template tokens): :func:`lora_config` trains their rows."""

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.tokenizer))


def load_base(model_cfg: Any, *, device: str = "auto", for_training: bool = False, kbit_prep: bool = True,
              tokenizer: tuple[Any, int] | None = None, progress: Any = None) -> LoadedBase:
    """Load the base model and its tokenizer as configured.

    Resolves presets and the demo id, applies the preset's pad token and the chat-template choice (resizing the
    embeddings when tokens were added), quantizes with bitsandbytes (4/8-bit also on CPU), and picks the attention
    kernel. With ``for_training`` (and ``kbit_prep``) a quantized model is prepared for k-bit training by peft
    (norms upcast to fp32, base frozen); the training engine passes ``kbit_prep=False`` and prepares it itself
    without the upcast (:func:`studio.speed.plan.prepare_for_training`). Without ``for_training`` the model is in
    eval mode with every parameter frozen. ``tokenizer``: a ``(tokenizer, n_added)`` pair from
    :func:`base_tokenizer`, reused instead of loading it again. ``progress(fraction, message)`` hears about a
    first GGUF dequantization (a ``.gguf`` path, or a preset's offline GGUF). The attention and quantization
    reasons and the added token ids come back in the :class:`LoadedBase`.

    Raises:
        ModelError: the model can't be found or loaded as asked.
    """
    from studio.modeling.sources import check_reachable

    check_reachable(model_cfg.name_or_path, model_cfg.revision)  # an offline Hub: one sentence, not ~25 s of retries
    import torch
    from studio.imports import ml_libs
    ml_libs()
    from transformers import AutoModelForCausalLM

    from studio.modeling.sources import resolve_model_path
    from studio.modeling.tokenizer import load_tokenizer

    preset = find_preset(model_cfg.name_or_path)
    mcfg = _with_id(model_cfg)
    dev = resolve_device(device)
    tok, n_added = tokenizer if tokenizer is not None else \
        load_tokenizer(mcfg, pad_token=preset.pad_token if preset else None, progress=progress)
    attn, reason = choose_attention(mcfg.attn_implementation, preset=preset, device=dev)
    quant = quantization_config(mcfg, dev)
    dtype = compute_dtype(mcfg, dev)
    path = resolve_model_path(mcfg.name_or_path, progress)
    kwargs: dict[str, Any] = dict(revision=mcfg.revision, trust_remote_code=mcfg.trust_remote_code,
                                  attn_implementation=attn, dtype=dtype)
    quant_reason = ""
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": 0} if dev == "cuda" else "cpu"
        quant_reason = kbit_cpu.plan_cpu_4bit(quant, path, kwargs, device=dev)
    from studio.damage import check_weights, reading

    todo = f"copy or download {mcfg.name_or_path} again"
    check_weights(path, todo)
    try:
        with reading(path, todo):
            model = _from_pretrained(AutoModelForCausalLM, path, kwargs)
    except OSError as exc:
        raise ModelError(_explain_load(mcfg.name_or_path, exc)) from None
    except (ValueError, ImportError, RuntimeError) as exc:
        raise ModelError(f"{mcfg.name_or_path} could not be loaded: {str(exc).splitlines()[0][:300]}") from None
    if quant is None and dev == "cuda":
        model.to("cuda")
    if for_training:
        kbit_cpu.keep_unpacked(model)  # packed layers have no backward (training evaluates between steps)
    else:
        kbit_cpu.check_loaded(model, device=dev)
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
    del torch
    return LoadedBase(model, tok, dev, attention_reason=reason, quant_reason=quant_reason,
                      added_token_ids=tuple(added_ids))


def _from_pretrained(cls: Any, path: str, kwargs: dict[str, Any]) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
        return cls.from_pretrained(path, **kwargs)


def _explain_load(name: str, exc: Exception) -> str:
    text = str(exc)
    if Path(name).expanduser().exists():
        return f"{name} has no model weights or config.json ({text.splitlines()[0][:160]})"
    if hub_unreachable(exc):
        return (f"can't reach the Hugging Face Hub to download {name!r}; use a local folder or the offline demo "
                f"model 'studio/demo-tiny'")
    return f"model {name!r} was not found locally or on the Hub ({text.splitlines()[0][:160]})"


def lora_config(cfg: Any, model: Any = None, added_token_ids: Iterable[int] = ()) -> Any:
    """peft ``LoraConfig`` from RunConfig ``cfg``; the rows of ``added_token_ids`` (chat template tokens added by
    :func:`load_base`) are trained too."""
    from peft import LoraConfig as PeftLoraConfig

    lc = cfg.lora
    kwargs: dict[str, Any] = dict(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, bias=lc.bias,
                                  target_modules=lc.target_modules, use_rslora=lc.use_rslora, use_dora=lc.use_dora,
                                  task_type="CAUSAL_LM")
    added = list(added_token_ids)
    if added:
        kwargs["trainable_token_indices"] = {"embed_tokens": added}
        if not getattr(model.config, "tie_word_embeddings", False):
            kwargs["modules_to_save"] = ["lm_head"]
    return PeftLoraConfig(**kwargs)


def add_lora(model: Any, cfg: Any, added_token_ids: Iterable[int] = ()) -> Any:
    """Wrap ``model`` in a peft LoRA model as configured (``added_token_ids``: see :func:`lora_config`)."""
    from peft import get_peft_model

    return get_peft_model(model, lora_config(cfg, model, added_token_ids))


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
