"""A run in its own process: a child killed -9, a child that dies at start, one run per runs folder across apps,
the app's memory after a run, N processes from the Train tab's start, two localhost nodes, rendezvous ports."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checks import log_steps, run_intact
from conftest import free_port, tiny_config_dict

from studio import runs
from studio.config import RunConfig
from studio.errors import BusyError, ConfigError
from studio.events import EventLog, Failed, Finished, Note, Started, Stopped

ROOT = Path(__file__).resolve().parents[2]
LONG = 5000


def _wait_for(predicate, timeout: float = 180, what: str = ""):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _checkpoint(run_dir: Path, step: int):
    return lambda: (last := runs.last_checkpoint(run_dir)) is not None and int(last.name.split("-")[-1]) >= step


@pytest.fixture
def studio(tmp_path):
    from studio.session import Studio

    s = Studio(runs_dir=tmp_path / "runs")
    yield s
    if s.job is not None and s.job.alive:
        s.job.stop()
        s.job.wait(60)


@pytest.mark.slow
def test_child_killed_with_sigkill_is_interrupted_and_resumable_and_one_run_per_folder_across_apps(
        studio, tiny_cfg, tmp_path):
    from studio.session import Studio

    job = studio.start_training(tiny_cfg(max_steps=LONG, save_steps=2))
    assert job.pid != os.getpid() and runs.load_run(job.run_dir).status in ("running", "new")
    other = Studio(runs_dir=tmp_path / "runs")  # a second app on the same runs folder
    assert other.job is not None and other.job.run_dir == job.run_dir, "it follows the live run"
    other.job = None  # even an app that lost track of it is refused, by the folder's process record
    with pytest.raises(BusyError, match=f"a run is in progress: .*{job.run_dir.name} \\(pid {job.pid}\\)"):
        other.start_training(tiny_cfg())
    _wait_for(_checkpoint(job.run_dir, 4), what="two checkpoints")
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait(60)
    view = runs.load_run(job.run_dir)
    assert view.status == "interrupted" and view.checkpoint_path is not None
    note = EventLog.read(job.run_dir / runs.EVENTS).last(Note)
    assert "ended without saving (exit code -9)" in note.message and "resume it from checkpoint-" in note.message
    assert studio.job.status().state == "interrupted"
    from studio.ui.train_tab import run_choices, start

    assert job.run_dir.name in run_choices(studio)[1], "offered for Resume"
    step = run_intact(job.run_dir)
    message, _ = start(studio, None, resume=job.run_dir.name)  # the Train tab's Resume: a new child, same folder
    resumed = studio.job
    assert "Resuming" in message and resumed is not job and resumed.result is None
    # the killed child may have logged steps past its last checkpoint: wait for the new child's own step
    _wait_for(lambda: resumed.status().state == "running" and resumed.status().step > step,
              what="a step of the resumed process")
    assert resumed._last(Started).start_step == step and any(s > step for s in log_steps(job.run_dir))
    assert studio.stop_training() and resumed.wait(60)
    assert isinstance(resumed.result, Stopped) and runs.load_run(job.run_dir).status == "stopped"


@pytest.mark.slow
def test_child_that_dies_at_start_fails_the_run_with_its_last_lines(studio, tiny_cfg, monkeypatch):
    from studio.training import launcher

    crash = ("import sys; print('loading the model...', flush=True); "
             "sys.stderr.write('ImportError: libcuda.so.1: cannot open shared object file\\n'); sys.exit(3)")
    monkeypatch.setattr(launcher, "launch_command", lambda cfg, run_dir, **kw: [sys.executable, "-c", crash])
    job = studio.start_training(tiny_cfg())
    assert job.wait(60)
    failed = job.result
    assert isinstance(failed, Failed), EventLog.read(job.run_dir / runs.EVENTS).all()
    assert failed.message == "the training process ended before training started (exit code 3)"
    assert "ImportError: libcuda.so.1: cannot open shared object file" in failed.suggestion
    assert "loading the model..." in failed.suggestion
    assert runs.load_run(job.run_dir).status == "failed" and studio.current_job is None
    from studio.ui.train_tab import TrainView, follow, status_line

    view, _ = follow(studio, TrainView())
    state, text, _ = status_line(studio, view)
    assert state == "failed" and "ended before training started" in text


@pytest.mark.slow
def test_the_app_does_not_grow_by_the_model_it_trained(studio, tiny_cfg):
    """The run's model lives and dies in the child: the app's RSS after a run stays within the model's size."""
    import psutil

    from studio.config import LoraConfig
    from studio.modeling.memory import _model_config_for
    from studio.modeling.params import count_parameters

    cfg = tiny_cfg(max_steps=2)
    model_bytes = 4 * count_parameters(_model_config_for(cfg.model), LoraConfig()).total  # fp32 on the CPU
    me = psutil.Process()
    before = me.memory_info().rss
    job = studio.start_training(cfg)
    assert job.wait(300) and isinstance(job.result, Finished), job.result
    grown = me.memory_info().rss - before
    print(f"\napp RSS before {before / 2**20:.1f} MB, after {(before + grown) / 2**20:.1f} MB; "
          f"model {model_bytes / 2**20:.1f} MB")
    assert grown < model_bytes, (grown, model_bytes)


@pytest.mark.slow
def test_two_processes_from_the_train_tab_start_finish_with_world_size_2(studio, tiny_cfg):
    from studio.ui.train_tab import start

    message, run_dir = start(studio, tiny_cfg(max_steps=2, processes=2, device="cpu"))
    assert "Started" in message and "torch.distributed.run" in studio.job.record["command"]
    assert studio.job.wait(400), "the 2-process run did not finish"
    assert isinstance(studio.job.result, Finished), studio.job.result
    env = json.loads((Path(run_dir) / runs.ENVIRONMENT).read_text())
    assert env["world_size"] == 2
    assert runs.load_run(run_dir).last(Started).world_size == 2
    assert [p for p in Path(run_dir).parent.iterdir() if p.is_dir()] == [Path(run_dir)], "rank 0 alone made it"


@pytest.mark.slow
def test_two_localhost_nodes_train_one_run(tmp_path):
    cfg_path = tmp_path / "run.yaml"
    RunConfig.from_dict(tiny_config_dict(tmp_path / "runs", max_steps=2, device="cpu")).save(cfg_path)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(i),
                               "--nproc_per_node", "1", "--rdzv_endpoint", f"127.0.0.1:{port}", "-m", "studio.cli",
                               "train", "--config", str(cfg_path), "--quiet"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [n.communicate(timeout=400)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(o[-2000:] for o in outs)
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir()]
    view = runs.load_run(run_dir)
    assert view.status == "finished" and view.environment["world_size"] == 2
    assert (run_dir / runs.ADAPTER / "adapter_model.safetensors").is_file()


def test_rendezvous_port_in_use_and_distributed_options_are_one_line(tiny_cfg, tmp_path):
    from studio.training import launcher

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"the rendezvous port 127.0.0.1:{port} is in use"):
            launcher.launch_command(tiny_cfg(processes=2), tmp_path, port=port)
    with pytest.raises(ConfigError, match="train.processes=4 but this machine has 2 GPUs; set train.processes to 2"):
        launcher.check_processes(tiny_cfg(processes=4, device="auto"), gpus=2)
    launcher.check_processes(tiny_cfg(processes=4, device="cpu"), gpus=0)  # on a CPU any N runs (gloo)
    with pytest.raises(ConfigError, match="fsdp needs CUDA GPUs"):
        launcher.distributed_env(tiny_cfg(processes=2, distributed="fsdp"), gpus=0)
    fsdp = launcher.distributed_env(tiny_cfg(processes=2, distributed="fsdp"), gpus=2)
    assert fsdp["ACCELERATE_USE_FSDP"] == "true" and fsdp["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "LlamaDecoderLayer"
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        with pytest.raises(ConfigError, match="deepspeed-zero3 needs the deepspeed package, which is not installed"):
            launcher.distributed_env(tiny_cfg(processes=2, distributed="deepspeed-zero3"), gpus=2)
    assert launcher.distributed_env(tiny_cfg(processes=2), gpus=0) == {}  # ddp: torchrun alone


def test_launch_scripts_for_slurm_and_skypilot(tmp_path, capsys):
    from studio.cli import main

    cfg_path = tmp_path / "run.yaml"
    RunConfig.from_dict(tiny_config_dict(tmp_path / "runs")).save(cfg_path)
    out = tmp_path / "train.sbatch"
    assert main(["launch-script", "--slurm", "--config", str(cfg_path), "--nodes", "3", "--gpus-per-node", "8",
                 "--set", "train.max_steps=9", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("#!/bin/bash\n") and "#SBATCH --nodes=3" in text and "#SBATCH --gpus-per-node=8" in text
    assert "--nnodes 3 --nproc_per_node 8" in text and '--rdzv_endpoint "$HEAD:29500"' in text
    assert f"-m studio.cli train --config {cfg_path} --set train.max_steps=9" in text
    assert main(["launch-script", "--skypilot", "--config", str(cfg_path), "--nodes", "2"]) == 0
    import yaml

    task = yaml.safe_load(capsys.readouterr().out)
    assert task["num_nodes"] == 2 and task["resources"]["accelerators"].endswith(":1")
    assert '--node_rank "$SKYPILOT_NODE_RANK"' in task["run"] and f"train --config {cfg_path}" in task["run"]
    assert main(["launch-script", "--slurm", "--config", str(tmp_path / "nope.yaml")]) == 2


@pytest.mark.slow
def test_studio_app_help_from_an_installed_package(tmp_path):
    """``pip install .`` (the wheel, no dependencies) into a fresh venv, then its ``studio app --help``."""
    import shutil

    src, wheel_dir = tmp_path / "src", tmp_path / "wheel"  # a copy: the build's folders stay out of the checkout
    for folder in ("studio", "assets"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheel_dir), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    wheel = next(wheel_dir.glob("fine_tune_studio-*.whl"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                              "--no-deps", "-q", str(wheel)], capture_output=True, text=True, env=env, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    out = subprocess.run([str(venv / "bin" / "studio"), "app", "--help"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: studio app") and "--runs-dir" in out.stdout and "--share" in out.stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "from studio.paths import ASSETS; print(ASSETS)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assets = Path(where.stdout.strip())
    assert assets.is_relative_to(venv), "the installed package finds its own copy of the assets"
    assert (assets / "configs" / "linear_equations.yaml").is_file() and any((assets / "presets").iterdir())
