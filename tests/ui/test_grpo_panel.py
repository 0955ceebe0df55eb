"""GRPO in the app: user reward code refused on an app others can reach, the app builds with the GRPO parts."""
from __future__ import annotations

import pytest

from studio.config import RunConfig
from studio.errors import RewardError
from studio.session import Studio
from studio.ui.app import compose, initial_config
from studio.ui.grpo_panel import user_code_state


def _user_reward_config(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("def score(completions, **kw):\n    return [0.0] * len(completions)\n", encoding="utf-8")
    return RunConfig.from_dict({"train": {"method": "grpo", "output_dir": str(tmp_path / "runs"),
                                          "rewards": [{"name": f"{path}:score"}]}})


@pytest.mark.parametrize("host, share", [("0.0.0.0", False), ("192.168.0.7", False), ("127.0.0.1", True)])
def test_user_reward_code_is_refused_when_the_app_is_reachable(tmp_path, host, share):
    studio = Studio(runs_dir=tmp_path / "runs", app_host=host, app_share=share)
    with pytest.raises(RewardError, match=r"mine.py:score is your own Python code, and this app is reachable"):
        studio.start_training(_user_reward_config(tmp_path))
    assert studio.job is None  # nothing started, no run folder
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert "refused here" in user_code_state(studio)


def test_a_loopback_app_says_user_code_is_allowed(tmp_path):
    studio = Studio(runs_dir=tmp_path / "runs")
    assert "allowed" in user_code_state(studio)
    app = compose(studio, initial=initial_config(demo=True))
    ids = {getattr(b, "elem_id", None) for b in app.blocks.blocks.values()}
    assert {"reward-preview-run", "reward-preview-table", "grpo-panel", "grpo-rewards", "grpo-completions"} <= ids


def test_the_reference_column_is_mapped_in_the_data_tab(tmp_path):
    from studio.config import ASSETS_CONFIGS, load_config

    cfg = load_config(ASSETS_CONFIGS / "smollm2_grpo.yaml")
    cfg.data.sources[0].columns = {"prompt": "question", "completion": "answer", "reference": "answer"}
    forms = compose(Studio(runs_dir=tmp_path), initial=cfg).ctx.forms
    assert "reference" in forms.data.mapping
    assert forms.read(forms.write(cfg)).data.sources[0].columns["reference"] == "answer"


def _wired(blocks, trigger, output) -> list:
    """The handlers fired by ``trigger``'s change whose outputs include ``output``."""
    return [f for f in blocks.fns.values() if (trigger._id, "change") in [tuple(t) for t in f.targets]
            and output in f.outputs]


def test_the_reward_preview_shows_only_for_grpo_and_follows_the_method(tmp_path):
    from studio.config import ASSETS_CONFIGS, load_config

    def composed(cfg):
        app = compose(Studio(runs_dir=tmp_path), initial=cfg)
        box = next(b for b in app.blocks.blocks.values() if getattr(b, "elem_id", None) == "reward-preview-box")
        return app, box

    app, box = composed(initial_config(demo=True))
    assert box.visible is False  # SFT: hidden
    handlers = _wired(app.blocks, app.ctx.forms.train.method, box)
    assert len(handlers) == 1, "the Train tab's method radio drives the Data tab's reward preview"
    assert handlers[0].fn("grpo")["visible"] is True
    assert all(handlers[0].fn(m)["visible"] is False for m in ("sft", "dpo", "kto"))
    _, box = composed(load_config(ASSETS_CONFIGS / "smollm2_grpo.yaml"))
    assert box.visible is True  # a GRPO config opens with the preview shown
