"""What a streamed answer looks like to its reader: ``ReplyStream`` (text pieces), ``CompareStream`` (base and
tuned texts so far) and the finished ``Reply``."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

from studio.errors import ModelError, StudioError
from studio.inference.params import GenerationParams, StopScanner
from studio.inference.prompt import Prompt


class Generator(Protocol):
    """What a stream needs of its engine (``ChatEngine``): a tokenizer, and a generation run fed into the stream."""

    tokenizer: Any

    def _run(self, stream: "ReplyStream") -> None: ...


@dataclass(frozen=True)
class Reply:
    """A finished answer."""

    text: str
    finish_reason: str
    """eos, length, stop_string, stopped (the stop button) or error."""
    adapter: str
    n_tokens: int
    seconds: float
    prompt: Prompt

    @property
    def tokens_per_s(self) -> float:
        return self.n_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def notice(self) -> str | None:
        return self.prompt.notice

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "finish_reason": self.finish_reason, "adapter": self.adapter,
                "n_tokens": self.n_tokens, "seconds": round(self.seconds, 3), "trimmed": self.prompt.trimmed,
                "notice": self.notice}


class ReplyStream(Iterator[str]):
    """Text pieces of one answer as they are generated. Generation starts on the first ``next()``.

    Stop strings end generation through transformers' ``StopStringCriteria`` (token level); the text shown is cut
    here (the piece that might be the start of one is held back until it is decided), and a stop string seen in
    the decoded text ends generation too (``halt``).
    ``close()`` (or the engine's ``stop()``) ends generation within a token.
    """

    def __init__(self, engine: Generator, prompt: Prompt, params: GenerationParams, adapter: str,
                 stop_event: threading.Event) -> None:
        from transformers import TextIteratorStreamer

        self.engine, self.prompt, self.params, self.adapter = engine, prompt, params, adapter
        self.stop_event = stop_event
        """Shared with the other pane in compare mode: the stop button."""
        self.halt = threading.Event()
        """This answer's own end (a stop string was seen)."""
        self.streamer = TextIteratorStreamer(engine.tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.text = ""
        self.finish_reason: str | None = None
        self.error: BaseException | None = None
        self.n_tokens = 0
        self.token_ids: list[int] = []
        self.started_at = self.ended_at = 0.0
        self._scanner = StopScanner(params.stop)
        self._thread: threading.Thread | None = None
        self._done = False

    @property
    def notice(self) -> str | None:
        return self.prompt.notice

    def start(self) -> "ReplyStream":
        if self._thread is None:
            self._thread = threading.Thread(target=self.engine._run, args=(self,), daemon=True,
                                            name=f"studio-generate-{self.adapter}")
            self._thread.start()
        return self

    def __next__(self) -> str:
        if self._done:
            raise StopIteration
        self.start()
        for chunk in self.streamer:
            out = self._scanner.feed(chunk)
            if self._scanner.hit is not None:
                self.halt.set()
            if out:
                self.text += out
                return out
        return self._finish()

    def _finish(self) -> str:
        assert self._thread is not None
        self._thread.join()
        rest = self._scanner.flush()
        self.text += rest
        if self.error is not None:
            self._done, self.finish_reason = True, "error"
            err = self.error
            if isinstance(err, StudioError):
                raise err
            from studio.modeling.kbit_cpu import explain

            if (packing := explain(err)) is not None:
                raise packing from err
            raise ModelError(f"generation failed: {type(err).__name__}: {str(err).splitlines()[0][:240]}") from err
        if rest:
            return rest
        self._done = True
        if self._scanner.hit is not None:
            self.finish_reason = "stop_string"
        elif self.stop_event.is_set():
            self.finish_reason = "stopped"
        elif self.n_tokens >= self.params.max_new_tokens:
            self.finish_reason = "length"
        else:
            self.finish_reason = "eos"
        raise StopIteration

    def close(self) -> None:
        """Stop generating (the rest of the stream ends promptly)."""
        self.stop_event.set()

    def reply(self) -> Reply:
        """The finished answer (consumes what is left of the stream)."""
        for _ in self:
            pass
        return Reply(self.text, self.finish_reason or "eos", self.adapter, self.n_tokens,
                     max(self.ended_at - self.started_at, 0.0), self.prompt)


class CompareStream(Iterator[tuple[str, str]]):
    """``(base_text, tuned_text)`` so far, as both answers stream (tuned first, then base)."""

    def __init__(self, base: ReplyStream, tuned: ReplyStream) -> None:
        self.base, self.tuned = base, tuned
        self._order = [tuned, base]

    @property
    def notice(self) -> str | None:
        return self.tuned.notice or self.base.notice

    def __next__(self) -> tuple[str, str]:
        while self._order:
            try:
                next(self._order[0])
                return self.base.text, self.tuned.text
            except StopIteration:
                self._order.pop(0)
        raise StopIteration

    def close(self) -> None:
        self.base.close()
        self.tuned.close()
