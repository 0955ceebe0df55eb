"""The app on the real SmolLM2 (its opening config): the Data tab's preview trains the answers, and only them."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("config", ["opening", "chat"])
def test_preview_on_the_real_model_trains_the_answers_only(config, smollm2_folder):
    from studio.config import load_config
    from studio.paths import ASSETS
    from studio.ui.app import initial_config
    from studio.data.presenter import build_preview
    from studio.data.preview_cache import PreviewCache

    cfg = initial_config() if config == "opening" else load_config(ASSETS / "configs" / "chat.yaml").with_overrides(
        ["model.name_or_path=smollm2-135m-instruct"])
    assert cfg.model.name_or_path == "smollm2-135m-instruct"
    view = build_preview(PreviewCache(), cfg, 2)
    assert view.error is None and "smollm2-135m-instruct" in view.summary
    trained = [text for text, kind in view.highlighted if kind == "trained"]
    untrained = "".join(text for text, kind in view.highlighted if kind is None)
    assert trained and all(t.endswith("<|im_end|>") for t in trained), trained
    assert "### Solution:" in untrained if config == "opening" else "<|im_start|>assistant" in untrained
    assert not any("<|im_start|>" in t for t in trained)  # no header, no user or system turn is trained
