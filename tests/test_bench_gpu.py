"""`studio bench gpu`: the CPU smoke run of the same code, and the real run where a GPU exists."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from studio.bench.gpu_common import GPU, synthetic_rows

ROOT = Path(__file__).resolve().parent.parent


def test_synthetic_chats_are_skewed_within_bounds():
    rows = synthetic_rows(2000, GPU["min_len"], GPU["max_len"], 32000)
    lengths = [len(r["input_ids"]) for r in rows]
    assert min(lengths) >= 64 and max(lengths) <= 2048
    assert statistics.median(lengths) < statistics.mean(lengths)  # long tail
    assert max(lengths) == 2048 and min(lengths) == 64
    assert all(0 < sum(r["completion_mask"]) < len(r["input_ids"]) for r in rows)


def _bench(*args: str, timeout: int) -> dict:
    proc = subprocess.run([sys.executable, "-m", "studio.cli", "bench", "gpu", "--json", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_smoke_json_on_cpu():
    report = _bench("--smoke", "--models", "llama-1b", timeout=600)
    runs = {r["name"]: r for r in report["runs"]}
    assert set(runs) == {"plain", "tuned", "studio"}
    for r in runs.values():
        assert not r.get("error"), r
        assert r["tokens_per_s"] > 0 and r["peak_mem_bytes"] > 0 and r["mfu"] > 0 and r["first_loss"] > 0
        assert r["steps"] >= 1 and r["step_time_p95"] >= r["step_time_p50"] > 0
    # parity: the same random model and rows give the same loss through each run's forward (packed or padded)
    probes = [r["probe_loss"] for r in runs.values()]
    assert max(probes) - min(probes) < 1e-3
    assert runs["plain"]["packing"] is False and runs["plain"]["gradient_checkpointing"] is True
    assert runs["studio"]["packing"] is True and runs["studio"]["notes"]
    assert "engine: TrainingJob" in runs["studio"]["notes"]  # the real engine, not hand-built SFTConfig args
    assert set(report["ratios"]) == {"studio_vs_plain_tokens", "studio_vs_plain_memory", "studio_vs_tuned_tokens"}
    assert all(v is not None and v > 0 for v in report["ratios"].values())


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_gpu_bench_llama_shape_runs_and_studio_packs_on_a_boundary_aware_kernel():
    report = _bench("--models", "llama-1b", "--tokens", "50000", "--max-seconds", "20", timeout=600)
    runs = {r["name"]: r for r in report["runs"]}
    assert all(not r.get("error") for r in runs.values()), runs
    assert runs["studio"]["attn"] in ("flash_attention_2", "flex_attention")
    probes = [r["probe_loss"] for r in runs.values()]
    assert max(probes) - min(probes) < 0.05  # bf16
