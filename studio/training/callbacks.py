"""The trainer-side hooks: the TrainerCallback that turns trainer logs into events (and a stop request into
``should_training_stop`` + a checkpoint), and the SFTTrainer subclass that counts each micro-batch's tokens."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from studio.events import Checkpoint, Eval, Log
from studio.training.memory import memory_now
from studio.training.state import as_float

if TYPE_CHECKING:
    from studio.training.state import RunState


def callback_class() -> type:
    """The :class:`StudioCallback` class (a ``TrainerCallback``; transformers is imported when it is asked for)."""
    from transformers import TrainerCallback

    class StudioCallback(TrainerCallback):
        """Turns trainer logs into events; turns a stop request into ``should_training_stop`` + a checkpoint.

        Args:
            run: the job's :class:`~studio.training.state.RunState` (phase, progress and the run's facts).
            emit: appends an event to the job's log.
        """

        def __init__(self, run: "RunState", emit: Callable[[Any], None]) -> None:
            self.run = run
            self.emit = emit
            self.t_begin = self.t_last = time.perf_counter()
            self.step_begin = self.step_last = 0
            self.tokens_last: float | None = None
            self.estimate_checked = False
            self.room: Any = None
            self.eval_s: float | None = None
            """The last evaluation's measured seconds (a periodic one, its answers included), or None before any."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.t_begin = self.t_last = time.perf_counter()
            self.step_begin = self.step_last = state.global_step
            self.run.window.take()  # count from the first step on
            self.run.begin(state.global_step, state.max_steps)
            self.emit(self.run.started_event(state.global_step, state.max_steps, args.world_size))

        def on_step_end(self, args, state, control, **kwargs):
            if self.run.stop.is_set():
                control.should_training_stop = True
                control.should_save = True
            if control.should_save and self.run.main:
                self._room().before_save()  # a full disk fails here, before a half-written checkpoint
            return control

        def _room(self):
            if self.room is None:
                from studio.training.room import RoomWatch

                self.room = RoomWatch(self.run.run_dir, lambda: self.run.trainable_params, self.emit)
            return self.room

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if "train_runtime" in logs:
                self.run.train_loss = as_float(logs.get("train_loss"))
                return
            if any(k.startswith("eval_") for k in logs) or "loss" not in logs:
                return
            now = time.perf_counter()
            dt = max(now - self.t_last, 1e-9)
            steps = state.global_step - self.step_last
            num_tokens = logs.get("num_tokens")
            tps = None
            if num_tokens is not None:
                prev = self.tokens_last if self.tokens_last is not None else self.run.tokens_at_begin
                if prev is not None:
                    tps = (num_tokens - prev) / dt
                self.tokens_last = num_tokens
            batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
            done = state.global_step - self.step_begin
            rate = done / max(now - self.t_begin, 1e-9)
            remaining = max(state.max_steps - state.global_step, 0)
            final_eval = self._final_eval_s(state.max_steps, rate)
            mem, peak = memory_now(self.run.device)
            speed = self.run.speed(dt)
            if tps is None and speed.get("tokens_per_s"):
                tps = speed["tokens_per_s"] * args.world_size
            event = Log(step=state.global_step, epoch=_round(state.epoch), loss=as_float(logs.get("loss")),
                        learning_rate=as_float(logs.get("learning_rate")), grad_norm=as_float(logs.get("grad_norm")),
                        tokens_per_s=_round(tps), padding_share=speed.get("padding_share"), mfu=speed.get("mfu"),
                        samples_per_s=_round(steps * batch / dt),
                        steps_per_s=_round(steps / dt), num_tokens=int(num_tokens) if num_tokens is not None else None,
                        memory_bytes=mem, peak_memory_bytes=peak, total_steps=state.max_steps,
                        eta_s=_round(remaining / rate + (final_eval or 0.0)) if rate > 0 and done else None,
                        metrics=method_metrics(logs))
            self.t_last, self.step_last = now, state.global_step
            self.run.progress(event.step, event.total_steps or 0, event.loss, event.eta_s)
            self.emit(event)
            if self.run.main and args.save_steps and args.save_strategy != "no":
                every = int(args.save_steps) if args.save_steps >= 1 else max(1, int(args.save_steps * state.max_steps))
                self._room().check(state.global_step, (state.global_step // every + 1) * every)
            if not self.estimate_checked and done >= min(3, max(state.max_steps - self.step_begin, 1)):
                self.estimate_checked = True
                note = self.run.estimate_note(peak)
                if note is not None:
                    self.emit(note)

        def _final_eval_s(self, max_steps: int, rate: float) -> float | None:
            """The end-of-run evaluation's seconds: the last evaluation's measured time, else its cost in steps at
            the measured step rate; None without one (kept on the run state for the phase's ETA)."""
            steps = self.run.final_eval_steps(max_steps=max_steps) if self.run.final_eval_steps else 0.0
            seconds = None if not steps else self.eval_s if self.eval_s else steps / rate if rate > 0 else None
            self.run.final_eval_s = seconds
            return seconds

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            metrics = {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
            measured = (as_float(metrics.get("eval_runtime")) or 0.0) + \
                (as_float(metrics.get("eval_accuracy_runtime")) or 0.0)  # the task accuracy's answers, after it
            self.eval_s = measured or self.eval_s
            self.emit(Eval(step=state.global_step, epoch=_round(state.epoch),
                           eval_loss=as_float(metrics.get("eval_loss")), metrics=metrics))

        def on_save(self, args, state, control, **kwargs):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.emit(Checkpoint(step=state.global_step, path=str(path)))

    return StudioCallback


def trainer_class() -> type:
    """The :class:`StudioSFTTrainer` class (trl is imported when it is asked for)."""
    from trl import SFTTrainer

    class StudioSFTTrainer(SFTTrainer):
        """SFTTrainer that counts each training micro-batch's real tokens, positions and squared sequence lengths
        for the live tokens/s, padding share and MFU (sums stay on the device until a log step reads them), and,
        where :func:`studio.speed.loss.fast_path_reason` allows, computes the same loss with the LM head on the
        trained positions only and the entropy / token-accuracy metrics on logging steps only."""

        studio_fast_loss: str | None = ""
        """None: the fast loss path is on; a reason: TRL's own ``compute_loss``; "": not decided yet."""

        def __init__(self, *args, token_window: Any = None, **kwargs):
            self.token_window = token_window
            """The run's :class:`~studio.speed.flops.TokenWindow` (None: nothing counted)."""
            super().__init__(*args, **kwargs)
            from studio.speed.loss import fast_path_reason
            from studio.speed.packrows import PacksAsRows, costs, packs_as_rows_reason

            self.studio_fast_loss = fast_path_reason(self, self.model)
            if self.studio_fast_loss is None and packs_as_rows_reason(self) is None:
                try:  # SDPA: sum(L^2) attention, not (sum L)^2, where that is cheaper
                    self.data_collator = PacksAsRows(self.data_collator, *costs(self.model.config))
                except Exception:  # noqa: BLE001 - an architecture without FLOPs figures keeps TRL's collation
                    pass

        def training_step(self, model, inputs, *args, **kwargs):
            if self.token_window is not None:
                self.token_window.add(inputs)
            return super().training_step(model, inputs, *args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            from studio.speed.loss import fast_path_reason, head_loss
            from studio.speed.packrows import REAL_TOKENS

            real = inputs.pop(REAL_TOKENS, None)
            if self.studio_fast_loss == "":
                self.studio_fast_loss = fast_path_reason(self, model)
            if return_outputs or self.studio_fast_loss is not None or "shift_labels" in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            mode = "train" if self.model.training else "eval"
            loss, stats = head_loss(model, inputs, num_items_in_batch, metrics=mode == "eval" or self._logs_now())
            if "entropy_sum" in stats:  # the same figures TRL logs, from the same positions
                valid = stats["num_valid"]
                ok = bool(valid > 0)
                self._metrics[mode]["entropy"].append((stats["entropy_sum"] / valid).item() if ok else 0.0)
                self._metrics[mode]["mean_token_accuracy"].append(
                    (stats["num_correct"] / valid).item() if ok else 0.0)
            if mode == "train":
                if real is not None:
                    self._total_train_tokens += int(real)
                elif "attention_mask" in inputs:
                    self._total_train_tokens += int(inputs["attention_mask"].sum())
                else:
                    self._total_train_tokens += int(inputs["position_ids"].size(1))
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return loss

        def _logs_now(self) -> bool:
            """Whether the step being computed ends in a log (metrics are only read there)."""
            args, state = self.args, self.state
            if str(getattr(args.logging_strategy, "value", args.logging_strategy)) != "steps":
                return True
            step = state.global_step + 1
            every = state.logging_steps or args.logging_steps
            return (step == 1 and args.logging_first_step) or (bool(every) and step % every == 0)

    return StudioSFTTrainer


_LOG_FIELDS = {"loss", "learning_rate", "grad_norm", "epoch", "num_tokens"}


def method_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """The trainer's other numeric logs (a method's signals: rewards/*, logps/*, kl, nll_loss...), rounded."""
    import math

    out = {}
    for key, value in logs.items():
        if key in _LOG_FIELDS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(float(value)):
            out[key] = round(float(value), 6)
    return out


def _round(x: Any, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)
