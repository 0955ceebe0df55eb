"""``Studio``'s lock order: a Chat model load holds the engine-cache lock only, never the app lock, so another
browser's Train status (and Start/Stop) answers while a model loads."""
from __future__ import annotations

import threading

import pytest

from studio.session import Studio


class SlowEngines:
    """``ChatEngine.from_run`` faked: it blocks until ``release`` is set (a slow base-model load)."""

    def __init__(self):
        self.loading, self.release = threading.Event(), threading.Event()

    def from_run(self, run_dir, **kw):
        self.loading.set()
        assert self.release.wait(30), "the test never released the load"
        return type("Engine", (), {"device": "cpu", "model": object(), "adapters": {}, "active": "run",
                                   "base_model": "studio/demo-tiny", "close": lambda self: None,
                                   "serves": lambda self, *a, **k: True,
                                   "load_adapter": lambda self, source: "extra"})()


@pytest.fixture
def slow(monkeypatch):
    from studio.inference import ChatEngine

    engines = SlowEngines()
    monkeypatch.setattr(ChatEngine, "from_run", staticmethod(engines.from_run))
    yield engines
    engines.release.set()


def _run_folder(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    (run / "checkpoints" / "checkpoint-2" / "adapter_config.json").write_text("{}\n")
    return run


def _returns_promptly(call, seconds: float = 5.0):
    out: list = []
    t = threading.Thread(target=lambda: out.append(call()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "a status call waited for the Chat model load"
    return out[0]


@pytest.mark.parametrize("how", ["adapter folder", "run folder"])
def test_train_status_answers_while_the_chat_tab_loads_a_model(tmp_path, slow, how):
    from studio.inference.opening import open_engine, open_engine_reporting
    from studio.ui.train_tab import TrainView, follow

    run = _run_folder(tmp_path)
    studio = Studio(runs_dir=tmp_path)
    source = str(run / "checkpoints" / "checkpoint-2") if how == "adapter folder" else str(run)
    opened: list = []
    chat = threading.Thread(target=lambda: opened.append(
        open_engine(studio, source) if how == "adapter folder" else
        open_engine_reporting(studio, source, lambda f, m: None)), daemon=True)
    chat.start()
    assert slow.loading.wait(30), "the fake load never started"
    # a second browser's Train tab: its status, the poll, and any handler taking the app lock
    assert _returns_promptly(lambda: studio.current_job) is None
    view, _ = _returns_promptly(lambda: follow(studio, TrainView()))
    assert view.key == ""
    assert _returns_promptly(lambda: studio.stop_training()) is False
    assert _returns_promptly(lambda: studio.lock.acquire(timeout=0.5) and (studio.lock.release() or True))
    slow.release.set()
    chat.join(30)
    assert not chat.is_alive() and opened and opened[0][0] is studio.chat


def test_a_second_load_waits_for_the_first_on_the_engine_cache_lock(tmp_path, slow):
    """Loads are one at a time (the engine-cache lock), and the app lock is free meanwhile."""
    run = _run_folder(tmp_path)
    studio = Studio(runs_dir=tmp_path)
    first = threading.Thread(target=studio.chat_engine, args=(run,), daemon=True)
    first.start()
    assert slow.loading.wait(30)
    assert not studio.chat_loading.acquire(timeout=0.2)  # held through the load
    assert studio.lock.acquire(timeout=0.5)  # the app lock is not
    studio.lock.release()
    slow.release.set()
    first.join(30)
    assert studio.chat is not None
