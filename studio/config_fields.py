"""How a config field is described, checked and built: its one help text and edit hints as field metadata, its
choices as ``Literal[...]``, and the checks that turn YAML/UI/``--set`` values into section dataclasses.

The metadata keys (read by :mod:`studio.ui.forms` for the widgets and by commands for their flags):
``help``; ``label`` (the widget's; default: the field name); ``kind`` when the type alone doesn't say how to
edit the field (``radio``, ``lines``: one item per line, ``multi``: a multi-select list, ``raw``: text kept as
typed, unstripped); ``choices`` for fields whose choices are not a ``Literal``; ``minimum``/``maximum``/``step``
(a number's range; both bounds: a slider); ``read``/``show`` convert a widget value to the field and back where no
generic rule does.

The type checker and dotted overrides are our own (kept on purpose): TRL's ``TrlParser.parse_dict`` (through
``HfArgumentParser``) takes flat keys, checks no types and says only "Some keys are not used by the
HfArgumentParser: [...]"; jsonargparse (litgpt's) is not installed and would be a new dependency for ~60 lines.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import field
from typing import Any, Callable, Literal, Union

from studio.errors import ConfigError

Format = Literal["auto", "text", "prompt_completion", "instruction", "messages", "preference", "kto"]
Quantization = Literal["none", "8bit", "4bit"]
QuantType = Literal["nf4", "fp4"]
Dtype = Literal["auto", "bf16", "fp16", "fp32"]
Attention = Literal["auto", "flash_attention_2", "flex_attention", "sdpa", "eager"]
ChatTemplate = Literal["model", "chatml", "none"]
LossOn = Literal["completion", "all"]
Scheduler = Literal["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"]
Optimizer = Literal["adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "paged_adamw_32bit", "adamw_8bit",
                    "adafactor", "sgd"]
Booster = Literal["auto", "none", "liger"]
Device = Literal["auto", "cuda", "cpu"]
Distributed = Literal["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"]
Tracker = Literal["none", "trackio", "wandb", "mlflow"]
Precision = Literal["auto", "fp32", "bf16"]
PushKind = Literal["adapter", "merged", "gguf"]
Bias = Literal["none", "all", "lora_only"]
BestMetric = Literal["eval_loss", "accuracy"]
Method = Literal["sft", "dpo", "orpo", "kto", "simpo", "grpo"]
"""Training methods (each one a recipe in :mod:`studio.training.methods`)."""
PrefLoss = Literal["sigmoid", "hinge", "ipo", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
                   "apo_zero", "apo_down", "sigmoid_norm", "kto", "apo_zero_unpaired"]
"""Loss variants TRL offers: DPO's (sigmoid ... sigmoid_norm) and KTO's (kto, apo_zero_unpaired)."""


def setting(text: str, *, label: str | None = None, kind: str | None = None, choices: tuple | None = None,
            minimum: float | None = None, maximum: float | None = None, step: float | None = None,
            read: Callable[[Any], Any] | None = None, show: Callable[[Any], Any] | None = None, **kw: Any) -> Any:
    """A dataclass field with its help text and edit hints (see the module docstring) as metadata."""
    meta = {"help": text, "label": label, "kind": kind, "choices": choices, "minimum": minimum, "maximum": maximum,
            "step": step, "read": read, "show": show}
    return field(metadata={k: v for k, v in meta.items() if v is not None}, **kw)


def field_of(cls: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def field_help(cls: type, name: str) -> str:
    """The one help text of ``cls.name``."""
    return field_of(cls, name).metadata.get("help", "")


@functools.lru_cache(maxsize=None)
def hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, resolved once per class (configs are built on every form read)."""
    return typing.get_type_hints(cls)


def value_type(cls: type, name: str) -> tuple[Any, bool]:
    """``(type, optional)`` of ``cls.name``: the annotation without ``None``, and whether ``None`` is allowed."""
    hint = hints(cls)[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True
    return hint, False


def choices_of(cls: type, name: str) -> tuple:
    """The allowed values of ``cls.name``: its metadata's ``choices``, else its ``Literal``'s, else ()."""
    meta = field_of(cls, name).metadata
    if "choices" in meta:
        return tuple(meta["choices"])
    base, _ = value_type(cls, name)
    return typing.get_args(base) if typing.get_origin(base) is Literal else ()


def check_choices(obj: Any, section: str) -> None:
    """Every ``Literal`` field of ``obj`` holds one of its values (``None`` where optional).

    Raises:
        ConfigError: naming the field, its choices and the value.
    """
    for f in dataclasses.fields(obj):
        base, optional = value_type(type(obj), f.name)
        if typing.get_origin(base) is not Literal:
            continue
        value = getattr(obj, f.name)
        if value not in typing.get_args(base) and not (optional and value is None):
            raise ConfigError(f"{section}.{f.name} must be one of {', '.join(map(str, typing.get_args(base)))}; "
                              f"got {value!r}")


def check_positive(section: str, name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{section}.{name} must be {bound}, got {value}")


def _type_ok(value: Any, annotation: Any) -> bool:
    """A light structural type check for YAML-sourced values (``Literal`` values are checked by
    :func:`check_choices`, with the choices in the message)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return True
    if origin in (Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is list:
        (inner,) = typing.get_args(annotation) or (Any,)
        return isinstance(value, list) and (inner is not str or all(isinstance(v, str) for v in value))
    if origin is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation) or (dataclasses.is_dataclass(annotation) and isinstance(value, dict))
    return True


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _describe(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if typing.get_origin(annotation) is list:
        return "a list"
    names = [_TYPE_NAMES.get(a, "a list" if typing.get_origin(a) is list else getattr(a, "__name__", str(a)))
             for a in args]
    return " or ".join(dict.fromkeys(names))


def _coerce(value: Any, base: Any) -> Any:
    """Numbers as the field wants them: an int for a float field, a whole float (a widget's 4.0) for an int field,
    and number text (YAML reads 2e-4, without a dot, as a string)."""
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and base in (float, int):
        try:
            return float(value) if base is float else int(value)
        except ValueError:
            return value
    return value


def build(cls: type, raw: Any, section: str) -> Any:
    """``cls(**raw)`` after naming any unknown key (with a "did you mean"), wrong type or missing key.

    Raises:
        ConfigError: the message names ``section.key``.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{section} must be a mapping of keys, got {type(raw).__name__}")
    types_of = hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            close = [n for n in names if n.startswith(str(key)[:3])]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key {section}.{key}{hint}; {section} has: {', '.join(names)}")
        value = _coerce(value, value_type(cls, key)[0])
        read = field_of(cls, key).metadata.get("read")
        if read is not None and isinstance(value, str) and typing.get_origin(value_type(cls, key)[0]) is list:
            value = read(value)  # a list written as the app's text (e.g. train.rewards, one reward a line)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{section}.{key} must be a finite number, got {value}")
        if not _type_ok(value, types_of[key]):
            raise ConfigError(f"{section}.{key} must be {_describe(types_of[key])}, got {value!r}")
        kwargs[key] = value
    missing = [f.name for f in dataclasses.fields(cls)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               and f.name not in kwargs]
    if missing:
        raise ConfigError(f"{section} needs {', '.join(missing)}")
    return cls(**kwargs)
