"""`studio train` end to end: progress line, run directory printed, clear one-line failures, torchrun x2 on CPU."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from studio import runs
from studio.cli import main
from studio.config import RunConfig
from studio.events import EventLog, Finished, Log, Started


@pytest.fixture
def config_file(tmp_path):
    from conftest import tiny_config_dict

    path = tmp_path / "run.yaml"
    RunConfig.from_dict(tiny_config_dict(tmp_path / "runs", max_steps=3)).save(path)
    return path


def test_train_prints_progress_and_the_run_directory(config_file, capsys):
    rc = main(["train", "--config", str(config_file), "--set", "train.max_steps=2", "--set", "train.save_steps=1"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    run_dir = Path(out.strip().splitlines()[-1])
    assert run_dir.is_dir() and run_dir.parent == config_file.parent / "runs"
    assert "2/2 | loss" in err and "ETA" in err and "tok/s" in err
    events = EventLog.read(run_dir / runs.EVENTS).all()
    assert isinstance(events[-1], Finished) and [e.step for e in events if isinstance(e, Log)] == [1, 2]
    assert RunConfig.from_dict(__import__("yaml").safe_load((run_dir / runs.CONFIG).read_text())).train.max_steps == 2

    # --resume with a larger max_steps continues the same run from checkpoint-2
    rc = main(["train", "--resume", str(run_dir), "--set", "train.max_steps=3", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.strip() == str(run_dir)
    events = EventLog.read(run_dir / runs.EVENTS).all()
    starts = [e for e in events if isinstance(e, Started)]
    assert [s.start_step for s in starts] == [0, 2]
    assert [e.step for e in events if isinstance(e, Log)] == [1, 2, 3]


def test_train_names_the_final_evaluation_and_prints_its_loss(config_file, capsys):
    """After the last step the held-out rows are scored: the phase is named, then its loss printed (issue 23.1)."""
    rc = main(["train", "--config", str(config_file), "--set", "train.max_steps=2", "--set", "data.eval_fraction=0.1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert re.search(r"evaluating \d+ held-out rows after the last step\.\.\.", err), err
    assert re.search(r"eval loss \d+\.\d{4} at step 2", err), err
    assert err.index("evaluating") < err.index("eval loss")


def test_train_errors_are_one_clear_line(config_file, tmp_path, capsys):
    assert main(["train", "--config", str(config_file), "--set", "train.batch_size=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train.batch_size must be > 0" in err
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert "--config" in capsys.readouterr().err
    (tmp_path / "empty_run").mkdir()
    RunConfig().save(tmp_path / "empty_run" / "config.yaml")
    assert main(["train", "--resume", str(tmp_path / "empty_run")]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_two_cpu_processes_write_one_run_directory(config_file, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "studio.cli", "train", "--config",
                           str(config_file), "--set", "train.save_steps=2"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(printed) == 1  # only rank 0 prints the run directory
    made = list((tmp_path / "runs").iterdir())
    assert made == [Path(printed[0])]
    events = EventLog.read(made[0] / runs.EVENTS).all()
    started = [e for e in events if isinstance(e, Started)]
    assert len(started) == 1 and started[0].world_size == 2
    assert [e.step for e in events if isinstance(e, Log)] == [1, 2, 3]  # one writer: no duplicate lines
    assert isinstance(events[-1], Finished)
    env_json = json.loads((made[0] / runs.ENVIRONMENT).read_text())
    assert env_json["world_size"] == 2
    assert (made[0] / "adapter" / "adapter_config.json").exists()
    assert (made[0] / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists()


def test_the_progress_line_is_tqdm_meter_and_clock():
    from studio.commands.train import _progress

    line = _progress(Log(step=5, total_steps=20, loss=1.23456, learning_rate=2e-4, tokens_per_s=1234.4, eta_s=67.4))
    assert line == "[#####...............] 5/20 | loss 1.2346 | lr 2.00e-04 | 1,234 tok/s | ETA 01:07"
    assert _progress(Log(step=3, eta_s=3725)).endswith("] 3/? | ETA 1:02:05")
