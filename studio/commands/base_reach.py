"""Before a command loads a run's base model: a Hub id that is not cached while the Hub is out of reach is said at
once in :func:`~studio.modeling.sources.hub_problem`'s sentence (exit code 2), not after ~25 s of library retries."""
from __future__ import annotations

from pathlib import Path


def check_run_base(run_dir: str | Path) -> None:
    """Raise ``ModelError`` when the run's base model must come from a Hub that is out of reach (a folder without a
    config is left to the loader's own message)."""
    from studio import runs
    from studio.config import load_config
    from studio.modeling.sources import check_reachable

    config = Path(run_dir) / runs.CONFIG
    if not config.is_file():
        return
    model = load_config(config).model
    check_reachable(model.name_or_path, model.revision)
