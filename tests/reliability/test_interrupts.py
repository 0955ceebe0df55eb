"""Processes ended from outside at awkward moments: Ctrl-C in the middle of a streamed ``studio chat`` answer, and a
``studio train`` killed while its data is being prepared. Also ``--max-new-tokens`` past the model's context."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checks import one_clear_line
from conftest import tiny_config_dict

from studio import runs
from studio.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1"}


def _a_terminals_sigint() -> None:
    """The child gets SIGINT as a user's terminal gives it: handled by default, not blocked. A whole-suite run can
    leave this pytest process with SIGINT ignored or blocked (both are inherited through exec), which made the child
    finish its answer with exit 0 in CI."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _signal_masks(pid: int) -> str:
    """The child's blocked and ignored signal masks (for the failure message)."""
    try:
        return " ".join(line.strip() for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith(("SigBlk", "SigIgn")))
    except OSError:
        return "?"


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory):
    from hub_fixtures import make_run_dir

    return make_run_dir(tmp_path_factory.mktemp("interrupts") / "run")


@pytest.mark.slow
def test_ctrl_c_during_a_streamed_chat_answer_ends_cleanly(chat_run, tmp_path):
    err_path = tmp_path / "err.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "chat", "--run", str(chat_run), "--device", "cpu",
                                 "--prompt", "Tell me a long story.", "--max-new-tokens", "2000", "--sample",
                                 "--seed", "1", "--stop", "never-said"],
                                cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=err, preexec_fn=_a_terminals_sigint)
        first = proc.stdout.read(1)  # the answer has begun streaming
        assert first, err_path.read_text()
        masks = _signal_masks(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    text = err_path.read_text()
    assert proc.returncode == 130, (proc.returncode, masks, text[-2000:])
    assert "terminate called" not in text and "Traceback" not in text, text[-2000:]
    assert text.strip().splitlines()[-1] == "interrupted"


@pytest.mark.slow
def test_a_run_killed_while_preparing_its_data_reads_interrupted(tmp_path):
    RunConfig.from_dict(tiny_config_dict(tmp_path / "runs")).save(tmp_path / "run.yaml")
    script = ("import sys, time, studio.data\n"
              "def slow(*a, **k):\n    print('PREPARING', flush=True); time.sleep(600)\n"
              "studio.data.prepare_datasets = slow\n"
              "from studio.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", script, "train", "--config", str(tmp_path / "run.yaml"), "--quiet"],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "PREPARING"
    proc.kill()
    proc.wait(30)
    run_dir = next((tmp_path / "runs").iterdir())
    view = runs.load_run(run_dir)
    assert view.status == "interrupted", view.status
    assert "before training started" in view.message


@pytest.mark.slow
def test_max_new_tokens_past_the_context_is_blamed_on_itself(chat_run, capsys, monkeypatch):
    from studio.cli import main

    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at import: the libraries' own switches too (no 40 s of retries)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    assert main(["chat", "--run", str(chat_run), "--device", "cpu", "--prompt", "hi", "--max-new-tokens",
                 "100000"]) == 2
    one_clear_line(capsys.readouterr().err,
                   r"^error: max new tokens 100000 leaves no room for this prompt: the model reads 2048 tokens in "
                   r"all and the prompt needs \d+; ask for at most \d+ new tokens$")
