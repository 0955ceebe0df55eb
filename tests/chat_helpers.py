"""Helpers for the chat/eval tests: small run directories with a LoRA adapter trained for a few steps.

The adapter is trained with a plain optimizer loop on the run's own rendered rows (studio.data), so these tests
do not depend on the training engine; the run directory has the same layout ``studio.runs`` writes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.config import RunConfig
from studio.paths import ASSETS

WORD_PROBLEMS = {
    "data": {"sources": [{"path": str(ASSETS / "datasets" / "word_problems.jsonl")}], "format": "prompt_completion",
             "template": "{question}\n### Solution: {answer}", "response_template": "### Solution:",
             "eval_fraction": 0.1, "max_rows": 120},
    "model": {"name_or_path": "studio/demo-tiny"},
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
    "train": {"max_steps": 10, "learning_rate": 3e-3, "batch_size": 8, "max_length": 192},
}
CHAT = {
    "data": {"sources": [{"path": str(ASSETS / "datasets" / "chat.jsonl")}], "format": "messages",
             "eval_fraction": 0.1, "max_rows": 60},
    "model": {"name_or_path": "studio/demo-tiny"},
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
    "train": {"max_steps": 6, "learning_rate": 3e-3, "batch_size": 4, "max_length": 256},
}


def make_config(base: dict[str, Any], **overrides: Any) -> RunConfig:
    raw = {k: dict(v) for k, v in base.items()}
    for dotted, value in overrides.items():
        section, key = dotted.split("__", 1)
        raw[section][key] = value
    return RunConfig.from_dict(raw)


def train_run(cfg: RunConfig, runs_dir: Path, name: str, *, steps: int | None = None, seed: int = 0) -> Path:
    """Create ``runs_dir/name`` with config.yaml and an adapter trained for ``steps`` optimizer steps."""
    import torch

    from studio import runs
    from studio.data import prepare_datasets
    from studio.modeling import add_lora, load_base

    cfg.train.run_name = name
    run_dir = runs.create_run_dir(cfg, runs_dir)
    base = load_base(cfg.model, device="cpu", for_training=True)
    model, tok = base
    model = add_lora(model, cfg, base.added_token_ids)
    prepared = prepare_datasets(cfg, tok)
    rows = list(prepared.train)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.learning_rate)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps or cfg.train.max_steps):
        pick = torch.randint(len(rows), (cfg.train.batch_size,), generator=gen).tolist()
        batch = [rows[i] for i in pick]
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for j, r in enumerate(batch):
            n = len(r["input_ids"])
            ids[j, :n] = torch.tensor(r["input_ids"])
            attn[j, :n] = 1
            labels[j, :n] = torch.where(torch.tensor(r["completion_mask"]) == 1, torch.tensor(r["input_ids"]), -100)
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(run_dir / runs.ADAPTER)
    tok.save_pretrained(run_dir / runs.ADAPTER)
    return run_dir


# ------------------------------------------------------------------------------------------ shared pytest fixtures
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def one_thread():
    """Two cores shared with other jobs: one intra-op thread is several times faster than two here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def chat_runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("chat-runs")


@pytest.fixture(scope="session")
def wp_run(one_thread, chat_runs_dir):
    """A word-problems run ('### Solution:' template) trained for a few steps."""
    return train_run(make_config(WORD_PROBLEMS), chat_runs_dir, "wp", steps=8)


@pytest.fixture(scope="session")
def wp2_run(one_thread, chat_runs_dir):
    """A second adapter on the same base, trained differently (other seed, other learning rate)."""
    return train_run(make_config(WORD_PROBLEMS, train__learning_rate=1e-2), chat_runs_dir, "wp2", steps=8, seed=1)


@pytest.fixture(scope="session")
def chat_run(one_thread, chat_runs_dir):
    """A multi-turn chat run (messages format, ChatML template with a system prompt in the rows)."""
    return train_run(make_config(CHAT), chat_runs_dir, "chat", steps=3)


@pytest.fixture(scope="session")
def wp_engine(wp_run):
    from studio.inference import ChatEngine

    return ChatEngine.from_run(wp_run, device="cpu")


@pytest.fixture
def ckpt_run(wp_run, wp2_run, tmp_path):
    """A copy of the word-problems run whose two checkpoints are two different adapters (wp2's, then wp's)."""
    import shutil

    run = shutil.copytree(wp_run, tmp_path / "runs" / "wp")
    for step, source in ((4, wp2_run), (8, wp_run)):
        ckpt = run / "checkpoints" / f"checkpoint-{step}"
        shutil.copytree(source / "adapter", ckpt)
        (ckpt / "trainer_state.json").write_text("{}")
    return run
