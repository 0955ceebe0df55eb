"""The blind arena: votes on disk (damaged lines kept apart), win rates with intervals, the Bradley-Terry ranking,
export as preference data, rounds (hidden names, no vote before both answers) and `studio arena` end to end."""
from __future__ import annotations

import json
import random

import pytest

from chat_helpers import chat_runs_dir, one_thread, wp2_run, wp_run  # noqa: F401
from studio.arena.export import export_votes, pairs_of
from studio.arena.match import BASE_PREFIX, new_round, normalize_specs, vote
from studio.arena.stats import pair_results, ranking, wilson
from studio.arena.votes import Vote, append_vote, read_votes, votes_path
from studio.cli import main
from studio.errors import ConfigError, DataError, ModelError


def _v(left, right, verdict, prompt="p", la="left answer", ra="right answer", edited=None):
    return Vote(prompt=prompt, left_model=left, right_model=right, left_answer=la, right_answer=ra, vote=verdict,
                edited_answer=edited)


def test_votes_append_and_read_back_keeping_good_lines_around_damaged_ones(tmp_path):
    append_vote(tmp_path, _v("a", "b", "left"))
    with open(votes_path(tmp_path), "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"prompt": "p", "vote": "left"}) + "\n")
        fh.write(json.dumps({**_v("a", "b", "left").__dict__, "vote": "maybe"}) + "\n")
    append_vote(tmp_path, _v("b", "a", "tie", edited="fixed"))
    vf = read_votes(tmp_path)
    assert [v.vote for v in vf.votes] == ["left", "tie"]
    assert vf.votes[1].edited_answer == "fixed" and vf.votes[0].time > 0
    assert [p.split(":")[0] for p in vf.problems] == ["line 2", "line 3", "line 4"]
    assert "not JSON" in vf.problems[0] and "left_model" in vf.problems[1] and "maybe" in vf.problems[2]


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson(0, 10)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-3)
    low, high = wilson(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-3), pytest.approx(0.7634, abs=1e-3))


def test_pair_results_orient_each_pair_and_count_ties_as_half():
    votes = [_v("b", "a", "left"), _v("a", "b", "left"), _v("a", "b", "right"), _v("a", "b", "tie"),
             _v("a", "b", "both_bad"), _v("a", "a", "left")]
    [r] = pair_results(votes)  # the model against itself is left out
    assert (r.a, r.b, r.wins_a, r.wins_b, r.ties, r.both_bad) == ("a", "b", 1, 2, 1, 1)
    assert r.win_rate_a == pytest.approx(1.5 / 4)
    assert r.low < r.win_rate_a < r.high and r.votes == 5


def test_ranking_orders_three_models_by_strength():
    rng = random.Random(0)
    votes = []
    for strong, weak, n in (("big", "mid", 8), ("mid", "small", 8), ("big", "small", 8)):
        for i in range(n):
            left, right = (strong, weak) if rng.random() < 0.5 else (weak, strong)
            winner_left = (left == strong) if i < n - 1 else (left != strong)  # one upset per pair
            votes.append(_v(left, right, "left" if winner_left else "right"))
    ranked = ranking(votes)
    assert [r.model for r in ranked] == ["big", "mid", "small"]
    assert ranked[0].rating > 1000 > ranked[-1].rating and all(r.votes == 16 for r in ranked)


def test_export_writes_pairs_a_preference_run_reads_and_edited_answers_as_sft(tmp_path):
    votes = [_v("a", "b", "left", prompt="q1", la="good", ra="bad"),
             _v("a", "b", "right", prompt="q2", la="worse", ra="better", edited="best"),
             _v("a", "b", "tie", prompt="q3"), _v("a", "b", "left", prompt="q4", la="same", ra="same")]
    done = export_votes(votes, tmp_path / "pairs.jsonl", sft_out=tmp_path / "sft.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert rows == [{"prompt": "q1", "chosen": "good", "rejected": "bad"},
                    {"prompt": "q2", "chosen": "best", "rejected": "worse"}]
    sft = [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert sft == [{"prompt": "q2", "completion": "best"}]
    assert (done.pairs, done.sft_rows, done.skipped) == (2, 1, 2)
    with pytest.raises(DataError, match="no arena votes"):
        export_votes([], tmp_path / "x.jsonl")
    with pytest.raises(DataError, match="prefers one answer"):
        export_votes([_v("a", "b", "tie")], tmp_path / "x.jsonl")
    assert pairs_of([_v("a", "b", "both_bad", edited="fixed")])[1] == [{"prompt": "p", "completion": "fixed"}]


def test_round_refuses_a_vote_before_both_answers_and_a_second_vote(tmp_path, wp_run, wp2_run):
    rnd = new_round("2 + 2?", str(wp_run), str(wp2_run), rng=random.Random(1))
    assert {rnd.left.label, rnd.right.label} == {"wp", "wp2"}
    with pytest.raises(ConfigError, match="both answers are finished"):
        vote(rnd, "left", tmp_path)
    rnd.done = True
    vote(rnd, "tie", tmp_path)
    with pytest.raises(ConfigError, match="already judged"):
        vote(rnd, "left", tmp_path)
    with pytest.raises(ConfigError, match="type a prompt"):
        new_round("  ", "x", "y")


def test_base_means_the_other_runs_base_and_two_bases_need_a_run(wp_run):
    a, b = normalize_specs("base", str(wp_run))
    assert a == f"{BASE_PREFIX}{wp_run}" and b == str(wp_run)
    with pytest.raises(ModelError, match="base@RUN_DIR"):
        normalize_specs("base", "base")


@pytest.mark.slow
def test_cli_rounds_hide_names_until_the_vote_then_stats_and_export(wp_run, wp2_run, tmp_path, capsys):
    runs_dir = tmp_path / "arena-runs"
    common = ["--runs-dir", str(runs_dir), "--max-new-tokens", "6", "--device", "cpu"]
    assert main(["arena", "--a", "base", "--b", str(wp_run), "--prompt", "How many apples?", "--vote", "right",
                 "--sides-seed", "3", *common]) == 0
    out = capsys.readouterr().out
    shown, revealed = out.split("--- B ---")[0], out.strip().splitlines()[-1]
    assert "--- A ---" in shown and "wp" not in shown.replace("--- A ---", "")
    assert revealed.startswith("Left was") and "wp" in revealed and "base · studio/demo-tiny" in revealed
    assert main(["arena", "--a", str(wp_run), "--b", str(wp2_run), "--prompt", "How many pears?", "--vote", "left",
                 "--json", *common]) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {second["left"], second["right"]} == {"wp", "wp2"}
    vf = read_votes(runs_dir)
    assert len(vf.votes) == 2 and vf.votes[1].generation["max_new_tokens"] == 6
    assert main(["arena", "stats", "--json", "--runs-dir", str(runs_dir)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["votes"] == 2 and len(stats["pairs"]) == 2 and len(stats["ranking"]) == 3
    assert main(["arena", "export", "--out", str(tmp_path / "pairs.jsonl"), "--runs-dir", str(runs_dir)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    differing = [v for v in vf.votes  # a blank better answer or two identical answers give no pair
                 if v.winner[1].strip() and v.winner[1].strip() != v.loser[1].strip()]
    assert len(rows) == len(differing) >= 1 and set(rows[0]) == {"prompt", "chosen", "rejected"}
    assert rows[0]["chosen"] == differing[0].winner[1] and rows[0]["rejected"] == differing[0].loser[1]
    assert main(["arena", "export", "--runs-dir", str(tmp_path / "empty")]) == 2
    assert "--out" in capsys.readouterr().err
