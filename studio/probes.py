"""Probe prompts: a few prompts answered at every checkpoint during training, recorded as ``Probe`` events.

The Chat tab shows them as a timeline: the base answer (step 0: a fresh LoRA adapter is the identity), then the
answer at each checkpoint. Prompts are the run's ``train.probe_prompts`` or, when empty, the first held-out rows;
they are built with the run's training template, answered greedily (or with a fixed seed) and never reseed or
disturb training: the model is switched to eval mode for the answers and back, and a failure becomes a warning
``Note`` instead of ending the run.

    job = TrainingJob(cfg, runs_dir, extra_callbacks=[probe_callback()])
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from studio.inference.params import GenerationParams

LOG = logging.getLogger(__name__)
DEFAULT_PARAMS = GenerationParams(max_new_tokens=64)


def probe_inputs(cfg: Any, tokenizer: Any, prompts: Sequence[str] | None = None, n_rows: int = 3,
                 run_dir: str | Path | None = None) -> list[tuple[str, list[int]]]:
    """``(prompt text shown to the user, token ids in the training format)`` for each probe (rendered from the run's
    saved prompt format and held-out rows when ``run_dir`` has them)."""
    from studio.data import load_data, split_rows
    from studio.errors import StudioError
    from studio.evaluate import _question_text
    from studio.inference import run_prompt_setup
    from studio.prompt_format import heldout

    builder, loaded = run_prompt_setup(cfg, tokenizer, run_dir)
    texts = list(prompts if prompts is not None else cfg.train.probe_prompts or [])
    if texts:
        return [(t, builder.build(t).input_ids) for t in texts if t and t.strip()]
    if n_rows <= 0:
        return []
    rows = heldout(run_dir) if loaded is None else None
    if rows is None:
        try:
            loaded = loaded or load_data(cfg.data)
        except StudioError:
            return []
        train_rows, eval_rows = split_rows(cfg.data, loaded)
        rows = eval_rows if eval_rows is not None and len(eval_rows) else train_rows
    out = []
    for i in range(min(n_rows, len(rows))):
        row = rows[i]
        out.append((_question_text(row, builder) or f"row {i + 1}", builder.for_row(row)[0].input_ids))
    return out


def answer_probes(model: Any, tokenizer: Any, inputs: Sequence[tuple[str, list[int]]],
                  params: GenerationParams = DEFAULT_PARAMS, *, base: bool = False) -> list[str]:
    """Answers of ``model`` (adapter active, or off with ``base``) to the probe prompts, in eval mode."""
    from studio.inference.batch import generate_texts

    was_training = model.training
    model.eval()
    try:
        return generate_texts(model, tokenizer, [ids for _, ids in inputs], params, base=base,
                              batch_size=len(inputs) or 1)
    finally:
        if was_training:
            model.train()


def probe_callback(prompts: Sequence[str] | None = None, *, n_rows: int = 3,
                   params: GenerationParams = DEFAULT_PARAMS) -> Callable[[Any], Any]:
    """A factory ``f(job) -> TrainerCallback`` for ``TrainingJob(extra_callbacks=[...])``.

    Args:
        prompts: the probe prompts (default: the run's ``train.probe_prompts``, else the first ``n_rows``
            held-out rows).
        params: how to answer (greedy, 64 new tokens by default).
    """
    def make(job: Any) -> Any:
        return _callback_class()(job, prompts, n_rows, params)

    return make


def _callback_class() -> type:
    from transformers import TrainerCallback

    class ProbeCallback(TrainerCallback):
        """Answers the probe prompts at train begin (base, step 0) and at every checkpoint."""

        def __init__(self, job: Any, prompts: Sequence[str] | None, n_rows: int, params: GenerationParams) -> None:
            self.job, self.prompts, self.n_rows, self.params = job, prompts, n_rows, params
            self.inputs: list[tuple[str, list[int]]] | None = None
            self.done_steps: set[int] = set()
            self.failed = False

        def _tokenizer(self, kwargs: dict[str, Any]) -> Any:
            return kwargs.get("processing_class") or getattr(self.job, "tokenizer", None)

        def _probe(self, state: Any, kwargs: dict[str, Any], *, base: bool = False) -> None:
            from studio.events import Note, Probe

            step = 0 if base else state.global_step
            model = kwargs.get("model")
            if self.failed or not state.is_world_process_zero or model is None or step in self.done_steps:
                return
            try:
                tok = self._tokenizer(kwargs)
                if self.inputs is None:
                    self.inputs = probe_inputs(self.job.cfg, tok, self.prompts, self.n_rows,
                                               run_dir=getattr(self.job, "run_dir", None))
                if not self.inputs:
                    return
                answers = answer_probes(model, tok, self.inputs, self.params, base=base)
            except Exception as exc:  # noqa: BLE001 - probes must never end a run
                self.failed = True
                LOG.warning("probe prompts failed", exc_info=True)
                self.job.emit(Note(message=f"probe prompts turned off: {type(exc).__name__}: "
                                           f"{str(exc).splitlines()[0][:200] if str(exc) else ''}",
                                   level="warning"))
                return
            self.done_steps.add(step)
            for (text, _), answer in zip(self.inputs, answers):
                self.job.emit(Probe(step=step, prompt=text, answer=answer))

        def on_train_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:  # a resumed run already has its base answers
                self._probe(state, kwargs, base=True)

        def on_save(self, args, state, control, **kwargs):
            self._probe(state, kwargs)

        def on_train_end(self, args, state, control, **kwargs):
            self._probe(state, kwargs)  # the final adapter, when the last step was not a checkpoint

    return ProbeCallback


def probe_timeline(source: Any) -> dict[str, list[tuple[int, str]]]:
    """``{prompt: [(step, answer), ...]}`` from a run directory, an events.jsonl path, an EventLog or events.

    Step 0 is the base model's answer; later steps are checkpoints, in order.
    """
    from studio.events import EventLog, Probe

    if isinstance(source, (str, Path)):
        path = Path(source)
        source = EventLog.read(path / "events.jsonl" if path.is_dir() else path)
    events = source.all() if hasattr(source, "all") else list(source)
    out: dict[str, list[tuple[int, str]]] = {}
    for e in events:
        if isinstance(e, Probe):
            steps = out.setdefault(e.prompt, [])
            steps[:] = [s for s in steps if s[0] != e.step] + [(e.step, e.answer)]
    return {k: sorted(v) for k, v in out.items()}
