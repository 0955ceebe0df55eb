"""The training engine: ``TrainingJob`` runs TRL's SFTTrainer (+ peft LoRA) in a daemon thread.

A TrainerCallback turns the trainer's logs into events (studio.events) appended to the job's EventLog, which is
mirrored to the run directory's events.jsonl. Stop sets a ``threading.Event`` that the callback turns into
``control.should_training_stop`` (plus a checkpoint), then the adapter is saved. Any failure, out-of-memory
included, becomes a ``Failed`` event with a readable message and a concrete suggestion; the traceback goes to
train.log, the run directory and last checkpoint are kept, and memory is released (and the release measured).

Typical use (UI and CLI alike)::

    job = TrainingJob(cfg, runs_dir).start()
    events, cursor = job.events.since(cursor)   # poll
    job.stop()                                   # graceful
"""
from __future__ import annotations

import gc
import logging
import os
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from studio import runs
from studio.errors import StudioError, TrainingError
from studio.events import (TERMINAL, Checkpoint, Eval, Event, EventLog, Failed, Finished, Log, Note, Started,
                           Stopped)

LOG = logging.getLogger("studio.training")
_LIB_LOGGERS = ("studio", "transformers", "trl", "peft", "accelerate", "datasets")


@dataclass(frozen=True)
class JobStatus:
    """A snapshot for the UI's status line and progress bar."""

    state: str
    """preparing, running, stopping, finished, stopped or failed."""
    run_dir: str
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    eta_s: float | None = None
    elapsed_s: float = 0.0
    message: str = ""

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def alive(self) -> bool:
        return self.state in ("preparing", "running", "stopping")

    def line(self) -> str:
        """``step 12/30 | loss 4.812 | ETA 0:00:07`` (the CLI's progress line)."""
        parts = [f"step {self.step}/{self.total_steps or '?'}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.eta_s is not None:
            parts.append(f"ETA {format_seconds(self.eta_s)}")
        if self.state not in ("running",):
            parts.append(self.state)
        return " | ".join(parts)


def format_seconds(s: float) -> str:
    s = int(max(0, round(s)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# --------------------------------------------------------------------------------------------------- memory helpers
def memory_now(device: str) -> tuple[int, int]:
    """``(current, peak)`` bytes: CUDA allocated / max allocated, or the process's RSS / peak RSS on CPU."""
    if device == "cuda":
        import torch

        return int(torch.cuda.memory_allocated()), int(torch.cuda.max_memory_allocated())
    try:
        import resource

        import psutil

        rss = psutil.Process().memory_info().rss
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return int(rss), int(max(peak, rss))
    except ImportError:  # pragma: no cover
        return 0, 0


def release_memory(device: str) -> int:
    """``gc.collect()`` + ``torch.cuda.empty_cache()``; returns the bytes released (allocated before - after)."""
    before = memory_now(device)[0]
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
    after = memory_now(device)[0]
    return max(0, before - after)


def is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return "outofmemory" in text.replace(" ", "").replace("_", "") or "out of memory" in text \
        or "can't allocate memory" in text or "cannot allocate memory" in text or isinstance(exc, MemoryError)


def explain_failure(exc: BaseException, cfg: Any) -> tuple[str, str]:
    """A readable message and a concrete suggestion for an exception raised while training."""
    if is_oom(exc):
        tc, mc = cfg.train, cfg.model
        tips = []
        if tc.batch_size > 1:
            tips.append(f"lower train.batch_size to {max(1, tc.batch_size // 2)} (raise train.grad_accum to "
                        f"{tc.grad_accum * 2} to keep the effective batch)")
        if tc.gradient_checkpointing is not True:
            tips.append("turn train.gradient_checkpointing on")
        if tc.max_length > 256:
            tips.append(f"shorten train.max_length to {tc.max_length // 2}")
        if mc.quantization != "4bit":
            tips.append("load the model in 4-bit (model.quantization: 4bit)")
        if cfg.lora.r > 16:
            tips.append(f"use a smaller LoRA rank (lora.r: {max(8, cfg.lora.r // 4)})")
        return ("out of memory while training", "Try: " + "; ".join(tips or ["a smaller model"]) + ".")
    if isinstance(exc, StudioError):
        return str(exc), ""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return (f"{type(exc).__name__}: {first}" if first else type(exc).__name__,
            "See train.log in the run directory for the full traceback.")


# ----------------------------------------------------------------------------------------------------- the callback
def _callback_class() -> type:
    from transformers import TrainerCallback

    class StudioCallback(TrainerCallback):
        """Turns trainer logs into events; turns a stop request into ``should_training_stop`` + a checkpoint."""

        def __init__(self, job: "TrainingJob") -> None:
            self.job = job
            self.t_begin = self.t_last = time.perf_counter()
            self.step_begin = self.step_last = 0
            self.tokens_last: float | None = None
            self.estimate_checked = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.t_begin = self.t_last = time.perf_counter()
            self.step_begin = self.step_last = state.global_step
            self.job.window.take()  # count from the first step on
            self.job._train_begin(state, args)

        def on_step_end(self, args, state, control, **kwargs):
            if self.job._stop.is_set():
                control.should_training_stop = True
                control.should_save = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if "train_runtime" in logs:
                self.job._train_loss = logs.get("train_loss")
                return
            if any(k.startswith("eval_") for k in logs) or "loss" not in logs:
                return
            now = time.perf_counter()
            dt = max(now - self.t_last, 1e-9)
            steps = state.global_step - self.step_last
            num_tokens = logs.get("num_tokens")
            tps = None
            if num_tokens is not None:
                prev = self.tokens_last if self.tokens_last is not None else self.job._tokens_at_begin
                if prev is not None:
                    tps = (num_tokens - prev) / dt
                self.tokens_last = num_tokens
            batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
            done = state.global_step - self.step_begin
            rate = done / max(now - self.t_begin, 1e-9)
            remaining = max(state.max_steps - state.global_step, 0)
            mem, peak = memory_now(self.job.device)
            speed = self.job._speed(dt)
            if tps is None and speed.get("tokens_per_s"):
                tps = speed["tokens_per_s"] * args.world_size
            event = Log(step=state.global_step, epoch=_round(state.epoch), loss=_num(logs.get("loss")),
                        learning_rate=_num(logs.get("learning_rate")), grad_norm=_num(logs.get("grad_norm")),
                        tokens_per_s=_round(tps), padding_share=speed.get("padding_share"), mfu=speed.get("mfu"),
                        samples_per_s=_round(steps * batch / dt),
                        steps_per_s=_round(steps / dt), num_tokens=int(num_tokens) if num_tokens is not None else None,
                        memory_bytes=mem, peak_memory_bytes=peak, total_steps=state.max_steps,
                        eta_s=_round(remaining / rate) if rate > 0 and done else None)
            self.t_last, self.step_last = now, state.global_step
            self.job._on_log(event)
            if not self.estimate_checked and done >= min(3, max(state.max_steps - self.step_begin, 1)):
                self.estimate_checked = True
                self.job._check_estimate(peak)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            metrics = {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
            self.job.emit(Eval(step=state.global_step, epoch=_round(state.epoch),
                               eval_loss=_num(metrics.get("eval_loss")), metrics=metrics))

        def on_save(self, args, state, control, **kwargs):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.job.emit(Checkpoint(step=state.global_step, path=str(path)))

    return StudioCallback


def _trainer_class() -> type:
    from trl import SFTTrainer

    class StudioSFTTrainer(SFTTrainer):
        """SFTTrainer that counts each training micro-batch's real tokens, positions and squared sequence lengths
        for the live tokens/s, padding share and MFU (sums stay on the device until a log step reads them)."""

        studio_window: Any = None

        def training_step(self, model, inputs, *args, **kwargs):
            if self.studio_window is not None:
                self.studio_window.add(inputs)
            return super().training_step(model, inputs, *args, **kwargs)

    return StudioSFTTrainer


def _num(x: Any) -> float | None:
    try:
        return float(x) if x is not None else None
    except (TypeError, ValueError):
        return None


def _round(x: Any, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


# ------------------------------------------------------------------------------------------------------------ job
class TrainingJob:
    """One fine-tuning run: model + data + SFTTrainer, in a daemon thread (``start``) or inline (``run``).

    Args:
        cfg: the RunConfig.
        runs_dir: where run directories go (default ``cfg.train.output_dir``).
        resume: a run directory to continue from its last checkpoint (events are appended to the same run).
        extra_callbacks: ``TrainerCallback`` instances, or callables ``f(job) -> TrainerCallback`` (a callback class
            whose ``__init__`` takes the job works too), e.g. the chat helper's probe-prompt callback, which can
            ``job.emit(Probe(...))`` at each checkpoint (``on_save`` gets ``model`` and ``processing_class``).

    Raises:
        TrainingError: ``resume`` is not a run directory or has no checkpoint.
    """

    def __init__(self, cfg: Any, runs_dir: str | Path | None = None, *, resume: str | Path | None = None,
                 extra_callbacks: Iterable[Any] = ()) -> None:
        self.cfg = cfg
        self.extra_callbacks = list(extra_callbacks)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.device = "cpu"
        self.model: Any = None
        self.tokenizer: Any = None
        self.trainer: Any = None
        self.estimate: Any = None
        self.plan: Any = None
        """The :class:`~studio.speed.plan.SpeedPlan` of this run (attention, packing, booster, checkpointing...)."""
        from studio.speed.flops import TokenWindow

        self.window = TokenWindow()
        self._peak: Any = None
        self._state = "preparing"
        self._status_extra: dict[str, Any] = {}
        self._train_loss: float | None = None
        self._tokens_at_begin: float | None = None
        self._t0 = time.time()
        self.main = runs.is_main_process()
        if resume is not None:
            self.run_dir = Path(resume)
            if self.main and not (self.run_dir / runs.CONFIG).exists():
                raise TrainingError(f"{self.run_dir} is not a run directory (no {runs.CONFIG})")
            self.resume_from = runs.last_checkpoint(self.run_dir)
            if self.resume_from is None:
                raise TrainingError(f"{self.run_dir} has no complete checkpoint to resume from; start a new run "
                                    f"with: studio train --config {self.run_dir / runs.CONFIG}")
            if self.main:
                cfg.save(self.run_dir / runs.CONFIG)
            self.events = EventLog.open(self.run_dir / runs.EVENTS) if self.main else EventLog()
        else:
            self.run_dir = runs.create_run_dir(cfg, Path(runs_dir or cfg.train.output_dir))
            self.resume_from = None
            self.events = EventLog(self.run_dir / runs.EVENTS if self.main else None)
        self._cursor_start = len(self.events)

    # ---------------------------------------------------------------- control
    def start(self) -> "TrainingJob":
        """Run in a daemon thread; returns at once."""
        if self._thread is not None:
            raise TrainingError("this job was already started")
        self._thread = threading.Thread(target=self.run, name=f"train-{self.run_dir.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to stop after the current step (the adapter and a checkpoint are saved)."""
        self._stop.set()
        if self._state in ("preparing", "running"):
            self._state = "stopping"

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        if self._thread is None:
            return self.result is not None
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def result(self) -> Event | None:
        """The terminal event (Finished, Stopped or Failed) of this job, once there is one."""
        events, _ = self.events.since(self._cursor_start)
        return next((e for e in reversed(events) if isinstance(e, TERMINAL)), None)

    def emit(self, event: Event) -> None:
        """Append an event (only the main process keeps them on disk)."""
        self.events.append(event)

    def status(self) -> JobStatus:
        s = self._status_extra
        return JobStatus(state=self._state, run_dir=str(self.run_dir), step=s.get("step", 0),
                         total_steps=s.get("total_steps", 0), loss=s.get("loss"), eta_s=s.get("eta_s"),
                         elapsed_s=round(time.time() - self._t0, 1), message=s.get("message", ""))

    # ---------------------------------------------------------------- the run
    def run(self) -> Event:
        """Prepare, train and save, inline. Never raises: the outcome is the returned terminal event."""
        handler = self._attach_log()
        try:
            return self._run()
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a Failed event
            return self._fail(exc)
        finally:
            self._detach_log(handler)

    def _run(self) -> Event:
        import torch

        from studio.data import prepare_datasets
        from studio.modeling import base_tokenizer, describe_loaded, load_base, lora_config, resolve_device
        from studio.speed import apply_booster, plan_speed
        from studio.speed.plan import mean_row_tokens, model_config_for_plan, prepare_for_training

        cfg = self.cfg
        self.device = resolve_device(cfg.train.device)
        self._rss_start = memory_now(self.device)[0]
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        # data first (with the tokenizer the model will have): the speed plan sizes packed micro-batches from the
        # rows' real lengths, and picks the attention kernel the model must be loaded with
        self._status_extra = {"message": "preparing the data"}
        tokenizer = base_tokenizer(cfg.model)
        self.tokenizer = tokenizer[0]
        prepared = prepare_datasets(cfg, self.tokenizer)
        if self._stop.is_set():
            return self._finish_stopped(step=0)
        plan = self.plan = plan_speed(cfg, device=self.device, mean_tokens=mean_row_tokens(prepared.train))
        self.estimate = self._planned_estimate(plan)
        for line in plan.lines():
            LOG.info("speed plan: %s", line)
        self._status_extra = {"message": "loading the model"}
        # k-bit models are prepared by the plan (no fp32 upcast with bf16 compute), not by peft inside load_base
        self.model, self.tokenizer = load_base(model_config_for_plan(cfg.model, plan), device=self.device,
                                               for_training=True, kbit_prep=False, tokenizer=tokenizer)
        if getattr(self.model.config, "_attn_implementation", None) == plan.attn_impl:
            self.model.studio_attention_reason = plan.attn_reason
        prepare_for_training(self.model, plan)
        apply_booster(self.model, plan)  # a missing or failing booster is a reason in the plan, never a failure
        gc_on = plan.gradient_checkpointing
        trainer = self.trainer = self._build_trainer(prepared, lora_config(cfg, self.model), plan)
        loaded = describe_loaded(trainer.model)
        self._prepared_info = {"train_rows": len(prepared.train),
                               "eval_rows": len(prepared.eval) if prepared.eval is not None else 0}
        self._loaded = loaded
        self._gc_on = gc_on
        self._init_speed_meter(loaded)
        env = runs.environment_info(self.device)
        env.update({"pid": os.getpid(), "run_dir": str(self.run_dir), "data_fingerprint": prepared.fingerprint,
                    "data": {**self._prepared_info, "dropped_rows": prepared.dropped_rows},
                    "loaded": loaded.to_dict(), "attention_reason": getattr(self.model, "studio_attention_reason", ""),
                    "gradient_checkpointing": gc_on, "memory_estimate": self.estimate.to_dict() if self.estimate else None,
                    "speed": plan.to_dict(), "speed_lines": plan.lines(),
                    "resumed_from": str(self.resume_from) if self.resume_from else None})
        runs.write_environment(self.run_dir, env)
        trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)
        step = trainer.state.global_step
        stopped = self._stop.is_set() and step < trainer.state.max_steps
        if not stopped and trainer.eval_dataset is not None and not cfg.train.eval_steps:
            trainer.evaluate()
        adapter = self.run_dir / runs.ADAPTER
        trainer.save_model(str(adapter))
        if self.main and self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(adapter))
        peak = memory_now(self.device)[1]
        if stopped:
            return self._finish_stopped(step=step, adapter=adapter)
        runtime = time.time() - self._t0
        self._state = "finished"
        event = Finished(step=step, adapter_path=str(adapter), train_loss=_num(self._train_loss),
                         runtime_s=round(runtime, 2), peak_memory_bytes=peak)
        self.emit(event)
        self._cleanup()
        return event

    def _planned_estimate(self, plan: Any) -> Any:
        """The memory estimate for the planned micro-batch and checkpointing choice (None without a model config)."""
        import dataclasses

        from studio.modeling import estimate_memory

        cfg = self.cfg
        planned = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=plan.per_device_batch))
        try:
            return estimate_memory(planned, device=self.device, gradient_checkpointing=plan.gradient_checkpointing)
        except StudioError as exc:
            LOG.warning("no memory estimate: %s", exc)
            return None

    def _init_speed_meter(self, loaded: Any) -> None:
        from studio.speed.flops import peak_flops

        try:
            self._peak = peak_flops(device=self.device)
        except Exception as exc:  # noqa: BLE001 - no MFU rather than no run
            LOG.warning("no peak FLOP/s for MFU: %s", exc)
            self._peak = None
        self._lora_params = loaded.trainable_params

    def _speed(self, seconds: float) -> dict[str, float]:
        """Real tokens/s (this process), padding share and MFU of the micro-batches since the last log step."""
        from studio.speed.flops import Peak, SpeedMeter

        real, positions, sum_sq = self.window.take()
        if not positions or self.model is None:
            return {}
        try:
            meter = SpeedMeter(self.model.config, peak=self._peak or Peak(0.0, "unknown"),
                               lora_params=self._lora_params)
            meter.add_sums(real, positions, sum_sq, seconds)
            snap = meter.snapshot()
        except Exception as exc:  # noqa: BLE001 - an unknown architecture has no FLOPs figure: no MFU
            LOG.debug("speed meter: %s", exc)
            share = round(1 - real / positions, 4)
            return {"tokens_per_s": round(real / seconds, 1) if seconds > 0 else 0.0, "padding_share": share}
        if self._peak is None or not self._peak.flops:
            snap.pop("mfu", None)
        return snap

    def _build_trainer(self, prepared: Any, peft_config: Any, plan: Any) -> Any:
        from transformers import PrinterCallback, ProgressCallback
        from trl import SFTConfig

        from studio.speed import sft_speed_kwargs

        args = SFTConfig(**{**sft_args(self.cfg, self.run_dir, device=self.device,
                                       gradient_checkpointing=plan.gradient_checkpointing,
                                       has_eval=prepared.eval is not None),
                            **sft_speed_kwargs(plan)})
        callbacks = [_callback_class()(self)]
        tb = self._tensorboard_callback()
        if tb is not None:
            callbacks.append(tb)
        from transformers import TrainerCallback

        for cb in self.extra_callbacks:  # an instance as is; any other callable (a class too) gets the job
            callbacks.append(cb if isinstance(cb, TrainerCallback) else cb(self))
        trainer = _trainer_class()(model=self.model, args=args, train_dataset=prepared.train,
                                   eval_dataset=prepared.eval, processing_class=self.tokenizer,
                                   peft_config=peft_config, callbacks=callbacks)
        trainer.studio_window = self.window
        for noisy in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(noisy)
        return trainer

    def _tensorboard_callback(self) -> Any:
        if not self.cfg.train.tensorboard or not self.main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
            from transformers.integrations import TensorBoardCallback
        except ImportError:
            LOG.warning("tensorboard is not installed; no TensorBoard logs")
            return None
        return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(self.run_dir / runs.TENSORBOARD)))

    # ---------------------------------------------------------------- callback hooks
    def _train_begin(self, state: Any, args: Any) -> None:
        self._state = "stopping" if self._stop.is_set() else "running"
        self._status_extra = {"step": state.global_step, "total_steps": state.max_steps}
        self._tokens_at_begin = 0 if not self.resume_from else None
        info = getattr(self, "_prepared_info", {})
        self.emit(Started(run_dir=str(self.run_dir), model=self.cfg.model.name_or_path, total_steps=state.max_steps,
                          start_step=state.global_step, world_size=args.world_size, device=self.device,
                          train_rows=info.get("train_rows", 0), eval_rows=info.get("eval_rows", 0),
                          gradient_checkpointing=getattr(self, "_gc_on", False),
                          attention_reason=getattr(self.model, "studio_attention_reason", ""),
                          speed=self.plan.lines() if self.plan is not None else [],
                          loaded=self._loaded.to_dict() if getattr(self, "_loaded", None) else {},
                          estimate=self.estimate.to_dict() if self.estimate else {}))

    def _on_log(self, event: Log) -> None:
        self._status_extra = {"step": event.step, "total_steps": event.total_steps or 0, "loss": event.loss,
                              "eta_s": event.eta_s}
        self.emit(event)

    def _check_estimate(self, measured_peak: int) -> None:
        if self.estimate is None:
            return
        gb = 1024 ** 3
        measured = measured_peak if self.device == "cuda" else max(measured_peak - getattr(self, "_rss_start", 0), 1)
        est = self.estimate.total_gb * gb
        error = (est - measured) / measured
        where = "GPU peak allocated" if self.device == "cuda" else "process RSS growth"
        gc_on = bool(getattr(self, "_gc_on", False))
        msg = (f"memory: estimated {est / gb:.2f} GB, measured {measured / gb:.2f} GB ({where}); "
               f"estimate error {error:+.0%}; gradient checkpointing {'on' if gc_on else 'off'}")
        LOG.info(msg)
        self.emit(Note(message=msg, data={"estimated_bytes": int(est), "measured_bytes": int(measured),
                                          "peak_bytes": int(measured_peak), "error": round(error, 4),
                                          "device": self.device, "gradient_checkpointing": gc_on,
                                          "gradient_checkpointing_reason": self.plan.gc_reason if self.plan else ""}))

    # ---------------------------------------------------------------- endings
    def _finish_stopped(self, step: int, adapter: Path | None = None) -> Event:
        ckpt = runs.last_checkpoint(self.run_dir)
        self._state = "stopped"
        event = Stopped(step=step, adapter_path=str(adapter) if adapter else None,
                        checkpoint_path=str(ckpt) if ckpt else None)
        self.emit(event)
        self._cleanup()
        return event

    def _fail(self, exc: BaseException) -> Event:
        tb = traceback.format_exc()
        LOG.error("training failed:\n%s", tb)
        message, suggestion = explain_failure(exc, self.cfg)
        step = getattr(getattr(self.trainer, "state", None), "global_step", None)
        released = self._cleanup()
        ckpt = runs.last_checkpoint(self.run_dir)
        self._state = "failed"
        self._status_extra = {**self._status_extra, "message": message}
        event = Failed(message=message, suggestion=suggestion, step=step,
                       checkpoint_path=str(ckpt) if ckpt else None, released_bytes=released)
        self.emit(event)
        return event

    def _cleanup(self) -> int:
        """Drop the trainer and model, collect, empty the CUDA cache; log and return the bytes released."""
        if self.trainer is not None:
            for cb in self.trainer.callback_handler.callbacks:
                writer = getattr(cb, "tb_writer", None)
                if writer is not None:
                    try:
                        writer.close()
                    except Exception:  # noqa: BLE001
                        pass
        before = memory_now(self.device)[0]
        self.trainer = None
        self.model = None
        released = release_memory(self.device) if before else 0
        after = memory_now(self.device)[0]
        released = max(released, before - after)
        LOG.info("memory released after the run: %.1f MB (%s)", released / 2 ** 20, self.device)
        return int(released)

    # ---------------------------------------------------------------- train.log
    def _attach_log(self) -> logging.Handler | None:
        if not self.main:
            return None
        handler = logging.FileHandler(self.run_dir / runs.TRAIN_LOG, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        thread_id = threading.get_ident()
        handler.addFilter(lambda rec: rec.thread == thread_id or rec.name.startswith("studio"))
        for name in _LIB_LOGGERS:
            logging.getLogger(name).addHandler(handler)
        if LOG.level == logging.NOTSET or LOG.level > logging.INFO:
            LOG.setLevel(logging.INFO)
        return handler

    def _detach_log(self, handler: logging.Handler | None) -> None:
        if handler is None:
            return
        for name in _LIB_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        handler.close()


def sft_args(cfg: Any, run_dir: Path, *, device: str, gradient_checkpointing: bool, has_eval: bool) -> dict[str, Any]:
    """The ``SFTConfig`` keyword arguments of a RunConfig (shared with the benchmark's plain-TRL baseline).

    The data layer's ``completion_mask`` decides which tokens are trained (``completion_only_loss=True``), so
    ``train.loss_on`` is already applied there. The engine overrides the fast-path settings with
    :func:`studio.speed.sft_speed_kwargs` (packing, checkpointing, micro-batch; boosters are applied to the model,
    not through TRL). Here Liger is only asked of TRL where it is installed: a missing booster never fails a run.
    """
    import importlib.util

    import torch

    from studio.modeling import compute_dtype

    tc = cfg.train
    dtype = compute_dtype(cfg.model, device)
    bf16 = device == "cuda" and dtype == torch.bfloat16
    fp16 = device == "cuda" and dtype == torch.float16
    eval_steps = tc.eval_steps if has_eval and tc.eval_steps else None
    use_liger = device == "cuda" and tc.booster in ("auto", "liger") \
        and importlib.util.find_spec("liger_kernel") is not None
    return dict(
        output_dir=str(Path(run_dir) / runs.CHECKPOINTS), max_steps=tc.max_steps, num_train_epochs=tc.epochs,
        per_device_train_batch_size=tc.batch_size, per_device_eval_batch_size=tc.batch_size,
        gradient_accumulation_steps=tc.grad_accum, learning_rate=tc.learning_rate,
        lr_scheduler_type=tc.lr_scheduler, warmup_steps=float(tc.warmup_ratio), weight_decay=tc.weight_decay,
        max_grad_norm=tc.max_grad_norm, optim=tc.optim, seed=tc.seed, logging_steps=tc.logging_steps,
        save_strategy="steps", save_steps=tc.save_steps, save_total_limit=tc.save_total_limit,
        eval_strategy="steps" if eval_steps else "no", eval_steps=eval_steps,
        max_length=tc.max_length, packing=tc.packing, completion_only_loss=True,
        gradient_checkpointing=gradient_checkpointing, bf16=bf16, fp16=fp16,
        use_cpu=device == "cpu", dataloader_pin_memory=device == "cuda", report_to="none", disable_tqdm=True,
        use_liger_kernel=use_liger, ddp_find_unused_parameters=False if runs.world_size() > 1 else None,
    )


def default_callbacks(cfg: Any) -> list[Any]:
    """Callbacks the app and the CLI add: probe prompts answered at every checkpoint when configured."""
    if not cfg.train.probe_prompts:
        return []
    from studio.probes import probe_callback

    return [probe_callback()]


def start_job(cfg: Any, runs_dir: str | Path | None = None, **kwargs: Any) -> TrainingJob:
    """Build and start a job (convenience for scripts)."""
    return TrainingJob(cfg, runs_dir, **kwargs).start()

