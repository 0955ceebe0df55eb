"""The app's RSS before and after a run on the real model (the run trains in its own process).

    PYTHONPATH=. python scripts/app_memory.py [--steps 5]

Builds the app as ``studio app`` does (initial config: SmolLM2 + word problems), reads its RSS, starts a run the
Train tab's way (``Studio.start_training``), waits for its end and reads the RSS again; prints both and the ratio.
"""
from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    import psutil

    from studio.session import Studio
    from studio.ui.app import build_app, initial_config

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    me = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="studio-app-memory-") as tmp:
        studio = Studio(runs_dir=tmp)
        cfg = initial_config()
        build_app(studio, initial=cfg)
        cfg = cfg.with_overrides([f"train.max_steps={args.steps}", "train.save_steps=1000", "data.max_rows=64",
                                  "train.tensorboard=false", "train.max_length=256"])
        before = me.memory_info().rss
        t0 = time.time()
        job = studio.start_training(cfg)
        peak_child = 0
        while not job.wait(0.5):
            try:
                peak_child = max(peak_child, psutil.Process(job.pid).memory_info().rss)
            except psutil.Error:
                pass
        after = me.memory_info().rss
        print(f"model {cfg.model.name_or_path}, {args.steps} steps in {time.time() - t0:.0f} s: {job.result}")
        print(f"app RSS before the run {before / 2**20:.1f} MB, after {after / 2**20:.1f} MB "
              f"(ratio {after / before:.3f}); the run's process peaked at {peak_child / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
