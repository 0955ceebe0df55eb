"""Training events and the append-only EventLog the UI polls.

Every event is a frozen dataclass. The log mirrors each one to ``events.jsonl`` as one JSON object per line: a
``type`` field plus the event's fields at top level, e.g.
``{"type": "log", "time": 1764230000.1, "step": 10, "loss": 1.23, "learning_rate": 0.0002, ...}``,
so other tools can read it and a reloaded page (or a finished run) can be replayed with :meth:`EventLog.read`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base class; ``type`` names the event in events.jsonl."""

    type: ClassVar[str] = "event"
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        out = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                value = None  # JSON has no NaN/inf
            out[f.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class Started(Event):
    """The model is loaded and the first step is about to run."""

    type: ClassVar[str] = "started"
    run_dir: str
    model: str
    total_steps: int
    start_step: int = 0
    """0 for a fresh run; the checkpoint's step when resumed."""
    world_size: int = 1
    device: str = "cpu"
    train_rows: int = 0
    eval_rows: int = 0
    gradient_checkpointing: bool = False
    attention_reason: str = ""
    loaded: dict[str, Any] = field(default_factory=dict)
    estimate: dict[str, Any] = field(default_factory=dict)
    speed: list[str] = field(default_factory=list)
    """The speed plan: one line per optimization, what is on and why (attention, packing, booster, gradient
    checkpointing, k-bit preparation, micro-batch)."""


@dataclass(frozen=True, kw_only=True)
class Log(Event):
    """One logging step of training."""

    type: ClassVar[str] = "log"
    step: int
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    """Non-padding tokens per second, all processes together."""
    padding_share: float | None = None
    """Share of the batch positions that were padding since the last log (0 with padding-free packing)."""
    mfu: float | None = None
    """Model FLOPs utilisation per device since the last log, 0..1 (``4N + 3A`` FLOPs per real token for LoRA;
    None when the device's peak is unknown)."""
    samples_per_s: float | None = None
    steps_per_s: float | None = None
    num_tokens: int | None = None
    """Non-padding tokens trained so far."""
    memory_bytes: int | None = None
    """GPU memory allocated now (or the process's resident memory on CPU)."""
    peak_memory_bytes: int | None = None
    total_steps: int | None = None
    eta_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    """The method's own logged signals (``rewards/chosen``, ``rewards/margins``, ``rewards/accuracies``, ``kl``,
    ``nll_loss``, ``log_odds_ratio``, ``logps/*``, token accuracy...), as TRL names them."""


@dataclass(frozen=True, kw_only=True)
class Eval(Event):
    """An evaluation on the held-out split."""

    type: ClassVar[str] = "eval"
    step: int
    eval_loss: float | None = None
    epoch: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Event):
    """A checkpoint (adapter + optimizer + trainer state) was written."""

    type: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True, kw_only=True)
class Probe(Event):
    """A probe prompt answered by the model being trained (at a checkpoint)."""

    type: ClassVar[str] = "probe"
    step: int
    prompt: str
    answer: str


@dataclass(frozen=True, kw_only=True)
class Completions(Event):
    """Completions GRPO sampled at a logging step, each with its rewards (a few per step, for the Train tab)."""

    type: ClassVar[str] = "completions"
    step: int
    samples: list[dict[str, Any]] = field(default_factory=list)
    """``{"prompt", "completion", "rewards": {name: value}, "reward": weighted total, "advantage"}`` each."""


@dataclass(frozen=True, kw_only=True)
class Note(Event):
    """Something worth telling (memory estimate vs measured, memory released, a fallback taken)."""

    type: ClassVar[str] = "note"
    message: str
    level: str = "info"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Finished(Event):
    """Training ran to the end; the adapter is saved."""

    type: ClassVar[str] = "finished"
    step: int
    adapter_path: str
    train_loss: float | None = None
    runtime_s: float | None = None
    peak_memory_bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class Stopped(Event):
    """Stopped on request; the adapter and a resumable checkpoint are saved."""

    type: ClassVar[str] = "stopped"
    step: int
    adapter_path: str | None = None
    checkpoint_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class Failed(Event):
    """Training failed. ``message`` is for the user, ``suggestion`` says what to change; the traceback is in
    train.log. The run directory and the last checkpoint are kept."""

    type: ClassVar[str] = "failed"
    message: str
    suggestion: str = ""
    step: int | None = None
    checkpoint_path: str | None = None
    released_bytes: int | None = None


TERMINAL = (Finished, Stopped, Failed)
EVENT_TYPES: dict[str, type[Event]] = {c.type: c for c in (Started, Log, Eval, Checkpoint, Probe, Note, Finished,
                                                            Stopped, Failed, Completions)}


def event_from_dict(raw: dict[str, Any]) -> Event:
    """Rebuild an event from its JSON form (unknown keys are ignored, unknown types become a Note)."""
    cls = EVENT_TYPES.get(raw.get("type", ""))
    if cls is None:
        return Note(message=f"unknown event {raw.get('type')!r}", level="warning", data=dict(raw))
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in raw.items() if k in names}
    try:
        return cls(**kwargs)
    except TypeError:
        return Note(message=f"unreadable {raw.get('type')} event", level="warning", data=dict(raw))


class EventLog:
    """Append-only, thread-safe list of events, mirrored to ``path`` (events.jsonl) when given.

    Readers keep a cursor: ``events, cursor = log.since(cursor)``. ``wait(cursor, timeout)`` blocks until
    something new arrives (no busy-waiting).
    """

    def __init__(self, path: str | Path | None = None, events: Iterable[Event] = ()) -> None:
        self.path = Path(path) if path is not None else None
        self._events: list[Event] = list(events)
        self._cond = threading.Condition(threading.Lock())
        self._repaired = False

    def append(self, event: Event) -> None:
        """Keep ``event`` and write it as one line. The first write repairs a tail cut by a crash (see
        :func:`repair_tail`).

        Raises:
            DiskFullError / StorageError: the line could not be written (the event is still kept in memory).
        """
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()
            if self.path is not None:
                line = json.dumps(event.to_dict(), ensure_ascii=False, default=str) + "\n"
                try:
                    if not self._repaired:
                        repair_tail(self.path)
                        self._repaired = True
                    with self.path.open("a", encoding="utf-8") as fh:
                        fh.write(line)
                except OSError as exc:
                    from studio.diskspace import storage_error

                    raise storage_error(exc, self.path, "events log") from None

    def since(self, cursor: int = 0) -> tuple[list[Event], int]:
        """Events after ``cursor`` and the new cursor."""
        with self._cond:
            n = len(self._events)
            return self._events[max(cursor, 0):n], n

    def wait(self, cursor: int, timeout: float | None = None) -> bool:
        """Block until there are events after ``cursor`` (True) or the timeout passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._events) > cursor, timeout)

    def all(self) -> list[Event]:
        return self.since(0)[0]

    def last(self, cls: type[Event] | tuple[type[Event], ...] = Event) -> Event | None:
        """The newest event of the given class(es), or None."""
        with self._cond:
            return next((e for e in reversed(self._events) if isinstance(e, cls)), None)

    def __len__(self) -> int:
        with self._cond:
            return len(self._events)

    @classmethod
    def read(cls, path: str | Path) -> "EventLog":
        """Replay an events.jsonl (a finished or running run) into a read-only-by-convention log."""
        path = Path(path)
        events: list[Event] = []
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line:
                    continue
                try:
                    events.append(event_from_dict(json.loads(line)))
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
        return cls(None, events)

    @classmethod
    def open(cls, path: str | Path) -> "EventLog":
        """Continue an existing events.jsonl (resume): earlier events are loaded, new ones appended."""
        old = cls.read(path)
        return cls(path, old.all())


def repair_tail(path: str | Path) -> str:
    """Make ``path`` end on a line boundary before appending, so a new event never lands on a line a crash cut.

    A last line that is complete JSON only lacks its newline (one is added); an unreadable fragment is cut off
    (it is copied to ``events.jsonl.cut`` first). Returns what was done: ``""``, ``"newline"`` or ``"truncated"``.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return ""
    with path.open("rb+") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - 1))
        if fh.read(1) == b"\n":
            return ""
        block = min(size, 1 << 16)
        while True:
            fh.seek(size - block)
            tail = fh.read(block)
            cut = tail.rfind(b"\n")
            if cut >= 0 or block == size:
                break
            block = min(size, block * 4)
        start = size - block + cut + 1
        fragment = tail[cut + 1:]
        try:
            json.loads(fragment.decode("utf-8"))
            fh.seek(0, 2)
            fh.write(b"\n")
            return "newline"
        except (ValueError, UnicodeDecodeError):
            with path.with_name(path.name + ".cut").open("ab") as keep:
                keep.write(fragment + b"\n")
            fh.truncate(start)
            return "truncated"
