"""The app's Start: a run in its own ``studio train`` process (``torchrun`` with N processes), never in the app.

The run folder is the only channel: the launcher makes it (config.yaml), starts the child in its own process group
(so a Ctrl-C or a kill of the app never reaches it), records its pid and start time in ``process.json`` and sends
its output to ``child.log``. :mod:`studio.training.follower` reads the folder back.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from studio import runs
from studio.errors import ConfigError
from studio.training.follower import CHILD_LOG



def fsdp_wrap_class(cfg: Any) -> str:
    """The decoder layer class FSDP wraps: the model class's own ``_no_split_modules``."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING

    from studio.modeling.memory import _model_config_for
    from studio.modeling.params import transformers_config

    config = transformers_config(_model_config_for(cfg.model))
    names = list(getattr(MODEL_FOR_CAUSAL_LM_MAPPING[type(config)], "_no_split_modules", None) or [])
    if not names:
        raise ConfigError(f"train.distributed=fsdp: {cfg.model.name_or_path} names no decoder layer class to wrap; "
                          "use ddp")
    return ",".join(names)


def distributed_env(cfg: Any, *, gpus: int | None = None) -> dict[str, str]:
    """What accelerate reads (as ``accelerate launch --use_fsdp/--use_deepspeed`` would set it) for
    ``train.distributed``; {} for one process or DDP.

    Raises:
        ConfigError: FSDP or DeepSpeed where they cannot run (no GPU, deepspeed not installed).
    """
    t = cfg.train
    if t.processes <= 1 or t.distributed == "ddp":
        return {}
    gpus = gpu_count() if gpus is None else gpus
    if t.distributed == "fsdp":
        if not gpus:
            raise ConfigError("train.distributed=fsdp needs CUDA GPUs (Studio shards with FSDP on GPUs only); on a "
                              "CPU use ddp")
        return {"ACCELERATE_USE_FSDP": "true", "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
                "FSDP_TRANSFORMER_CLS_TO_WRAP": fsdp_wrap_class(cfg), "FSDP_SHARDING_STRATEGY": "FULL_SHARD",
                "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT", "FSDP_USE_ORIG_PARAMS": "true",
                "FSDP_CPU_RAM_EFFICIENT_LOADING": "true", "FSDP_SYNC_MODULE_STATES": "true"}
    stage = t.distributed[-1]
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"train.distributed={t.distributed} needs the deepspeed package, which is not installed "
                          "(pip install deepspeed), or use ddp")
    if not gpus:
        raise ConfigError(f"train.distributed={t.distributed} needs CUDA GPUs (DeepSpeed ZeRO does not train on a "
                          "CPU here); use ddp")
    return {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": stage,
            "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": str(t.grad_accum)}


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_processes(cfg: Any, *, gpus: int | None = None) -> None:
    """N processes on N GPUs at most (on a CPU any N runs, with gloo).

    Raises:
        ConfigError: more processes than GPUs on a GPU run.
    """
    n = cfg.train.processes
    if n <= 1 or cfg.train.device == "cpu":
        return
    gpus = gpu_count() if gpus is None else gpus
    if gpus and n > gpus:
        raise ConfigError(f"train.processes={n} but this machine has {gpus} GPU{'s' if gpus > 1 else ''}; "
                          f"set train.processes to {gpus} or fewer (or train.device=cpu)")


def check_port(port: int, host: str = "127.0.0.1") -> None:
    """Raises ConfigError naming the rendezvous port when something already listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            raise ConfigError(f"the rendezvous port {host}:{port} is in use (another run or program); choose "
                              "another port") from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch_command(cfg: Any, run_dir: Path, *, resume: bool = False, port: int | None = None) -> list[str]:
    """The child's command line: ``studio train`` on the run folder, under ``torchrun`` for N processes."""
    train = ["-m", "studio.cli", "train"]
    train += ["--resume", str(run_dir)] if resume else ["--config", str(run_dir / runs.CONFIG),
                                                        "--run-dir", str(run_dir)]
    n = cfg.train.processes
    if n <= 1:
        return [sys.executable, *train]
    port = port or free_port()
    check_port(port)
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(n),
            "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", *train]


def child_env(cfg: Any) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **distributed_env(cfg)}
    if cfg.train.processes > 1 and (cfg.train.device == "cpu" or not gpu_count()):
        # gloo on CPU: the cores are shared between the processes, not oversubscribed
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg.train.processes)))
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def launch(cfg: Any, runs_dir: str | Path, *, resume: str | Path | None = None) -> Any:
    """Start a run in its own process; returns its :class:`~studio.training.follower.RunProcess`.

    Raises:
        BusyError: a live run already trains in this runs folder (started by this app or another).
        ConfigError: N processes, FSDP or DeepSpeed this machine cannot run.
        TrainingError: ``resume`` has no checkpoint.
    """
    import fcntl

    from studio.errors import BusyError, TrainingError
    from studio.liveness import live_runs, write_process
    from studio.training.follower import RunProcess

    runs_dir = Path(runs_dir)
    if resume is not None:
        resume = Path(resume)
        cfg = runs.load_run(resume).config
        if runs.last_checkpoint(resume) is None:
            raise TrainingError(f"{resume} has no complete checkpoint to resume from; start a new run with: "
                                f"studio train --config {resume / runs.CONFIG}")
    check_processes(cfg)
    if resume is None:
        from studio.training.start_from import resolve_start

        resolve_start(cfg)  # a wrong train.start_from is refused here, before a run folder or a child exists
    env = child_env(cfg)
    runs_dir.mkdir(parents=True, exist_ok=True)
    lock = os.open(runs_dir, os.O_RDONLY)  # the folder itself is the lock: no stray file among the runs
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two apps on one runs folder: one check-and-start at a time
        live = live_runs(runs_dir)
        if live:
            raise BusyError(f"a run is in progress: {live[0]} (pid {_pid(live[0])})")
        run_dir = resume if resume is not None else runs.create_run_dir(cfg, runs_dir)
        argv = launch_command(cfg, run_dir, resume=resume is not None)
        popen = spawn_child(argv, run_dir / CHILD_LOG, env)
        write_process(run_dir, popen.pid, processes=cfg.train.processes, command=argv)
    finally:
        os.close(lock)
    return RunProcess(run_dir, popen=popen, cfg=cfg)


def spawn_child(argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """The child, at the app's starting priority (:mod:`studio.speed.priority`: the app may serve below it), in its
    own process group, its output appended to ``log_path``.

    Its own group keeps the terminal's Ctrl-C and hang-up (sent to the foreground group) from it. Not its own
    session: Linux schedules each session as one group (autogroup) with an equal share of the CPU whatever the nice
    values, so a run in its own session would share the cores half and half with an app busy serving browsers; in the
    app's session, the app's lower priority (:mod:`studio.speed.priority`) holds."""
    from studio.speed.priority import start_run

    return start_run(_popen, argv, log_path, env)


def _popen(argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    import signal

    group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    # SIGTERM blocked until the child's GracefulStop takes it: a Stop pressed at once is kept, not fatal
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        with open(log_path, "ab") as log:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=os.getcwd(), **group)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _pid(run_dir: Path) -> Any:
    from studio.liveness import read_process

    return read_process(run_dir).get("pid")
