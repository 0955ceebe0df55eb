"""The reliability suite: bad inputs (one table, one test) and injected faults (slow ones launch processes).

Every case asserts one line naming the problem, the exit code, no traceback; after a fault the run folder,
config.yaml, events.jsonl and the last complete checkpoint are intact and a resume continues the step count.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # hub_server, conftest helpers


def _parent_conftest():
    import importlib.util

    spec = importlib.util.spec_from_file_location("studio_tests_conftest", Path(__file__).resolve().parent.parent
                                                  / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_parent = _parent_conftest()
# `from conftest import ...` finds either conftest, whichever pytest imported last
tiny_config_dict, free_port, real_config_dict = _parent.tiny_config_dict, _parent.free_port, _parent.real_config_dict
