"""The app's threads yield to its runs: after ``yield_to_runs()`` every thread of the app runs lower, and a process
started through ``spawn`` (as the launcher starts a run) keeps the app's original priority. Run in a child
process, so this test process keeps its own priority."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, os, subprocess, threading, time
    from studio.priority import spawn, yield_to_runs
    base = os.getpriority(os.PRIO_PROCESS, 0)
    worker = threading.Thread(target=time.sleep, args=(30,), daemon=True)  # a server thread made before
    worker.start()
    lowered = yield_to_runs()
    later = []
    def make_thread():  # a thread a lowered thread makes later (a new gradio worker)
        later.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    t = threading.Thread(target=make_thread); t.start(); t.join()
    child = spawn(lambda: subprocess.Popen(["sleep", "30"]))
    plain = subprocess.Popen(["sleep", "30"])  # started from a lowered thread, not through spawn
    out = {"base": base, "lowered": lowered, "main": os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
           "worker": os.getpriority(os.PRIO_PROCESS, worker.native_id), "later": later[0],
           "child": os.getpriority(os.PRIO_PROCESS, child.pid), "plain": os.getpriority(os.PRIO_PROCESS, plain.pid)}
    child.kill(); plain.kill()
    print(json.dumps(out))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")
def test_the_app_yields_to_the_runs_it_starts():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STUDIO_APP_NICE": "5"}
    out = json.loads(subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                                    check=True, timeout=60).stdout)
    base = out["base"]
    if base + 5 > 19:
        pytest.skip("this process already runs at the lowest priority")
    assert out["lowered"] >= 2, out
    assert out["main"] == out["worker"] == out["later"] == out["plain"] == base + 5, out
    assert out["child"] == base, out


def test_zero_turns_it_off():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STUDIO_APP_NICE": "0"}
    code = "from studio.priority import yield_to_runs; print(yield_to_runs())"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip() == "0"
