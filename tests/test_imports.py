"""Two threads loading a dataset and a tokenizer at once on a cold interpreter (the first page load)."""
from __future__ import annotations

import subprocess
import sys

from studio.config import ASSETS_CONFIGS

CODE = f"""
import threading
from studio.config import load_config, ModelConfig
cfg = load_config(r"{ASSETS_CONFIGS}/linear_equations.yaml")
errors = []

def data():
    try:
        from studio.data import load_data
        load_data(cfg.data)
    except Exception as exc:
        errors.append(repr(exc))

def model():
    try:
        from studio.modeling import estimate_memory
        estimate_memory(cfg)
        from studio.modeling.tokenizer import load_tokenizer
        load_tokenizer(ModelConfig())
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=model), threading.Thread(target=data)]
for t in threads: t.start()
for t in threads: t.join()
print("ERRORS", errors)
"""


def test_concurrent_first_imports_do_not_break_dataset_loading(tmp_path):
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "ERRORS []" in proc.stdout, proc.stdout[-2000:]
