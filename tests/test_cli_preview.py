"""`studio preview` end to end: JSON shape on every bundled config, one-line errors with exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from studio.config import ASSETS_CONFIGS


def studio(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "studio.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_preview_json_on_every_bundled_config(tmp_path):
    # one process for all four configs keeps the suite quick; each goes through the CLI's main()
    code = (
        "import json, sys, io, contextlib\n"
        "from studio.cli import main\n"
        "out = {}\n"
        "for name in ['linear_equations', 'word_problems', 'python_assistant', 'chat']:\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        f"        rc = main(['preview', '--config', r'{ASSETS_CONFIGS}/' + name + '.yaml', '--rows', '2', '--json'])\n"
        "    out[name] = (rc, json.loads(buf.getvalue()))\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = {"linear_equations": "prompt_completion", "word_problems": "prompt_completion",
                "python_assistant": "instruction", "chat": "messages"}
    for name, (rc, out) in results.items():
        assert rc == 0
        assert out["format"] == expected[name]
        assert len(out["rows"]) == 2
        for row in out["rows"]:
            assert row["trained_text"]
            assert all(piece in row["text"] for piece in row["trained_text"].split("<|im_end|>"))
            assert row["trained_tokens"] < row["tokens"]
        stats = out["stats"]
        for key in ("n_rows", "p50_tokens", "p95_tokens", "max_tokens", "truncated_fraction",
                    "trained_token_fraction", "zero_trained_rows"):
            assert key in stats
        assert stats["n_rows"] >= 200 and 0 < stats["trained_token_fraction"] < 1
    assert "#### " in results["word_problems"][1]["rows"][0]["trained_text"]


@pytest.mark.parametrize("yaml_text, message", [
    ("train:\n  learning_rate: -1\n", "train.learning_rate must be > 0, got -1"),
    ("train:\n  batchsize: 4\n", "unknown key train.batchsize"),
    ("data:\n  sources:\n    - path: nowhere.jsonl\n", "file not found: nowhere.jsonl"),
    ("data:\n  format: tabular\n", "data.format must be one of"),
])
def test_preview_errors_are_one_line(tmp_path, yaml_text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    proc = studio("preview", "--config", str(cfg), cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_preview_bad_template_and_missing_config(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n')
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  sources:\n    - path: {data}\n  template: '{{questoin}} {{answer}}'\n")
    proc = studio("preview", "--config", str(cfg), cwd=tmp_path)
    assert proc.returncode == 2 and "{questoin} matches no column" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = studio("preview", "--config", str(tmp_path / "none.yaml"), cwd=tmp_path)
    assert proc.returncode == 2 and "config file not found" in proc.stderr
