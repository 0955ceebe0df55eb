"""Lines a user can't act on stay out of every command (issue 23.7)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bitsandbytes_cpu_kernel_notice_is_silenced():
    """bitsandbytes logs "Failed to load CPU gemm_4bit_forward from kernels-community" at import on CPUs with
    AVX512-BF16 (it falls back to its own kernel): the user can do nothing about it."""
    code = "from studio.imports import ml_libs; ml_libs(); import peft, bitsandbytes"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "gemm_4bit_forward" not in out.stderr and "publisher trust" not in out.stderr, out.stderr
