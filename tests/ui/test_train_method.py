"""Train tab, headless: the Method block (radio with one line per method, settings shown where they apply, loss
variants per method), "Continue from run …" (finished runs listed, the base model named, a different base refused in
the error box and at Start), and the preference charts built from events (traces named by metric, ln 2 marked)."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from studio.config import RunConfig
from studio.events import Finished, Log, Started
from studio.session import Studio
from studio.ui import pref_charts
from studio.ui.app import compose, initial_config
from studio.ui.chart_feed import as_figure
from studio.ui.charts import RunSeries, loss_figure
from studio.ui.method_view import finished_runs, start_from_note
from studio.ui.train_status import status_line
from studio.ui.train_tab import TrainView


def fake_run(runs_dir, name: str, model: str, method: str = "sft", finished: bool = True):
    """A run folder as training leaves it: config.yaml, events.jsonl (Started, Finished) and the adapter."""
    cfg = initial_config(demo=True)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name_or_path=model),
                              train=dataclasses.replace(cfg.train, method=method))
    path = runs_dir / name
    (path / "adapter").mkdir(parents=True)
    cfg.save(path / "config.yaml")
    (path / "adapter" / "adapter_config.json").write_text("{}")
    events = [Started(run_dir=str(path), model=model, total_steps=2)]
    if finished:
        events.append(Finished(step=2, adapter_path=str(path / "adapter")))
    (path / "events.jsonl").write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    same = fake_run(runs, "sft-on-demo", "studio/demo-tiny")
    other = fake_run(runs, "sft-on-smollm2", "smollm2-135m-instruct")
    fake_run(runs, "stopped-run", "studio/demo-tiny", finished=False)
    studio = Studio(runs_dir=runs)
    blocks = compose(studio, initial=initial_config(demo=True))
    return blocks.handles["train"], blocks.ctx, studio, same, other


def test_method_radio_explains_each_method_and_shows_only_its_settings(app):
    h, *_ = app
    w = h.method.widgets
    assert [v for _, v in w["method"].choices] == ["sft", "dpo", "orpo", "kto", "simpo", "grpo"]
    assert all(len(label) > 20 for label, _ in w["method"].choices), "each method has its one-line explanation"
    assert w["method"].value == "sft" and not any(w[n].visible for n in ("beta", "loss_type", "simpo_gamma"))
    settings = [n for n in ("beta", "loss_type", "simpo_gamma") if n in w]

    def shown(method: str, loss: str | None = None) -> dict:
        return dict(zip(settings, h.method.on_method(method, loss)))

    dpo = shown("dpo", "ipo")
    assert dpo["beta"]["visible"] and not dpo["simpo_gamma"]["visible"]
    assert dpo["loss_type"]["visible"] and "sigmoid" in dpo["loss_type"]["choices"]
    assert "apo_zero_unpaired" not in dpo["loss_type"]["choices"] and dpo["loss_type"]["value"] == "ipo"
    kto = shown("kto", "ipo")
    assert kto["loss_type"]["choices"] == ["kto", "apo_zero_unpaired"] and kto["loss_type"]["value"] is None
    simpo = shown("simpo")
    assert simpo["simpo_gamma"]["visible"] and simpo["beta"]["visible"] and not simpo["loss_type"]["visible"]
    orpo = shown("orpo")
    assert orpo["beta"]["visible"] and not orpo["loss_type"]["visible"] and not orpo["simpo_gamma"]["visible"]
    sft = shown("sft")
    assert not any(u["visible"] for u in sft.values())


def test_start_from_lists_finished_runs_and_refuses_another_base(app, tmp_path):
    h, ctx, studio, same, other = app
    offered = dict((v, label) for label, v in finished_runs(studio.runs_dir))
    assert set(offered) == {"", str(same), str(other)}, "finished runs with an adapter, and the base model"
    assert "on smollm2-135m-instruct" in offered[str(other)]
    assert {v for _, v in h.method.widgets["start_from"].choices} == set(offered)

    note, box = h.method.on_start_from(str(same), "studio/demo-tiny")
    assert "sft-on-demo" in note and "studio/demo-tiny" in note and box["visible"] is False
    note, box = h.method.on_start_from(str(other), "studio/demo-tiny")
    assert "`smollm2-135m-instruct`" in note, "the picked run's base model is named"
    assert box["visible"] is True and "smollm2-135m-instruct" in box["value"] and "studio/demo-tiny" in box["value"]
    assert start_from_note("", "studio/demo-tiny") == ("Starts from the base model (a fresh adapter).", None)

    values = ctx.forms.write(ctx.initial)
    values[h.method.widgets["method"]] = "dpo"
    values[h.method.widgets["start_from"]] = str(other)
    out = h.on_start(values)
    assert out[h.error]["visible"] is True and "smollm2-135m-instruct" in out[h.error]["value"]
    assert studio.job is None, "nothing was started"
    assert ctx.forms.read({**values, h.method.widgets["start_from"]: str(same)}).train.start_from == str(same)


def _series(method_metrics: list[dict]) -> RunSeries:
    s = RunSeries()
    s.add([Started(run_dir="r", model="m", total_steps=len(method_metrics))])
    s.add([Log(step=i + 1, loss=m.pop("loss", None), learning_rate=1e-4, metrics=m)
           for i, m in enumerate(method_metrics)])
    return s


DPO_LOGS = [{"loss": math.log(2), "rewards/chosen": 0.0, "rewards/rejected": 0.0, "rewards/margins": 0.0,
             "rewards/accuracies": 0.0},
            {"loss": 0.6, "rewards/chosen": 0.05, "rewards/rejected": -0.07, "rewards/margins": 0.12,
             "rewards/accuracies": 0.75}]


def test_dpo_charts_draw_rewards_margin_and_accuracy_and_mark_ln2(app):
    s = _series([dict(m) for m in DPO_LOGS])
    fig = pref_charts.preference_figure(s, "dpo")
    keys = pref_charts.trace_keys(fig)
    assert keys == ["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"]
    by_key = {t.meta: t for t in fig.data}
    assert list(by_key["rewards/rejected"].y) == [0.0, -0.07] and list(by_key["rewards/accuracies"].x) == [1, 2]
    assert any(a.text == pref_charts.AT_START for a in fig.layout.annotations), "step 1 is explained"
    ref = pref_charts.start_reference("dpo")
    assert ref[0] == pytest.approx(math.log(2))
    loss = loss_figure(s, reference=ref)
    assert [sh.y0 for sh in loss.layout.shapes] == [pytest.approx(math.log(2))]
    assert any("policy = reference at step 1" in (a.text or "") for a in loss.layout.annotations)
    assert pref_charts.start_reference("dpo", "ipo") is None and pref_charts.start_reference("orpo") is None


def test_kto_and_orpo_charts_show_their_own_signals():
    kto = pref_charts.preference_figure(_series([{"loss": 0.5, "kl": 0.0, "rewards/chosen": 0.0},
                                                 {"loss": 0.4, "kl": 0.02, "rewards/chosen": 0.1}]), "kto")
    assert pref_charts.trace_keys(kto) == ["rewards/chosen", "kl"]
    orpo = pref_charts.preference_figure(_series([{"loss": 2.0, "nll_loss": 1.9, "log_odds_ratio": -0.7,
                                                   "rewards/accuracies": 0.5}]), "orpo")
    assert set(pref_charts.trace_keys(orpo)) == {"rewards/accuracies", "nll_loss", "log_odds_ratio"}
    empty = pref_charts.preference_figure(RunSeries(), "dpo")
    assert not empty.data and "first logged step" in empty.layout.annotations[0].text


def test_metrics_missing_at_some_steps_stay_aligned():
    s = _series([{"loss": 1.0}, {"loss": 0.9, "kl": 0.1}, {"loss": 0.8}])
    assert s.metrics == {"kl": [None, 0.1, None]}


class _Job:
    """A finished DPO job as the Train tab follows it."""

    def __init__(self, cfg, events):
        from studio.events import EventLog

        self.cfg, self.run_dir, self.alive = cfg, "runs/dpo-run", False
        self.events = EventLog()
        for e in events:
            self.events.append(e)

    def status(self):
        from types import SimpleNamespace

        return SimpleNamespace(state="finished", step=2, total_steps=2, eta_s=None, elapsed_s=3.0, message="")


def test_a_dpo_run_gets_its_chart_and_the_status_line_its_reward_accuracy(app):
    h, ctx, studio, *_ = app
    raw = initial_config(demo=True).to_dict()
    raw["train"]["method"] = "dpo"
    events = [Started(run_dir="runs/dpo-run", model="m", total_steps=2),
              *[Log(step=i + 1, loss=m["loss"], metrics={k: v for k, v in m.items() if k != "loss"})
                for i, m in enumerate(DPO_LOGS)], Finished(step=2, adapter_path="runs/dpo-run/adapter")]
    studio.job = _Job(RunConfig.from_dict(raw), events)
    try:
        out = h.on_tick(TrainView())
        view, pref = out[0], out[-1]
        assert view.method == "dpo" and pref["visible"] is True
        assert "rewards/chosen" in pref_charts.trace_keys(as_figure(pref["value"]))
        assert as_figure(out[3]).layout.shapes, "the loss chart marks ln 2"
        assert "reward accuracy 75%" in status_line(studio, view)[1]
    finally:
        studio.job = None


GRPO_SETTINGS = ("num_generations", "max_completion_length", "temperature", "kl_beta", "stop_at_answer", "rewards")


def test_grpo_shows_its_sampling_settings_and_they_round_trip(app, tmp_path):
    from studio.config import ASSETS_CONFIGS, load_config

    h, ctx, *_ = app
    w = h.method.widgets
    assert not any(w[n].visible for n in GRPO_SETTINGS)  # the app opens on SFT
    names = [n for n in ("beta", "loss_type", "simpo_gamma", *GRPO_SETTINGS) if n in w]
    grpo = dict(zip(names, h.method.on_method("grpo")))
    assert all(grpo[n]["visible"] for n in GRPO_SETTINGS) and not grpo["beta"]["visible"]
    assert not any(dict(zip(names, h.method.on_method("dpo")))[n]["visible"] for n in GRPO_SETTINGS)
    cfg = load_config(ASSETS_CONFIGS / "smollm2_grpo.yaml")
    cfg.train.num_generations, cfg.train.max_completion_length, cfg.train.kl_beta = 2, 16, 0.04
    back = ctx.forms.read(ctx.forms.write(cfg)).train
    assert (back.method, back.num_generations, back.max_completion_length, back.kl_beta) == ("grpo", 2, 16, 0.04)
    cfg.train.num_generations = None  # empty: the device default
    assert ctx.forms.read(ctx.forms.write(cfg)).train.num_generations is None


def test_the_reward_list_is_edited_as_lines_and_a_bad_line_is_named(app):
    """The Rewards box shows ``train.rewards`` one reward a line; what is typed there is what the run gets."""
    from studio.config import ASSETS_CONFIGS, load_config
    from studio.errors import ConfigError

    h, ctx, *_ = app
    box = h.method.widgets["rewards"]
    cfg = load_config(ASSETS_CONFIGS / "smollm2_grpo.yaml")
    values = ctx.forms.write(cfg)
    assert values[box] == "\n".join(f"{r['name']} {r['weight']:g}" for r in cfg.train.rewards)
    values[box] = "answer 2\nlength 0.25 target=40 unit=chars\nregex 0.5 pattern='#### \\d+$'"
    values[h.method.widgets["stop_at_answer"]] = False
    train = ctx.forms.read(values).train
    assert train.rewards == [{"name": "answer", "weight": 2.0},
                             {"name": "length", "weight": 0.25, "target": 40, "unit": "chars"},
                             {"name": "regex", "weight": 0.5, "pattern": "#### \\d+$"}]
    assert train.stop_at_answer is False
    values[box] = "answer 1\nformat heavy"
    with pytest.raises(ConfigError, match=r"train.rewards line 2 \('format heavy'\): the weight must be a number"):
        ctx.forms.read(values)
    values[box] = "answer 1\nsteps 1"
    with pytest.raises(ConfigError, match="unknown reward 'steps'; rewards are answer, format"):
        ctx.forms.read(values)


def test_a_grpo_run_gets_no_preference_chart(app):
    """GRPO's signals are in the GRPO panel (reward charts, completions): the preference chart stays hidden."""
    h, ctx, studio, *_ = app
    raw = initial_config(demo=True).to_dict()
    raw["train"]["method"] = "grpo"
    events = [Started(run_dir="runs/grpo-run", model="m", total_steps=2),
              *[Log(step=i + 1, loss=0.0, metrics={"reward": 0.5 * i, "rewards/answer/mean": 0.5 * i})
                for i in range(2)], Finished(step=2, adapter_path="runs/grpo-run/adapter")]
    studio.job = _Job(RunConfig.from_dict(raw), events)
    try:
        out = h.on_tick(TrainView())
        assert out[0].method == "grpo" and out[-1]["visible"] is False
    finally:
        studio.job = None
