"""The Train tab's GRPO series: reward curves, the completions table newest first, the gaming warning."""
from __future__ import annotations

from studio.events import Completions, Log, Note, Started
from studio.ui.grpo_charts import GrpoSeries, reward_figure, spread_figure


def _events():
    yield Started(run_dir="r", model="m", total_steps=2)
    for step, (fmt, ans) in enumerate([(0.0, 0.0), (0.5, 0.25)], start=1):
        yield Log(step=step, loss=0.0, metrics={"reward": ans + 0.5 * fmt, "rewards/answer/mean": ans,
                                                "rewards/format/mean": fmt, "reward_std": 0.1,
                                                "frac_reward_zero_std": 0.5, "completions/mean_length": 30.0 + step,
                                                "completions/clipped_ratio": 0.25, "kl": 0.0})
        yield Completions(step=step, samples=[{"prompt": "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                                                         "<|im_start|>assistant\n",
                                               "completion": f"answer {step}", "rewards": {"answer": ans,
                                                                                        "format": fmt},
                                               "reward": ans + 0.5 * fmt}])
    yield Note(level="warning", message="Possible reward gaming: ...", data={"kind": "reward_gaming",
                                                                           "samples": ["#### 1\n#### 2"]})


def test_series_table_and_figures():
    s = GrpoSeries()
    s.add(_events())
    assert s.active and s.steps == [1, 2] and s.reward_names() == ["answer", "format"]
    assert s.table_headers() == ["step", "reward", "answer", "format", "completion", "prompt"]
    assert s.table() == [[2, 0.5, 0.25, 0.5, "answer 2", "What is 2+2?"],
                         [1, 0.0, 0.0, 0.0, "answer 1", "What is 2+2?"]]
    assert s.warning.startswith("Possible reward gaming") and s.warning_samples == ["#### 1\n#### 2"]
    names = [t.name for t in reward_figure(s).data]
    assert names == ["total (weighted)", "answer", "format"]
    spread = [t.name for t in spread_figure(s).data]
    assert spread == ["reward std", "groups with zero spread", "clipped completions", "completion length (tokens)"]


def test_a_non_grpo_run_stays_inactive():
    s = GrpoSeries()
    s.add([Started(run_dir="r", model="m", total_steps=2), Log(step=1, loss=1.0, metrics={"rewards/margins": 0.1})])
    assert not s.active and s.table() == []
