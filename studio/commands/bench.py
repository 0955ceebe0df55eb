"""`studio bench NAME`: benchmarks printed as ratios against a baseline run in the same call.

    studio bench train-overhead [--config FILE] [--steps 40] [--rounds 2]
    studio bench learn [--steps 30] [--rows 20] [--json] [--method grpo|dpo|orpo|kto|simpo]
    studio bench poll-load [--clients 20] [--steps 150] [--interval 1.0]
    studio bench train [--smoke] [--steps 10] [--rounds 1] [--warmup 2] [--json] [--method grpo|dpo|orpo|kto|simpo]
    studio bench memory [--steps 2]
"""
from __future__ import annotations

import argparse

BENCHES = {"train-overhead": "Studio's training engine vs a plain TRL SFTTrainer script (steps/s ratio).",
           "gpu-memory": "GPU: LoRA on a random ~1B Llama, bf16 and 4-bit, 1024 tokens: tokens/s, peak memory, "
                         "memory estimate error.",
           "gpu": "Studio's engine vs plain and hand-tuned TRL on Llama-1B / Mistral-7B shapes (--smoke: CPU, tiny).",
           "memory": "The memory estimate vs the tensor peak of real SmolLM2 runs (torch's MemTracker, CPU): error "
                     "per case, checkpointing off and on.",
           "data": "Data cache speed-up and tokenization rows/s vs a plain datasets.map.",
           "learn": "The real SmolLM2 on the bundled word problems: base vs tuned held-out accuracy and #### "
                    "format rate after --steps (default 30, about 5 minutes on 2 cores); --method grpo: reward "
                    "tuning with answer + format (smollm2_grpo.yaml), the same figures; --method dpo|orpo|kto|simpo: the "
                    "bundled pairs (smollm2_dpo.yaml), base vs tuned held-out preference accuracy (default 30 steps).",
           "eval-overhead": "The real SmolLM2: evaluation at the automatic interval with the best checkpoint kept vs "
                            "at the end only (wall-time ratio), then the forgetting check per checkpoint.",
           "chat-memory": "Chat compare mode (one copy of the base) vs the base loaded twice: peak memory ratio.",
           "poll-load": "N gradio_client sessions poll the Train tab of a live run: p95 poll latency and the "
                        "step-time slowdown vs no pollers (ratio).",
           "train": "Studio's engine vs plain TRL SFTTrainer + peft on the real SmolLM2, uniform and skewed chats, "
                    "each run in its own process: steps/s, real tokens/s, peak RSS, first-step loss, ratios "
                    "(--smoke: the demo model, a few steps); --method dpo|orpo|kto|simpo (repeatable): the "
                    "bundled pairs, Studio vs a plain TRL trainer of that method: steps/s and peak RSS ratios; "
                    "--method grpo: Studio's GRPO vs a plain TRL GRPOTrainer on the word problems, same rewards."}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(BENCHES), help="; ".join(f"{k}: {v}" for k, v in BENCHES.items()))
    parser.add_argument("--config", help="Run config YAML (default: linear equations on the demo model).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="Override a config value (repeatable).")
    parser.add_argument("--steps", type=int, default=None,
                        help="Optimizer steps per timed run (default 40; learn: 30).")
    parser.add_argument("--rounds", type=int, default=None,
                        help="Alternated rounds (each runs both engines; default 2, train: 1).")
    parser.add_argument("--warmup", type=int, default=None,
                        help="Steps left out of the timing at the start (default 5, train: 2).")
    parser.add_argument("--rows", type=int, default=None,
                        help="data: synthetic chat rows (default 20000); learn: held-out rows scored (default 20); "
                             "train: rows per setup (default 60).")
    parser.add_argument("--method", action="append", choices=("sft", "grpo", "dpo", "orpo", "kto", "simpo"),
                        default=None, help="learn: grpo trains with rewards (smollm2_grpo.yaml), dpo/orpo/kto/simpo on "
                        "the bundled pairs (smollm2_dpo.yaml), instead of SFT; train: a preference method (repeatable) or "
                        "grpo against plain TRL.")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="train: the Studio runs' train.precision (the plain TRL baseline stays fp32).")
    parser.add_argument("--setup", dest="setups", action="append", choices=("uniform", "skewed"),
                        help="train: only this setup (repeatable; default both).")
    parser.add_argument("--clients", type=int, default=20, help="poll-load: concurrent browser sessions.")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="poll-load: seconds between one session's polls (the Train tab's timer); 0: flat out.")
    parser.add_argument("--app-same-priority", action="store_true",
                        help="poll-load: the app serves at its runs' priority (by default below it, as studio app).")
    from studio.bench.gpu import add_arguments as gpu_arguments

    gpu_arguments(parser.add_argument_group("gpu"))


def run(args: argparse.Namespace) -> int:
    from studio.errors import ConfigError

    if args.name == "gpu":
        from studio.bench import gpu

        return gpu.run(args)
    if args.name == "chat-memory":
        from studio.bench.chat import chat_memory

        result = chat_memory(device="auto", size="medium", report=lambda line: print(line, flush=True))
        print(f"ratio {result.ratio:.3f}")
        return 0
    if args.name == "data":
        from studio.bench.data import run_data_bench

        run_data_bench(args.rows or 20_000)
        return 0
    if args.name == "memory":
        from studio.bench.memory import cases, run_memory_bench
        from studio.imports import quiet_libraries

        quiet_libraries()
        rows = run_memory_bench(cases(args.steps or 2), report=lambda line: print(line, flush=True))
        print(f"max error {max(abs(r['error']) for r in rows):.3f}")
        return 0
    if args.name == "learn":
        return _learn(args)
    if args.name == "eval-overhead":
        import json
        import tempfile
        from pathlib import Path

        from studio.bench.evaluation import run_eval_bench

        with tempfile.TemporaryDirectory(prefix="studio-eval-bench-") as tmp:
            out = run_eval_bench(Path(tmp), steps=args.steps or 24, rows=args.rows or 80,
                                 report=lambda line: print(line, flush=True))
        print(json.dumps(out)[:20000])
        return 0
    if args.name == "train":
        return _train(args)
    args.steps = args.steps or 40
    args.rounds = 2 if args.rounds is None else args.rounds
    args.warmup = 5 if args.warmup is None else args.warmup

    if args.name == "poll-load":
        if args.clients < 1 or args.steps <= args.warmup + 2:
            raise ConfigError("--clients must be >= 1 and --steps larger than --warmup + 2")
        from studio.imports import quiet_libraries
        from studio.config import load_config
        from studio.ui.poll_bench import poll_load

        quiet_libraries()
        cfg = load_config(args.config) if args.config else None
        if cfg is None:
            from studio.bench.overhead import default_config

            cfg = default_config(args.steps)
        cfg = cfg.with_overrides([*args.overrides, f"train.max_steps={args.steps}", "train.logging_steps=1"])
        result = poll_load(cfg, clients=args.clients, steps=args.steps, warmup=args.warmup, interval=args.interval,
                           serve_below=not args.app_same_priority, report=lambda line: print(line, flush=True))
        print(f"p95 {result.p95_s * 1e3:.1f} ms")
        print(f"ratio {result.slowdown:.3f}")
        return 0
    if args.steps < 3 or args.rounds < 1:
        raise ConfigError("--steps must be >= 3 and --rounds >= 1")
    from studio.imports import quiet_libraries

    quiet_libraries()
    from studio.bench import overhead
    from studio.config import load_config

    if args.name == "gpu-memory":
        from studio.bench.gpu_memory import gpu_memory

        gpu_memory(steps=args.steps, report=lambda line: print(line, flush=True))
        return 0
    cfg = load_config(args.config) if args.config else overhead.default_config(args.steps)
    cfg = cfg.with_overrides(args.overrides)
    result = overhead.train_overhead(cfg, steps=args.steps, rounds=args.rounds, warmup=args.warmup,
                                  report=lambda line: print(line, flush=True))
    print(f"ratio {result.ratio:.3f}")
    return 0


def _learn(args: argparse.Namespace) -> int:
    import json
    import sys

    from studio.bench.learn import DEFAULT_ROWS, DEFAULT_STEPS, learn
    from studio.imports import quiet_libraries

    quiet_libraries()
    method = (args.method or ["sft"])[-1]
    kwargs = {} if method in ("sft", "grpo") else {"method": method}
    if method == "grpo":
        from studio.bench.learn_grpo import learn_grpo

        learn = learn_grpo  # noqa: F811 - same call, GRPO's config and reward figures
    pref = bool(kwargs)
    result = learn(config=args.config, steps=args.steps or (30 if pref else DEFAULT_STEPS),
                   rows=args.rows or (None if pref else DEFAULT_ROWS), overrides=args.overrides, **kwargs,
                   report=(lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print)
    if args.json:
        print(json.dumps(result))
    return 0


def _train(args: argparse.Namespace) -> int:
    import json
    import sys

    from studio.bench.train import bench_train

    methods = tuple(m for m in (args.method or []) if m != "sft")
    if "grpo" in methods:
        from studio.bench.train_grpo import bench_train_grpo

        result = bench_train_grpo(steps=args.steps or (3 if args.smoke else 8), rows=args.rows,
                                  warmup=(1 if args.smoke else 2) if args.warmup is None else args.warmup,
                                  rounds=args.rounds or 1, smoke=args.smoke,
                                  report=(lambda line: print(line, file=sys.stderr, flush=True))
                                  if args.json else print)
        if args.json:
            print(json.dumps(result))
        return 0 if all(not r.get("error") for r in result["runs"]) else 1
    if methods:
        from studio.bench.train_pref import bench_train_pref

        result = bench_train_pref(methods, steps=args.steps or (4 if args.smoke else 10), rows=args.rows,
                                  warmup=2 if args.warmup is None else args.warmup, rounds=args.rounds or 1,
                                  smoke=args.smoke, report=(lambda line: print(line, file=sys.stderr, flush=True))
                                  if args.json else print)
        if args.json:
            print(json.dumps(result))
        return 0 if all(not r.get("error") for r in result["runs"]) else 1
    result = bench_train(steps=args.steps or (4 if args.smoke else 10), rows=args.rows,
                         warmup=2 if args.warmup is None else args.warmup, rounds=args.rounds or 1, smoke=args.smoke,
                         precision=args.precision, setups=tuple(args.setups or ("uniform", "skewed")),
                         report=(lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print)
    if args.json:
        print(json.dumps(result))
    return 0 if all(not r.get("error") for r in result["runs"]) else 1
