"""The Chat tab's forgetting check through its handlers: chart and table per checkpoint, then the kept checkpoint."""
from __future__ import annotations

from chat_helpers import chat_runs_dir, ckpt_run, one_thread, wp2_run, wp_run  # noqa: F401
from fake_progress import FakeProgress
from studio.session import Studio


def test_check_draws_each_checkpoint_and_keep_replaces_the_adapter(ckpt_run):
    from studio.ui.app import compose, initial_config

    studio = Studio(runs_dir=ckpt_run.parent)
    panel = compose(studio, initial=initial_config(demo=True)).handles["chat"].forgetting
    fig, rows, report, keep, status = panel.on_check(str(ckpt_run), "Say hi => hi", 2, FakeProgress())
    assert "Checked 3 model(s)" in status and keep["interactive"] is True
    assert [r[0] for r in rows] == ["base", "checkpoint-4", "checkpoint-8", "final adapter"]
    assert list(fig.data[0].text) == ["base", "checkpoint-4", "checkpoint-8", "final adapter"]
    assert list(fig.data[0].x) == [p.general * 100 for p in [report.base, *report.points]]
    report.points[0].task, report.points[-1].task = 1.0, 0.0  # make checkpoint-4 the best within any drop
    for p in report.points:
        p.general = report.base.general
    text, _ = panel.on_keep(report, 5)
    assert "checkpoint-4" in text
    assert (ckpt_run / "adapter" / "adapter_model.safetensors").read_bytes() == (
        ckpt_run / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors").read_bytes()
    _, _, none, keep, status = panel.on_check(None, "", 2, FakeProgress())
    assert none is None and "pick a run" in status
