"""The chat engine: one base model, several adapters, streamed answers, base vs tuned on one copy of the weights.

``ChatEngine.from_run(run_dir)`` loads the run's base model once (quantized as trained, 4-bit included) and its
adapter. Answers stream through ``TextIteratorStreamer`` from a worker thread; the tuned answer runs with the
adapter active, the base answer inside ``with model.disable_adapter():``, with the same prompt, seed and
parameters. Further adapters (other runs, folders, Hub ids) are added with ``load_adapter`` and chosen per
request (``set_adapter`` under the engine lock), never reloading the base. One lock serialises generation, so two
browser tabs never see each other's adapter state.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from studio.damage import check_adapter, damaged, is_damage
from studio.errors import ConfigError, ModelError
from studio.inference.batch import adapter_context, generate_texts, mean_loss, token_nll
from studio.inference.params import GREEDY, GenerationParams, generate_kwargs
from studio.inference.prompt import Prompt, PromptBuilder, PromptTooLong, run_prompt_setup
from studio.inference.sources import adapter_name_for, resolve_adapter_source
from studio.inference.streams import CompareStream, Reply, ReplyStream

BASE = "base"
ADAPTER_TODO = "train the run again, or open one of its checkpoints instead"
"""The name that selects the base model (adapters disabled)."""


@dataclass
class AdapterInfo:
    """One loaded adapter and how to prompt it (its own run's template, else the engine's)."""

    name: str
    source: str
    builder: PromptBuilder
    run_dir: Path | None = None
    config: Any = None


class ChatEngine:
    """A loaded base model with its adapters.

    Args:
        model: a peft ``PeftModel`` (or a plain model: base answers only).
        tokenizer: the run's tokenizer.
        builder: the prompt builder used for the base model and adapters without a run of their own.
        base_model: the base model's name (to check that another run's adapter fits).
    """

    def __init__(self, model: Any, tokenizer: Any, builder: PromptBuilder, *, base_model: str = "",
                 base_config: Any = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.builder = builder
        self.base_model = base_model
        self.base_config = base_config
        self.adapters: dict[str, AdapterInfo] = {}
        self.active: str | None = None
        self.loaded_from: tuple[Path, str, str | None] | None = None
        """``(run dir, device, quantization)`` that :meth:`from_run` was given (None for other engines)."""
        self._lock = threading.Lock()
        self._live: set[threading.Event] = set()
        self._live_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_run(cls, run_dir: str | Path, *, device: str = "auto", quantization: str | None = None,
                 adapter: str | Path | None = None) -> "ChatEngine":
        """Load a run's base model (as trained, or with ``quantization`` none/8bit/4bit) and its adapter.

        ``adapter`` picks a checkpoint folder instead of the run's final adapter.

        Raises:
            ModelError: the base model or the adapter can't be loaded.
            ConfigError: the run's config.yaml is invalid.
        """
        from studio import runs
        from studio.config import load_config
        from studio.modeling import load_base

        run_dir = Path(run_dir)
        cfg = load_config(run_dir / runs.CONFIG)
        model_cfg = cfg.model if quantization is None else dataclasses.replace(cfg.model, quantization=quantization)
        check_adapter(resolve_adapter_source(adapter or run_dir)[0], ADAPTER_TODO)  # named before the base loads
        model, tokenizer = _quiet(load_base, model_cfg, device=device)
        builder, _ = run_prompt_setup(cfg, tokenizer, run_dir)
        engine = cls(model, tokenizer, builder, base_model=cfg.model.name_or_path, base_config=model_cfg)
        engine.load_adapter(adapter or run_dir, activate=True)
        engine.loaded_from = (run_dir.resolve(), device, quantization)
        return engine

    def serves(self, run_dir: str | Path, *, device: str = "auto", quantization: str | None = None) -> bool:
        """Whether this engine is what ``from_run(run_dir, device=..., quantization=...)`` would load (a cache
        can keep it instead of loading again)."""
        return self.loaded_from == (Path(run_dir).resolve(), device, quantization)

    @classmethod
    def from_base(cls, model_cfg: Any, builder_cfg: Any = None, *, device: str = "auto") -> "ChatEngine":
        """A base model alone (adapters can be added later); prompts follow ``builder_cfg`` (a RunConfig) if given.
        """
        from studio.config import RunConfig
        from studio.modeling import load_base

        model, tokenizer = _quiet(load_base, model_cfg, device=device)
        builder, _ = run_prompt_setup(builder_cfg or RunConfig(model=model_cfg), tokenizer)
        return cls(model, tokenizer, builder, base_model=model_cfg.name_or_path, base_config=model_cfg)

    def load_adapter(self, source: str | Path, name: str | None = None, *, activate: bool = False) -> str:
        """Add an adapter from a run directory, a checkpoint or adapter folder, or a Hub id, without reloading the
        base. Returns its name (unique among the loaded ones).

        Raises:
            ModelError: no adapter there, it was trained on another base model, or peft can't load it.
        """
        from studio import runs
        from studio.config import load_config

        path, run_dir = resolve_adapter_source(source)
        cfg = load_config(run_dir / runs.CONFIG) if run_dir is not None else None
        if cfg is not None and self.base_model and cfg.model.name_or_path != self.base_model:
            raise ModelError(f"{run_dir.name} was trained on {cfg.model.name_or_path}, but the loaded base model is "
                             f"{self.base_model}; open that run on its own")
        name = name or adapter_name_for(run_dir if run_dir is not None and Path(path).name == runs.ADAPTER
                                        else path)
        base, n = name, 1
        while name in self.adapters or name == BASE:
            n += 1
            name = f"{base}_{n}"
        builder = run_prompt_setup(cfg, self.tokenizer, run_dir)[0] if cfg is not None else self.builder
        todo = ADAPTER_TODO
        check_adapter(path, todo)
        with self._lock:
            try:
                self.model = _quiet(_attach, self.model, path, name)
            except Exception as exc:
                if is_damage(exc):
                    raise damaged(path, todo) from None
                if not isinstance(exc, (OSError, ValueError, RuntimeError, KeyError)):
                    raise
                raise ModelError(f"adapter {source} could not be loaded onto {self.base_model or 'the base'}: "
                                 f"{str(exc).splitlines()[0][:240]}") from None
            self.model.eval()
            self.adapters[name] = AdapterInfo(name, str(source), builder, run_dir, cfg)
            if activate or self.active is None:
                self.model.set_adapter(name)
                self.active = name
        return name

    def set_adapter(self, name: str) -> None:
        """Make ``name`` the default adapter for requests that don't name one.

        Raises:
            ModelError: no such adapter.
        """
        self._check(name)
        with self._lock:
            self.model.set_adapter(name)
            self.active = name

    def _check(self, name: str | None) -> str | None:
        if name is None or name == BASE:
            return name
        if name not in self.adapters:
            raise ModelError(f"no adapter named {name!r} is loaded; loaded: {', '.join(self.adapters) or 'none'}")
        return name

    def builder_for(self, adapter: str | None = None) -> PromptBuilder:
        """The prompt builder of an adapter (its run's template), the active one by default."""
        name = self._check(adapter) if adapter is not None else self.active
        info = self.adapters.get(name) if name else None
        return info.builder if info else self.builder

    def default_system_prompt(self, adapter: str | None = None) -> str:
        return self.builder_for(adapter).default_system_prompt

    @property
    def device(self) -> str:
        try:
            return str(next(self.model.parameters()).device)
        except StopIteration:  # pragma: no cover
            return "cpu"

    # ------------------------------------------------------------------------------------------------ prompts
    def build_prompt(self, message: str, history: Iterable[Any] | None = None, system_prompt: str | None = None, *,
                     adapter: str | None = None, max_new_tokens: int = 0,
                     max_input_tokens: int | None = None) -> Prompt:
        """The prompt for ``message`` in the adapter's training format, history trimmed to fit."""
        builder = self.builder_for(None if adapter == BASE else adapter)
        limit = max_input_tokens or builder.max_input_tokens
        ctx = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        if not (ctx and max_new_tokens and ctx - max_new_tokens < limit):
            return builder.build(message, history, system_prompt, max_input_tokens=limit)
        try:  # the answer's length squeezes the prompt: when it no longer fits, the answer length is to blame
            return builder.build(message, history, system_prompt, max_input_tokens=max(1, ctx - max_new_tokens))
        except PromptTooLong:
            need = len(builder.build(message, history, system_prompt, max_input_tokens=limit).input_ids)
            raise ConfigError(f"max new tokens {max_new_tokens} leaves no room for this prompt: the model reads "
                              f"{ctx} tokens in all and the prompt needs {need}; ask for at most "
                              f"{max(ctx - need, 0)} new tokens") from None

    # --------------------------------------------------------------------------------------------- generation
    def stream(self, message: str | None = None, history: Iterable[Any] | None = None, *,
               params: GenerationParams = GREEDY, system_prompt: str | None = None, adapter: str | None = None,
               stop_event: threading.Event | None = None, prompt: Prompt | None = None,
               max_input_tokens: int | None = None) -> "ReplyStream":
        """Stream one answer: iterate the result for text pieces; afterwards it holds ``text``, ``finish_reason``.

        ``adapter``: an adapter name, :data:`BASE` for the base model, or None for the active adapter.
        ``prompt``: a prebuilt prompt (``build_prompt``) instead of ``message``/``history``.
        """
        target = self._check(adapter) if adapter is not None else (self.active or BASE)
        if prompt is None:
            if message is None:
                raise ValueError("stream() needs a message or a prompt")
            prompt = self.build_prompt(message, history, system_prompt, adapter=target,
                                       max_new_tokens=params.max_new_tokens, max_input_tokens=max_input_tokens)
        return ReplyStream(self, prompt, params, target, stop_event or threading.Event())

    def generate(self, message: str | None = None, history: Iterable[Any] | None = None, **kwargs: Any) -> "Reply":
        """The whole answer at once (same arguments as :meth:`stream`)."""
        s = self.stream(message, history, **kwargs)
        for _ in s:
            pass
        return s.reply()

    def stream_compare(self, message: str, history: Iterable[Any] | None = None, *,
                       base_history: Iterable[Any] | None = None, params: GenerationParams = GREEDY,
                       system_prompt: str | None = None, adapter: str | None = None,
                       stop_event: threading.Event | None = None,
                       max_input_tokens: int | None = None) -> "CompareStream":
        """Base and tuned answers to the same prompt, seed and parameters, on one copy of the base weights.

        Iterating yields ``(base_text, tuned_text)`` (the whole text so far of each); the tuned answer streams
        first, then the base answer. ``base_history`` is the base pane's own conversation (default: ``history``).

        Raises:
            ModelError: no adapter is loaded.
        """
        tuned = self._check(adapter) if adapter is not None else self.active
        if tuned is None or tuned == BASE:
            raise ModelError("compare needs an adapter: load a run's adapter first")
        stop_event = stop_event or threading.Event()
        builder = self.builder_for(tuned)
        system = builder.default_system_prompt if system_prompt is None else system_prompt
        limits = dict(max_new_tokens=params.max_new_tokens, max_input_tokens=max_input_tokens)
        tuned_prompt = self.build_prompt(message, history, system, adapter=tuned, **limits)
        base_prompt = tuned_prompt if base_history is None else self.build_prompt(
            message, base_history, system, adapter=tuned, **limits)
        return CompareStream(ReplyStream(self, base_prompt, params, BASE, stop_event),
                             ReplyStream(self, tuned_prompt, params, tuned, stop_event))

    def compare(self, message: str, history: Iterable[Any] | None = None, **kwargs: Any) -> dict[str, "Reply"]:
        """``{"base": Reply, "tuned": Reply}`` (same arguments as :meth:`stream_compare`)."""
        s = self.stream_compare(message, history, **kwargs)
        for _ in s:
            pass
        return {"base": s.base.reply(), "tuned": s.tuned.reply()}

    def generate_batch(self, prompts: list[list[int]], params: GenerationParams = GREEDY, *,
                       adapter: str | None = None, batch_size: int = 8, progress: Any = None,
                       stop_event: threading.Event | None = None, answer_end: Any = None) -> list[str]:
        """Answers to several token-id prompts at once (left-padded batches), not streamed; ``adapter=BASE`` for
        the base model; ``answer_end`` ends each answer early (see :func:`generate_texts`). Used by evaluation."""
        with self._lock, self._using(adapter) as base:
            return generate_texts(self.model, self.tokenizer, prompts, params, base=base, batch_size=batch_size,
                                  progress=progress, stop_event=stop_event, answer_end=answer_end)

    def loss(self, rows: list[tuple[list[int], list[int]]], *, adapter: str | None = None, batch_size: int = 4,
             progress: Any = None) -> tuple[list[tuple[float, int]], float | None, float | None]:
        """Per-row ``(summed NLL, tokens)`` of rendered ``(input_ids, loss_mask)`` rows, the mean loss and its
        perplexity, for an adapter or the base model."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with self._lock, self._using(adapter) as base:
            parts = token_nll(self.model, rows, pad_id=pad, base=base, batch_size=batch_size, progress=progress)
        return (parts, *mean_loss(parts))

    @contextlib.contextmanager
    def _using(self, adapter: str | None) -> Iterator[bool]:
        """Inside the lock: select ``adapter`` (None: the active one); yields True for the base model."""
        target = self._check(adapter) if adapter is not None else (self.active or BASE)
        if self.model is None:
            raise ModelError("the chat model was unloaded")
        if target != BASE and self.model.active_adapter != target:
            self.model.set_adapter(target)
        try:
            yield target == BASE
        finally:
            if self.active and target != BASE and self.model.active_adapter != self.active:
                self.model.set_adapter(self.active)

    def stop(self) -> None:
        """End every answer being generated now (the stop button)."""
        with self._live_lock:
            for event in self._live:
                event.set()

    def stop_and_wait(self, timeout: float = 30.0) -> bool:
        """Stop every answer and wait until their threads are done (so a Ctrl-C exit never kills one mid-step)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.stop()  # again each turn: a thread that had not registered its stop event yet
            alive = [t for t in threading.enumerate() if t.name.startswith("studio-generate-") and t.is_alive()]
            if not alive:
                return True
            alive[0].join(0.05)
        return False

    @property
    def busy(self) -> bool:
        """An answer is being generated."""
        return self._lock.locked()

    def close(self) -> None:
        """Stop, drop the model and release its memory."""
        import gc

        self.stop()
        with self._lock:
            self.model = None
        gc.collect()
        with contextlib.suppress(Exception):
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # ------------------------------------------------------------------------------------------- worker side
    def _run(self, stream: "ReplyStream") -> None:
        """Generate in the worker thread (holding the engine lock), feeding the stream's streamer."""
        import torch

        with self._live_lock:
            self._live.add(stream.stop_event)
        try:
            with self._lock:
                if stream.stop_event.is_set() or stream.halt.is_set():
                    return
                model = self.model
                if model is None:
                    raise ModelError("the chat model was unloaded")
                if stream.adapter not in (None, BASE) and model.active_adapter != stream.adapter:
                    model.set_adapter(stream.adapter)
                off = adapter_context(model, stream.adapter == BASE)
                ids = torch.tensor([stream.prompt.input_ids], device=_input_device(model))
                kwargs = generate_kwargs(stream.params, self.tokenizer, model, (stream.stop_event, stream.halt))
                stream.started_at = time.perf_counter()
                with off, torch.inference_mode(), warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
                    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                         streamer=stream.streamer, **kwargs)
                stream.n_tokens = int(out.shape[1] - ids.shape[1])
                stream.token_ids = out[0, ids.shape[1]:].tolist()
                if self.active and stream.adapter != BASE and model.active_adapter != self.active:
                    model.set_adapter(self.active)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side, which raises it
            stream.error = exc
        finally:
            stream.ended_at = time.perf_counter()
            with self._live_lock:
                self._live.discard(stream.stop_event)
            stream.streamer.end()


def _input_device(model: Any) -> Any:
    return model.get_input_embeddings().weight.device


def _attach(model: Any, path: str, name: str) -> Any:
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.load_adapter(path, adapter_name=name, is_trainable=False)
        return model
    return PeftModel.from_pretrained(model, path, adapter_name=name, is_trainable=False)


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
        warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter.*")
        return fn(*args, **kwargs)
