"""CPU threads follow the cores other programs leave free (studio.speed.cpu_share)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from studio.speed.cpu_share import CpuShare, busy_cpu_s, threads_for


@pytest.mark.parametrize("free, current, most, want", [
    (2.0, 2, 2, 2),   # a quiet box keeps every thread
    (1.0, 2, 2, 1),   # a core taken: one thread
    (1.4, 2, 2, 1),   # less than half a core left for the second thread
    (1.6, 2, 2, 2),   # more than half: keep it
    (1.6, 1, 2, 1),   # ... but do not add it back below three quarters (no flapping)
    (1.8, 1, 2, 2),   # three quarters free: add it back
    (0.1, 4, 4, 1),   # never below one
    (8.0, 2, 4, 4),   # never above the threads the run started with
    (3.0, 1, 4, 3),
])
def test_threads_for_the_free_cores(free, current, most, want):
    assert threads_for(free, current, most) == want


class FakeBox:
    """A clock, a busy counter and the run's own CPU time that the test advances."""

    def __init__(self) -> None:
        self.t = self.busy = self.own = 0.0
        self.set: list[int] = []

    def advance(self, seconds: float, others: float, own: float) -> None:
        self.t += seconds
        self.own += own * seconds
        self.busy += (own + others) * seconds

    def share(self, most: int = 2, cores: int = 2) -> CpuShare:
        return CpuShare(most=most, cpus=set(range(cores)), busy=lambda: self.busy, own=lambda: self.own,
                        clock=lambda: self.t, set_threads=self.set.append)


def test_a_program_taking_a_core_drops_a_thread_and_its_end_gives_it_back():
    box = FakeBox()
    share = box.share()
    assert share.tick() == 2  # the first tick only starts the window
    box.advance(0.5, others=0.0, own=2.0)
    assert share.tick() == 2 and box.set == []
    box.advance(0.5, others=1.0, own=1.0)  # the app serving browsers takes a core
    assert share.tick() == 1 and box.set == [1]
    box.advance(0.1, others=0.0, own=1.0)  # shorter than the window: not measured yet
    assert share.tick() == 1
    box.advance(0.5, others=0.0, own=1.0)
    assert share.tick() == 2 and box.set == [1, 2]
    assert [c[:2] for c in share.changes] == [(2, 1), (1, 2)] and share.changes[0][2] == pytest.approx(1.0)


def test_the_runs_own_spinning_is_not_counted_as_other_programs():
    box = FakeBox()
    share = box.share()
    share.tick()
    box.advance(1.0, others=0.2, own=1.8)  # its own threads busy on both cores: nothing to give up
    assert share.tick() == 2 and box.set == []


def test_busy_seconds_from_proc_stat_for_the_runs_cpus_only(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  900 0 100 5000 0 0 0 0 0 0\n"
                    "cpu0 100 50 50 2000 7 10 10 5 0 0\n"
                    "cpu1 500 0 0 3000 0 0 0 0 0 0\n"
                    "intr 1 2 3\n")
    from studio.speed import cpu_share

    hz = cpu_share.USER_HZ
    assert busy_cpu_s({0}, stat=str(stat)) == pytest.approx(225 / hz)  # user nice system irq softirq steal
    assert busy_cpu_s(None, stat=str(stat)) == pytest.approx(725 / hz)
    assert busy_cpu_s(None, stat=str(tmp_path / "missing")) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat")
def test_a_real_busy_program_is_seen():
    """A busy loop on one of this machine's cores is measured as (about) one core of other programs."""
    import os

    cpus = set(os.sched_getaffinity(0))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        share = CpuShare(most=len(cpus), cpus=cpus, set_threads=lambda n: None)
        share.tick()
        deadline = time.monotonic() + 5
        while not share.changes and time.monotonic() < deadline:
            time.sleep(0.3)
            share.tick()
    finally:
        hog.kill()
        hog.wait()
    assert share.changes and share.changes[0][2] >= 0.5  # the loop's core, whatever else this box runs


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat")
def test_a_cpu_run_gives_up_a_thread_to_a_busy_program(tmp_path):
    """The engine wires it in: a demo run beside a busy loop on this box trains on fewer threads, then is back."""
    import os

    import torch
    from conftest import tiny_config_dict
    from transformers import TrainerCallback

    from studio.config import RunConfig
    from studio.training import TrainingJob

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: nothing to give up")
    seen: list = []

    class Grab(TrainerCallback):
        def __init__(self, job):
            self.job = job

        def on_step_end(self, args, state, control, **kwargs):
            seen[:] = [cb for cb in self.job.trainer.callback_handler.callbacks if hasattr(cb, "share")]

    cfg = RunConfig.from_dict(tiny_config_dict(tmp_path / "runs", max_steps=40, save_steps=40))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the tests run on one (conftest); a run starts on the machine's cores
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in os.sched_getaffinity(0)]
    try:
        TrainingJob(cfg, extra_callbacks=[Grab]).run()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        torch.set_num_threads(threads)
    assert seen and seen[0].share.changes and seen[0].share.changes[0][:2] == (2, 1)


def test_inside_the_window_a_tick_reads_only_the_clock():
    box = FakeBox()
    reads = []
    share = CpuShare(most=2, cpus={0, 1}, busy=lambda: reads.append(1) or box.busy, own=lambda: box.own,
                     clock=lambda: box.t, set_threads=box.set.append)
    share.tick()
    for _ in range(50):  # one generated token each: far shorter than the window
        box.advance(0.001, others=1.0, own=1.0)
        share.tick()
    assert len(reads) == 1 and share.ticks == 51
    box.advance(0.3, others=1.0, own=1.0)
    assert share.tick() == 1 and len(reads) == 2  # measured once the window has passed: a core is taken


def test_each_generated_token_ticks_the_share():
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    from studio.demo import ensure_demo_model
    from studio.speed.cpu_share import TickEachToken
    from studio.training.methods.grpo_stop import generation_processors

    model = AutoModelForCausalLM.from_pretrained(ensure_demo_model())
    box = FakeBox()
    share = box.share()
    with generation_processors(model, [lambda: TickEachToken(share)]):
        model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert share.ticks == 6
    assert "generate" not in vars(model)  # restored
