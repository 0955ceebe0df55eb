"""`studio chat` and `studio eval` end to end (in-process through studio.cli.main)."""
from __future__ import annotations

import json

from chat_helpers import chat_runs_dir, one_thread, wp2_run, wp_run  # noqa: F401
from studio.cli import main

PROMPT = "A baker makes 5 trays of 12 cookies. How many cookies?"


def _json_out(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_chat_compare_json_is_deterministic(wp_run, capsys):
    argv = ["chat", "--run", str(wp_run), "--prompt", PROMPT, "--compare", "--json", "--max-new-tokens", "12",
            "--device", "cpu"]
    first = _json_out(capsys, argv)
    assert isinstance(first["base"], str) and isinstance(first["tuned"], str)
    assert first["base"] != first["tuned"]
    assert first["adapter"] == "wp"
    assert _json_out(capsys, argv) == first  # same prompt, same answers


def test_chat_single_prompt_streams_text_and_samples_with_a_seed(wp_run, capsys):
    assert main(["chat", "--run", str(wp_run), "--prompt", PROMPT, "--max-new-tokens", "8", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.endswith("\n")
    argv = ["chat", "--run", str(wp_run), "--prompt", PROMPT, "--max-new-tokens", "10", "--json", "--sample",
            "--seed", "5", "--device", "cpu"]
    a, b = _json_out(capsys, argv), _json_out(capsys, argv)
    assert a == b and a["finish_reason"] in ("eos", "length")


def test_chat_interactive_loop(wp_run, capsys, monkeypatch):
    lines = iter(["How many?", "/reset", "And now?", "/exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", "--run", str(wp_run), "--max-new-tokens", "4", "--device", "cpu", "--compare"]) == 0
    out = capsys.readouterr().out
    assert out.count("tuned> ") == 2 and out.count("base> ") == 2


def test_chat_with_a_second_adapter(wp_run, wp2_run, capsys):
    common = ["--prompt", PROMPT, "--json", "--max-new-tokens", "10", "--sample", "--seed", "2", "--device", "cpu"]
    other = _json_out(capsys, ["chat", "--run", str(wp_run), "--adapter", str(wp2_run), *common])
    alone = _json_out(capsys, ["chat", "--run", str(wp2_run), *common])
    assert other["adapter"] == "wp2" and other["text"] == alone["text"]


def test_chat_errors_are_one_line(tmp_path, capsys):
    assert main(["chat", "--run", str(tmp_path), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_eval_json_reports_numbers_for_both_models(wp_run, capsys, tmp_path):
    per_row = tmp_path / "rows.jsonl"
    out = _json_out(capsys, ["eval", "--run", str(wp_run), "--rows", "3", "--json", "--max-new-tokens", "8",
                             "--device", "cpu", "--per-row", str(per_row)])
    assert set(out) == {"base", "tuned", "rows"} and out["rows"] == 3
    for side in ("base", "tuned"):
        assert set(out[side]) == {"loss", "perplexity", "accuracy", "unclear_rate"}
        assert all(isinstance(out[side][k], float) for k in out[side])
    rows = [json.loads(line) for line in per_row.read_text().splitlines()]
    assert len(rows) == 3 and {"base_answer", "tuned_answer", "reference_answer"} <= set(rows[0])


def test_eval_table_and_loss_only(wp_run, capsys):
    assert main(["eval", "--run", str(wp_run), "--rows", "2", "--no-accuracy", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "base" in out and "tuned" in out
    out = _json_out(capsys, ["eval", "--run", str(wp_run), "--rows", "2", "--no-accuracy", "--json",
                             "--device", "cpu"])
    assert out["base"]["accuracy"] is None and out["tuned"]["loss"] is not None


def test_chat_flags_are_the_generation_parameters():
    import argparse
    import dataclasses

    from studio.commands import chat
    from studio.inference import GenerationParams

    parser = argparse.ArgumentParser()
    chat.add_arguments(parser)
    defaults = chat.params_from_args(parser.parse_args(["--run", "r"]))
    assert defaults == GenerationParams()  # the same defaults as the dataclass (and so the Chat tab)
    actions = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(GenerationParams):
        assert actions[f.name].help == f.metadata["help"], f.name
    args = parser.parse_args(["--run", "r", "--max-new-tokens", "5", "--sample", "--top-k", "3", "--seed", "9",
                              "--stop", "###", "--stop", "END"])
    assert chat.params_from_args(args) == GenerationParams(max_new_tokens=5, do_sample=True, top_k=3, seed=9,
                                                           stop=("###", "END"))


def test_eval_and_compare_say_each_phase_on_stderr(wp_run, capsys):
    """Minutes on a CPU are never silent: phase, rows done/total and elapsed time on stderr (issue 23.1)."""
    import re

    out = _json_out(capsys, ["eval", "--run", str(wp_run), "--rows", "3", "--json", "--max-new-tokens", "8",
                             "--device", "cpu"])
    assert out["rows"] == 3
    main(["eval", "--run", str(wp_run), "--rows", "3", "--max-new-tokens", "8", "--device", "cpu"])
    err = capsys.readouterr().err
    for phase in ("loading the model", "tuned loss: 3/3 rows", "base loss: 3/3 rows", "tuned answers: 3/3 rows",
                  "base answers: 3/3 rows"):
        assert re.search(re.escape(phase) + r" · elapsed \d\d:\d\d", err), (phase, err)
    assert err.index("tuned loss: 3/3") < err.index("base answers: 3/3")
    compare = _json_out(capsys, ["chat", "--run", str(wp_run), "--prompt", PROMPT, "--compare", "--json",
                                 "--max-new-tokens", "6", "--device", "cpu"])
    assert compare["tuned"] and compare["base"]
    main(["chat", "--run", str(wp_run), "--prompt", PROMPT, "--compare", "--max-new-tokens", "6", "--device", "cpu"])
    err = capsys.readouterr().err
    lines = [line.split(" · elapsed ")[0] for line in err.splitlines() if " · elapsed " in line]
    assert lines[0].startswith("loading the model of") and lines[2:] == [
        "answering with the tuned model", "tuned answer: 6 tokens (length)",
        "answering with the base model", "base answer: 6 tokens (length)"], err
