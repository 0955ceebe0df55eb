"""Generation parameters (one definition: the chat CLI's flags and the Chat tab's widgets are derived from its field
metadata) and the small pieces ``generate()`` is given: a private-seed sampler and the stop-button criterion.

Sampling draws from a ``torch.Generator`` owned by the request, never from the global RNG, so the same seed gives
the same answer whatever else runs in the process (a training thread included), and a chat request never
reseeds a training run. Stop strings go to transformers' own ``StopStringCriteria`` (``stop_strings=`` with the
tokenizer); the text shown is cut before them by :class:`StopScanner` (streamed) or :func:`cut_at_stop`.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from studio.errors import ConfigError


def _param(default: Any, help: str, *, label: str, flag: str | None = None, minimum: float | None = None,
           maximum: float | None = None, step: float | None = None) -> Any:
    """A generation field: its one help text, the widget's label and range, and the CLI flag (default
    ``--field-name``)."""
    return field(default=default, metadata={"help": help, "label": label, "flag": flag, "minimum": minimum,
                                            "maximum": maximum, "step": step})


@dataclass(frozen=True)
class GenerationParams:
    """How to decode. The defaults are deterministic (greedy), so the same prompt gives the same answer."""

    max_new_tokens: int = _param(128, "Most tokens per answer.", label="Max new tokens", minimum=1, maximum=2048,
                                 step=1)
    do_sample: bool = _param(False, "Sample (with the seed) instead of greedy decoding.", flag="--sample",
                             label="Sample (off = greedy, deterministic)")
    temperature: float = _param(0.7, "Sampling temperature (> 0); ignored when greedy.", label="Temperature",
                                minimum=0.05, maximum=2.0, step=0.05)
    top_p: float = _param(0.95, "Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p "
                          "(0 < top_p <= 1).", label="Top p", minimum=0.05, maximum=1.0, step=0.01)
    top_k: int = _param(50, "Keep only the k most likely tokens (0 turns it off).", label="Top k (0 = off)",
                        minimum=0, maximum=200, step=1)
    repetition_penalty: float = _param(1.0, "> 1 discourages repeating tokens already in the prompt or answer.",
                                       label="Repetition penalty", minimum=0.5, maximum=2.0, step=0.05)
    seed: int = _param(0, "Sampling seed; the same seed with the same parameters gives the same answer.",
                       label="Seed")
    stop: tuple[str, ...] = _param((), "Strings that end the answer; the answer is cut before the first one "
                                   "(repeatable; one per line in the Chat tab).", label="Stop strings (one per line)")

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be a whole number >= 1, got {self.max_new_tokens!r}")
        if self.do_sample and not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0 when sampling (turn sampling off for greedy answers), "
                              f"got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0 turns it off), got {self.top_k}")
        if not self.repetition_penalty > 0:
            raise ConfigError(f"repetition_penalty must be > 0 (1.0 turns it off), got {self.repetition_penalty}")

    @classmethod
    def from_values(cls, values: Mapping[str, Any], **defaults: Any) -> "GenerationParams":
        """Parameters from values keyed by field name (widget or CLI values: numbers as floats or text, stop
        strings as a list or one per line); a missing or blank value takes ``defaults`` or the field's default.

        Raises:
            ConfigError: a value is not a number or out of range (the message names the field).
        """
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = values.get(f.name)
            if value is None or (isinstance(value, str) and not value.strip() and _kind(f) != "tuple"):
                if f.name in defaults:
                    kwargs[f.name] = defaults[f.name]
                continue
            kwargs[f.name] = _typed(f, value)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "GenerationParams":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["stop"] = list(self.stop)
        return out


def _kind(f: dataclasses.Field) -> str:
    """``int``, ``float``, ``bool`` or ``tuple`` (annotations are strings here: ``from __future__``)."""
    name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return "tuple" if name.startswith("tuple") else name


def _typed(f: dataclasses.Field, value: Any) -> Any:
    kind = _kind(f)
    if kind == "tuple":
        items = value.splitlines() if isinstance(value, str) else list(value)
        return tuple(s for s in items if s.strip())
    if kind == "bool":
        return bool(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{f.name} must be a number, got {value!r}") from None
    if kind == "int":
        if number != int(number):
            raise ConfigError(f"{f.name} must be a whole number, got {value!r}")
        return int(number)
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per generation field (``--max-new-tokens``, ``--sample``, ``--stop`` repeatable, ...), with the
    field's help and default."""
    for f in dataclasses.fields(GenerationParams):
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        kind = _kind(f)
        if kind == "bool":
            parser.add_argument(flag, dest=f.name, action="store_true", help=f.metadata["help"])
        elif kind == "tuple":
            parser.add_argument(flag, dest=f.name, action="append", default=[], metavar="TEXT",
                                help=f.metadata["help"])
        else:
            parser.add_argument(flag, dest=f.name, type=int if kind == "int" else float, default=f.default,
                                help=f.metadata["help"])


def from_args(args: argparse.Namespace) -> GenerationParams:
    """The parameters the flags of :func:`add_arguments` describe."""
    return GenerationParams.from_values({f.name: getattr(args, f.name) for f in dataclasses.fields(GenerationParams)})


GREEDY = GenerationParams()


def generate_kwargs(params: GenerationParams, tokenizer: Any, model: Any,
                    stop_events: tuple[threading.Event, ...] = ()) -> dict[str, Any]:
    """Keyword arguments for ``model.generate``: a full GenerationConfig (so the model's own sampling defaults
    never leak in; stop strings included, matched by transformers' ``StopStringCriteria``), the tokenizer those
    need, the seeded sampler, and the stop-button criterion."""
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    eos = _eos_ids(tokenizer, model)
    config = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1,
                              temperature=1.0, top_p=1.0, top_k=50, repetition_penalty=params.repetition_penalty,
                              eos_token_id=eos, pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id
                              is not None else (eos[0] if eos else None), use_cache=True,
                              stop_strings=list(params.stop) or None,
                              suppress_tokens=getattr(getattr(model, "generation_config", None), "suppress_tokens",
                                                      None))
    processors = LogitsProcessorList(_sampling_processors(params))
    criteria = StoppingCriteriaList([StopOnEvents(stop_events)] if stop_events else [])
    return {"generation_config": config, "logits_processor": processors, "stopping_criteria": criteria,
            "tokenizer": tokenizer}


def _eos_ids(tokenizer: Any, model: Any) -> list[int]:
    ids: list[int] = []
    gen = getattr(model, "generation_config", None)
    for value in (getattr(gen, "eos_token_id", None), tokenizer.eos_token_id):
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if v is not None and v not in ids:
                ids.append(int(v))
    return ids


def _sampling_processors(params: GenerationParams) -> list[Any]:
    if not params.do_sample:
        return []
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    out: list[Any] = []
    if params.temperature != 1.0:
        out.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k:
        out.append(TopKLogitsWarper(top_k=params.top_k))
    if params.top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=params.top_p))
    out.append(SeededSampler(params.seed))
    return out


class SeededSampler:
    """A logits processor that draws the next token with its own ``torch.Generator`` and leaves only that token
    possible, so greedy selection inside ``generate`` picks it."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._gen: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self._gen is None:
            self._gen = torch.Generator(device=scores.device).manual_seed(self.seed)
        probs = torch.softmax(scores.float(), dim=-1)
        chosen = torch.multinomial(probs, num_samples=1, generator=self._gen)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen, 0.0)


class StopOnEvents:
    """Ends generation when one of ``stop_events`` is set (the stop button, or a stop string seen while
    streaming)."""

    def __init__(self, stop_events: tuple[threading.Event, ...] = ()) -> None:
        self.stop_events = tuple(e for e in stop_events if e is not None)

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch

        hit = any(e.is_set() for e in self.stop_events)
        return torch.full((input_ids.shape[0],), hit, dtype=torch.bool, device=input_ids.device)


@dataclass
class StopScanner:
    """Cuts streamed text at the first stop string and holds back a tail that may still become one."""

    stop: tuple[str, ...] = ()
    text: str = ""
    emitted: int = 0
    hit: str | None = None

    def feed(self, chunk: str) -> str:
        """Add ``chunk``; return the text that is now safe to show."""
        if self.hit is not None:
            return ""
        self.text += chunk
        if self.stop:
            cut = min((i for i in (self.text.find(s) for s in self.stop) if i >= 0), default=-1)
            if cut >= 0:
                self.hit = next(s for s in self.stop if self.text.find(s) == cut)
                self.text = self.text[:cut]
                return self._release(len(self.text))
            return self._release(len(self.text) - self._held_back())
        return self._release(len(self.text))

    def flush(self) -> str:
        """The end of the stream: release everything held back."""
        return self._release(len(self.text))

    def _held_back(self) -> int:
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), 0, -1):
                if self.text.endswith(s[:n]):
                    longest = max(longest, n)
                    break
        return longest

    def _release(self, upto: int) -> str:
        upto = max(upto, self.emitted)
        out = self.text[self.emitted:upto]
        self.emitted = upto
        return out


def cut_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """``text`` before the first stop string, and whether one was found."""
    at = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:at], True) if at >= 0 else (text, False)
