"""The Chat tab's blind arena, through its handlers: names hidden while both answer, no vote before the end, the
vote recorded and the names revealed, standings, export, and damaged vote lines reported."""
from __future__ import annotations

import json

from chat_helpers import chat_runs_dir, one_thread, wp2_run, wp_run  # noqa: F401
from studio.arena.votes import read_votes, votes_path
from studio.session import Studio


def _arena(runs_dir):
    from studio.ui.app import compose, initial_config

    return compose(Studio(runs_dir=runs_dir), initial=initial_config(demo=True)).handles["chat"].arena


def test_a_round_hides_names_until_the_vote_then_reveals_and_records_it(wp_run, wp2_run, tmp_path):
    import shutil

    runs_dir = tmp_path / "runs"
    for run in (wp_run, wp2_run):
        shutil.copytree(run, runs_dir / run.name)
    arena = _arena(runs_dir)
    a, b = str(runs_dir / "wp"), str(runs_dir / "wp2")
    steps = list(arena.on_send("How many apples?", a, b, 6, False))
    for left, right, reveal, state, *_ in steps[:-1]:
        assert state is None and "wp" not in str(reveal)  # names hidden, no round to vote on yet
    *_, last = steps
    rnd = last[3]
    assert rnd.done and last[0] == rnd.left_answer and last[1] == rnd.right_answer
    assert all(u["interactive"] for u in last[-4:])  # the vote buttons open only now
    out = arena.on_vote("left", rnd, "  a better answer  ")
    assert "Left was **" in out[0] and {"wp", "wp2"} <= set(out[0].replace("*", " ").split())
    assert out[1][0][0] in ("wp vs wp2",) and all(not u["interactive"] for u in out[-4:])
    [v] = read_votes(runs_dir).votes
    assert v.vote == "left" and v.left_model == rnd.left.label and v.edited_answer == "a better answer"
    again = arena.on_vote("right", rnd, "")
    assert "already judged" in again[3]["value"]
    assert len(read_votes(runs_dir).votes) == 1
    with open(votes_path(runs_dir), "a", encoding="utf-8") as fh:
        fh.write("{broken\n")
    file_path, error = arena.on_export()
    if v.edited_answer.strip() != v.loser[1].strip():
        rows = [json.loads(line) for line in open(file_path, encoding="utf-8")]
        assert rows == [{"prompt": "How many apples?", "chosen": "a better answer", "rejected": v.loser[1]}]
    assert json.loads(open(runs_dir / "arena" / "sft.jsonl").readline())["completion"] == "a better answer"


def test_no_vote_without_a_round_and_no_prompt_is_one_sentence(wp_run, tmp_path):
    arena = _arena(tmp_path)
    out = arena.on_vote("left", None, "")
    assert "Ask both" in out[3]["value"]
    [first] = list(arena.on_send("   ", str(wp_run), str(wp_run), 4, False))
    assert "type a prompt" in first[4]["value"]


def test_standings_report_damaged_lines_and_keep_the_good_ones(tmp_path):
    from studio.arena.votes import Vote, append_vote
    from studio.ui.arena_panel import standings

    append_vote(tmp_path, Vote("p", "x", "y", "1", "2", "left"))
    with open(votes_path(tmp_path), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"prompt": 1}) + "\n")
    pairs, ranks, note = standings(tmp_path)
    assert pairs[0][:2] == ["x vs y", 1] and ranks == [] and "1 damaged line(s)" in note
