"""Where a training step goes: torch.profiler over a Studio (TrainingJob) or a plain TRL (SFTTrainer + peft) run.

    python scripts/profile_train_step.py studio|plain [--steps 10] [--warmup 2] [--smoke]

The setup is ``studio bench train``'s uniform one (real SmolLM2-135M-Instruct, LoRA r=8/16 all-linear, fp32, batch 4,
max length 256, 60 chat rows). Regions: the data loader (collation), the backbone forward (a forward hook on the
decoder), ``compute_loss`` minus the backbone (LM head, loss, metrics), backward, the optimizer step and zero_grad,
``Trainer.log`` and callback dispatch. The profiling wrappers live only in this script. Prints one JSON line.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _instrument(trainer, regions):
    import torch
    from torch.profiler import record_function

    def wrap(obj, name, label):
        fn = getattr(obj, name)

        def wrapped(*a, **k):
            with record_function(label):
                return fn(*a, **k)
        setattr(obj, name, wrapped)

    wrap(trainer, "compute_loss", "region::compute_loss")
    wrap(trainer.accelerator, "backward", "region::backward")
    wrap(trainer, "log", "region::log")
    wrap(trainer.callback_handler, "call_event", "region::callbacks")
    wrap(trainer, "training_step", "region::training_step")
    base = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    backbone = base.base_model
    state = {}

    def pre(mod, args, kwargs):
        state["rf"] = record_function("region::backbone_forward")
        state["rf"].__enter__()

    def post(mod, args, kwargs, out):
        state.pop("rf").__exit__(None, None, None)

    backbone.register_forward_pre_hook(pre, with_kwargs=True)
    backbone.register_forward_hook(post, with_kwargs=True)
    regions["threads"] = torch.get_num_threads()


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=("studio", "plain"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"), help="studio's train.precision")
    ap.add_argument("--top", type=int, default=0, help="also print the N ops with the most self CPU time")
    ns = ap.parse_args()
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    from studio.bench import train as bench_train
    from studio.imports import quiet_libraries
    from studio.paths import ASSETS

    quiet_libraries()
    model = "studio/demo-tiny" if ns.smoke else "smollm2-135m-instruct"
    info: dict = {}
    prof = profile(activities=[ProfilerActivity.CPU])

    class Prof(TrainerCallback):
        def __init__(self, get_trainer):
            self.get_trainer, self.t = get_trainer, []

        def on_train_begin(self, args, state, control, **kw):
            _instrument(self.get_trainer(), info)

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == ns.warmup:
                prof.__enter__()
                self.t.append(time.perf_counter())

        def on_train_end(self, args, state, control, **kw):
            self.t.append(time.perf_counter())
            prof.__exit__(None, None, None)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = bench_train.run_config("uniform", model=model, data=ASSETS / "datasets" / "chat.jsonl",
                                     out=Path(tmp), steps=ns.steps, packing=False, smoke=ns.smoke,
                                     precision=ns.precision)
        holder: dict = {}
        cb = Prof(lambda: holder["trainer"] if "trainer" in holder else holder["job"].trainer)
        (bench_train._plain if ns.engine == "plain" else bench_train._studio)(cfg, lambda: cb, holder)
    steps = ns.steps - ns.warmup
    wall = (cb.t[-1] - cb.t[0]) / steps * 1e3
    totals: dict[str, float] = {}
    for e in prof.key_averages():
        if e.key.startswith("region::") or e.key.startswith("Optimizer.") or e.key.startswith("enumerate(DataLoader)"):
            totals[e.key] = e.cpu_time_total / 1e3 / steps
        if "ChunkedLogProbFunction" in e.key or e.key.startswith("autograd::engine::evaluate_function: ChunkedLog"):
            totals[e.key] = e.cpu_time_total / 1e3 / steps
    print(json.dumps({"engine": ns.engine, "precision": ns.precision, "ms_per_step_wall": wall,
                      "ms_per_step": totals, **info}))
    if ns.top:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=ns.top, max_name_column_width=50))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
