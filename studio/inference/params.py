"""Generation parameters and the small pieces ``generate()`` is given: a private-seed sampler and stop criteria.

Sampling draws from a ``torch.Generator`` owned by the request, never from the global RNG, so the same seed gives
the same answer whatever else runs in the process (a training thread included), and a chat request never
reseeds a training run.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from studio.errors import ConfigError


@dataclass(frozen=True)
class GenerationParams:
    """How to decode. The defaults are deterministic (greedy), so the same prompt gives the same answer."""

    max_new_tokens: int = 128
    """Most tokens to generate."""
    do_sample: bool = False
    """Sample (with ``seed``) instead of greedy decoding."""
    temperature: float = 0.7
    """Sampling temperature (> 0); ignored when greedy."""
    top_p: float = 0.95
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p (0 < top_p <= 1)."""
    top_k: int = 50
    """Keep only the k most likely tokens (0 turns it off)."""
    repetition_penalty: float = 1.0
    """> 1 discourages repeating tokens already in the prompt or answer."""
    seed: int = 0
    """Sampling seed; the same seed with the same parameters gives the same answer."""
    stop: tuple[str, ...] = ()
    """Strings that end the answer; the answer is cut before the first one."""

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))
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

    def replace(self, **changes: Any) -> "GenerationParams":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out["stop"] = list(self.stop)
        return out


GREEDY = GenerationParams()


def generate_kwargs(params: GenerationParams, tokenizer: Any, model: Any, prompt_len: int,
                    stop_events: tuple[threading.Event, ...] = ()) -> dict[str, Any]:
    """Keyword arguments for ``model.generate``: a full GenerationConfig (so the model's own sampling defaults
    never leak in), the seeded sampler, and the stop criteria."""
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    eos = _eos_ids(tokenizer, model)
    config = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1,
                              temperature=1.0, top_p=1.0, top_k=50, repetition_penalty=params.repetition_penalty,
                              eos_token_id=eos, pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id
                              is not None else (eos[0] if eos else None), use_cache=True,
                              suppress_tokens=getattr(getattr(model, "generation_config", None), "suppress_tokens",
                                                      None))
    processors = LogitsProcessorList(_sampling_processors(params))
    criteria = StoppingCriteriaList([StopCriteria(tokenizer, prompt_len, params.stop, stop_events)])
    return {"generation_config": config, "logits_processor": processors, "stopping_criteria": criteria}


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


class StopCriteria:
    """Ends generation when one of ``stop_events`` is set (the stop button) or a stop string appears in the
    answer."""

    def __init__(self, tokenizer: Any, prompt_len: int, stop: tuple[str, ...] = (),
                 stop_events: tuple[threading.Event, ...] = ()) -> None:
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.stop = tuple(stop)
        self.stop_events = tuple(stop_events)
        # enough trailing tokens to contain the longest stop string (every token decodes to >= 1 char, mostly)
        self._window = max((len(s) for s in self.stop), default=0) + 4

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if any(e.is_set() for e in self.stop_events):
            return done.fill_(True)
        if self.stop:
            for row in range(input_ids.shape[0]):
                tail = input_ids[row, max(self.prompt_len, input_ids.shape[1] - self._window):]
                text = self.tokenizer.decode(tail, skip_special_tokens=True)
                if any(s in text for s in self.stop):
                    done[row] = True
        return done


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
