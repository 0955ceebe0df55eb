"""``TrainingJob``: one fine-tuning run in a daemon thread (prepare, train, save, fail readably)."""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

from studio import runs
from studio.environment import environment_info
from studio.errors import StudioError, TrainingError
from studio.speed import cpu_share
from studio.events import TERMINAL, Event, EventLog, Failed, Finished, Note, Stopped
from studio.training import trackers
from studio.training.arenas import share_main_arena
from studio.training.args import sft_args
from studio.damage import resume_skipped
from studio.training.callbacks import callback_class
from studio.training.eval_during import EvalPlan, end_of_run, eval_callbacks, final_eval_steps, plan_for
from studio.training.failures import explain_failure
from studio.training.memory import memory_now, release_memory
from studio.training.state import JobStatus, RunState, as_float, first_run_rss

LOG = logging.getLogger("studio.training")
_LIB_LOGGERS = ("studio", "transformers", "trl", "peft", "accelerate", "datasets")


class TrainingJob:
    """One fine-tuning run: model + data + SFTTrainer, in a daemon thread (``start``) or inline (``run``).

    Args:
        cfg: the RunConfig.
        runs_dir: where run directories go (default ``cfg.train.output_dir``).
        resume: a run directory to continue from its last checkpoint (events are appended to the same run).
        extra_callbacks: ``TrainerCallback`` instances, or callables ``f(job) -> TrainerCallback`` (a callback class
            whose ``__init__`` takes the job works too), e.g. the chat helper's probe-prompt callback, which can
            ``job.emit(Probe(...))`` at each checkpoint (``on_save`` gets ``model`` and ``processing_class``).
        run_dir: a fresh run in this run folder, already made (with its config.yaml) by the app's launcher.

    Raises:
        TrainingError: ``resume`` is not a run directory or has no checkpoint.
    """

    def __init__(self, cfg: Any, runs_dir: str | Path | None = None, *, resume: str | Path | None = None,
                 extra_callbacks: Iterable[Any] = (), run_dir: str | Path | None = None) -> None:
        trackers.report_to(cfg)  # a tracker that is not installed is named before a run folder is made
        self.cfg = cfg
        self.extra_callbacks = list(extra_callbacks)
        self._thread: threading.Thread | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self.trainer: Any = None
        self.eval_plan: Any = EvalPlan(None, "not planned yet")
        self.plan: Any = None
        """The :class:`~studio.speed.plan.SpeedPlan` of this run (attention, packing, booster, checkpointing...)."""
        self.main = runs.is_main_process()
        if resume is not None:
            self.run_dir = Path(resume)
            if self.main and not (self.run_dir / runs.CONFIG).exists():
                raise TrainingError(f"{self.run_dir} is not a run directory (no {runs.CONFIG})")
            self.resume_from = runs.last_checkpoint(self.run_dir, thorough=True)
            skipped = resume_skipped(runs.checkpoints(self.run_dir), self.resume_from)
            if self.resume_from is None:
                raise TrainingError(f"{self.run_dir} has no complete checkpoint to resume from; start a new run "
                                    f"with: studio train --config {self.run_dir / runs.CONFIG}")
            if self.main:
                cfg.save(self.run_dir / runs.CONFIG)
            self.events = EventLog.open(self.run_dir / runs.EVENTS) if self.main else EventLog()
            if skipped:
                self.emit(Note(level="warning", message=skipped, data={"kind": "resume"}))
                LOG.warning(skipped)
        else:
            from studio.training.start_from import resolve_start

            resolve_start(cfg)  # a wrong train.start_from is refused before a run folder is made
            self.run_dir = Path(run_dir) if run_dir is not None else \
                runs.create_run_dir(cfg, Path(runs_dir or cfg.train.output_dir))
            self.resume_from = None
            self.events = EventLog(self.run_dir / runs.EVENTS if self.main else None)
        self.first_event = len(self.events)
        """The index of this job's first event in ``events`` (a resumed run's log starts with its earlier ones)."""
        self.state = RunState(run_dir=self.run_dir, model_name=cfg.model.name_or_path, main=self.main,
                              resumed=self.resume_from is not None)
        """Phase, progress and facts of this run, shared with the trainer callback (:mod:`studio.training.state`)."""

    @property
    def device(self) -> str:
        return self.state.device

    @property
    def estimate(self) -> Any:
        """The memory estimate for the planned micro-batch (None before planning or without a model config)."""
        return self.state.estimate

    # ---------------------------------------------------------------- control
    def start(self) -> "TrainingJob":
        """Run in a daemon thread; returns at once."""
        if self._thread is not None:
            raise TrainingError("this job was already started")
        share_main_arena(self.cfg.train.device)  # a CPU run's thread frees into the main heap (see arenas.py)
        self._thread = threading.Thread(target=self.run, name=f"train-{self.run_dir.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to stop after the current step (the adapter and a checkpoint are saved)."""
        self.state.request_stop()

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
        events, _ = self.events.since(self.first_event)
        return next((e for e in reversed(events) if isinstance(e, TERMINAL)), None)

    def emit(self, event: Event) -> None:
        """Append an event (only the main process keeps them on disk)."""
        self.events.append(event)

    def status(self) -> JobStatus:
        return self.state.status()

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

        from studio.modeling import base_tokenizer, describe_loaded, load_base, lora_config, resolve_device
        from studio.speed import apply_booster, plan_speed
        from studio.speed.plan import model_config_for_plan, prepare_for_training

        from studio.training.methods import recipe
        from studio.training.methods import wiring
        from studio.training.start_from import keep_prompt_format, load_trainable, resolve_start

        cfg, st = self.cfg, self.state
        rec, start = recipe(cfg.train.method), resolve_start(cfg)
        kept_format = keep_prompt_format(cfg, start) if start is not None else []
        st.device = resolve_device(cfg.train.device)
        st.rss_start, st.peak_start = memory_now(st.device)
        st.first_rss = first_run_rss(st.rss_start)
        if st.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        # data first (with the tokenizer the model will have): the speed plan sizes packed micro-batches from the
        # rows' real lengths, and picks the attention kernel the model must be loaded with
        self._phase("preparing the data", "preparing")
        if self.main:  # a run killed from here on reads "interrupted", not "new" (load_run checks this pid)
            runs.write_environment(self.run_dir, {**runs.read_json(self.run_dir / runs.ENVIRONMENT),
                                                  "pid": os.getpid(), "run_dir": str(self.run_dir)})
        tokenizer = base_tokenizer(cfg.model, progress=self._model_progress)
        self.tokenizer = tokenizer[0]
        prepared = wiring.prepare_for(rec, cfg, self.tokenizer)
        self._save_prompt_format(prepared.spec)
        for warning in wiring.data_warnings(rec, prepared):
            LOG.warning("data: %s", warning)
            self.emit(Note(level="warning", message=f"data: {warning}", data={"kind": "data"}))
        if st.stop.is_set():
            return self._finish_stopped(step=0)
        plan = self.plan = plan_speed(wiring.plan_config(rec, cfg), device=st.device,
                                      mean_tokens=wiring.mean_tokens(rec, prepared.train))
        st.estimate = self._planned_estimate(plan)
        speed_lines = plan.lines() + wiring.plan_lines(rec, st.device, cfg)
        speed_lines += cpu_share.plan_lines(st.device, runs.world_size())
        self.eval_plan = plan_for(cfg.train, prepared, runs.world_size())
        speed_lines.append(f"evaluation: {self.eval_plan.reason}")
        if self.eval_plan.warning:
            self.emit(Note(level="warning", message=self.eval_plan.warning, data={"kind": "evaluation"}))
        for line in speed_lines:
            LOG.info("speed plan: %s", line)
        self._phase("loading the model", "loading")
        # k-bit models are prepared by the plan (no fp32 upcast with bf16 compute), not by peft inside load_base
        base = load_base(model_config_for_plan(cfg.model, plan), device=st.device, for_training=True,
                         kbit_prep=False, tokenizer=tokenizer)
        self.model, self.tokenizer = base.model, base.tokenizer
        on_plan = getattr(self.model.config, "_attn_implementation", None) == plan.attn_impl
        st.attention_reason = plan.attn_reason if on_plan else base.attention_reason
        st.quant_reason = base.quant_reason
        prepare_for_training(self.model, plan)
        apply_booster(self.model, plan)  # a missing or failing booster is a reason in the plan, never a failure
        if start is not None:  # the earlier run's adapter is the one trained; its config replaces cfg.lora
            self.model, peft_config = load_trainable(self.model, start), None
        else:
            peft_config = lora_config(cfg, self.model, base.added_token_ids)
        trainer = self.trainer = self._build_trainer(prepared, peft_config, plan)
        loaded = describe_loaded(trainer.model)
        st.train_rows, st.eval_rows = len(prepared.train), len(prepared.eval) if prepared.eval is not None else 0
        st.gradient_checkpointing, st.gc_reason = plan.gradient_checkpointing, plan.gc_reason
        st.speed_lines, st.loaded, st.trainable_params = speed_lines, loaded.to_dict(), loaded.trainable_params
        st.model_config, st.peak = self.model.config, self._peak_flops()
        st.final_eval_steps = functools.partial(final_eval_steps, self.eval_plan, eval_rows=st.eval_rows,
                                                rows_per_step=cfg.train.batch_size * cfg.train.grad_accum
                                                * runs.world_size(), answer_passes=getattr(self, "answer_passes", 0))
        env = environment_info(st.device)
        env.update({"pid": os.getpid(), "run_dir": str(self.run_dir), "data_fingerprint": prepared.fingerprint,
                    "data": {"train_rows": st.train_rows, "eval_rows": st.eval_rows,
                             "dropped_rows": prepared.dropped_rows},
                    "loaded": st.loaded, "attention_reason": st.attention_reason,
                    "quantization_reason": st.quant_reason, "gradient_checkpointing": st.gradient_checkpointing,
                    "memory_estimate": st.estimate.to_dict() if st.estimate else None,
                    "speed": plan.to_dict(), "speed_lines": speed_lines, "evaluation": self.eval_plan.to_dict(), "method": cfg.train.method,
                    "started_from": {**start.to_dict(), "kept": kept_format} if start is not None else None,
                    "resumed_from": str(self.resume_from) if self.resume_from else None})
        runs.write_environment(self.run_dir, env)
        trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)
        step = trainer.state.global_step
        stopped = st.stop.is_set() and step < trainer.state.max_steps
        if not stopped:  # the final eval loss (unless just evaluated), and which checkpoint adapter/ keeps
            end_of_run(trainer, self.eval_plan, tell=st.tell, emit=self.emit, eta_s=st.final_eval_s)
        adapter = self.run_dir / runs.ADAPTER
        trainer.save_model(str(adapter))
        if self.main and self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(adapter))
        peak = memory_now(st.device)[1]
        if stopped:
            return self._finish_stopped(step=step, adapter=adapter)
        runtime = time.time() - st.started_at
        st.end("finished")
        event = Finished(step=step, adapter_path=str(adapter), train_loss=as_float(st.train_loss),
                         runtime_s=round(runtime, 2), peak_memory_bytes=peak)
        self.emit(event)
        self._cleanup()
        return event

    def _phase(self, message: str, phase: str) -> None:
        """A phase before the first step, named in the status line (in-process) and as a note (the app's view of a
        run in its own process, and ``studio train``'s stderr)."""
        self.state.tell(message)
        self.emit(Note(message=f"{message}...", data={"kind": "phase", "phase": phase}))

    def _model_progress(self, fraction: float, message: str) -> None:
        """A first GGUF dequantization shows in the status line; its start and end become notes."""
        self.state.tell(message)
        if fraction in (0.0, 1.0) or message.startswith("Saving"):
            self.emit(Note(message=message))

    def _save_prompt_format(self, spec: Any) -> None:
        """``prompt_format.json`` + ``heldout.jsonl``: chat, eval, probes and export render prompts from them."""
        if not self.main:
            return
        from studio.prompt_format import save_for_run

        try:
            save_for_run(self.run_dir, self.cfg, self.tokenizer, spec)
        except Exception as exc:  # noqa: BLE001 - the run trains without it; later steps fall back to the data
            LOG.warning("prompt format not saved: %s", exc)

    def _planned_estimate(self, plan: Any) -> Any:
        """The memory estimate for the planned micro-batch, checkpointing and precision (None without a model config)."""
        from studio.modeling import estimate_memory
        from studio.speed.plan import model_config_for_plan

        cfg, train = self.cfg, dataclasses.replace(self.cfg.train, batch_size=plan.per_device_batch)
        planned = dataclasses.replace(cfg, model=model_config_for_plan(cfg.model, plan), train=train)
        try:
            return estimate_memory(planned, device=self.device, gradient_checkpointing=plan.gradient_checkpointing)
        except StudioError as exc:
            LOG.warning("no memory estimate: %s", exc)
            return None

    def _peak_flops(self) -> Any:
        from studio.speed.flops import peak_flops

        try:
            return peak_flops(device=self.device)
        except Exception as exc:  # noqa: BLE001 - no MFU rather than no run
            LOG.warning("no peak FLOP/s for MFU: %s", exc)
            return None

    def _build_trainer(self, prepared: Any, peft_config: Any, plan: Any) -> Any:
        from transformers import PrinterCallback, ProgressCallback, TrainerCallback

        from studio.speed import sft_speed_kwargs
        from studio.training.methods import recipe, wiring

        rec = recipe(self.cfg.train.method)
        base = sft_args(self.cfg, self.run_dir, device=self.device, gradient_checkpointing=plan.gradient_checkpointing,
                        has_eval=prepared.eval is not None)
        base.update(self.eval_plan.trainer_kwargs())
        args = rec.config_class()(**wiring.trainer_kwargs(rec, self.cfg, base, sft_speed_kwargs(plan), self.device))
        during = eval_callbacks(self.eval_plan, eval_dataset=prepared.eval, tokenizer=self.tokenizer)
        self.answer_passes = sum(getattr(cb, "answer_passes", 0) for cb in during)  # the final eval's answers
        callbacks = [*during, callback_class()(self.state, self.emit), *cpu_share.callbacks(self.device, runs.world_size()),
                     *[tb for tb in [self._tensorboard_callback()] if tb is not None]]
        for cb in self.extra_callbacks:  # an instance as is; any other callable (a class too) gets the job
            callbacks.append(cb if isinstance(cb, TrainerCallback) else cb(self))
        trainer = wiring.build_trainer(rec, args, model=self.model, tokenizer=self.tokenizer, prepared=prepared,
                                       peft_config=peft_config, callbacks=callbacks, token_window=self.state.window)
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

    # ---------------------------------------------------------------- endings
    def _finish_stopped(self, step: int, adapter: Path | None = None) -> Event:
        ckpt = runs.last_checkpoint(self.run_dir)
        self.state.end("stopped")
        event = Stopped(step=step, adapter_path=str(adapter) if adapter else None,
                        checkpoint_path=str(ckpt) if ckpt else None)
        self.emit(event)
        self._cleanup()
        return event

    def _fail(self, exc: BaseException) -> Event:
        tb = traceback.format_exc()
        LOG.error("training failed:\n%s", tb)
        message, suggestion = explain_failure(exc, self.cfg, run_dir=self.run_dir,
                                              trainable_params=self.state.trainable_params)
        step = self.trainer.state.global_step if self.trainer is not None else None
        released = self._cleanup()
        ckpt = runs.last_checkpoint(self.run_dir)
        self.state.end("failed", message)
        event = Failed(message=message, suggestion=suggestion, step=step,
                       checkpoint_path=str(ckpt) if ckpt else None, released_bytes=released)
        try:
            self.emit(event)
        except StudioError as err:  # the disk is still full: the event is kept in memory, the reason logged
            LOG.error("could not write the failure event: %s", err)
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
        from studio.diskspace import log_handler

        handler = log_handler(self.run_dir / runs.TRAIN_LOG)
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


def start_job(cfg: Any, runs_dir: str | Path | None = None, **kwargs: Any) -> TrainingJob:
    """Build and start a job (convenience for scripts)."""
    return TrainingJob(cfg, runs_dir, **kwargs).start()
