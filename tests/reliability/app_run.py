"""The app as launch.py serves it, with a run started the way the Train tab's Start does (Studio.start_training),
then served by ``launch.serve_until_signal`` exactly as ``launch.main`` does. Prints ``RUN <dir>`` and ``URL <url>``.

    python tests/reliability/app_run.py CONFIG_YAML RUNS_DIR
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main() -> int:
    import launch
    from studio.config import load_config
    from studio.session import Studio
    from studio.speed.priority import serve_below_runs
    from studio.ui.app import build_app, launch_kwargs

    cfg = load_config(sys.argv[1])
    serve_below_runs()  # as studio app: the app's threads below the run it starts
    studio = Studio(runs_dir=sys.argv[2])
    blocks = build_app(studio, initial=cfg)
    _, url, _ = blocks.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, show_error=False,
                              **launch_kwargs())
    job = studio.start_training(cfg)
    print(f"URL {url}", flush=True)
    print(f"RUN {job.run_dir}", flush=True)
    return launch.serve_until_signal(blocks, studio)


if __name__ == "__main__":
    sys.exit(main())
