"""The built-in rewards on exact strings; reward specs, user functions and their bad inputs."""
from __future__ import annotations

import logging

import pytest

from studio.errors import RewardError
from studio.rewards import build_rewards, check_user_code_allowed, is_loopback, parse_specs
from studio.rewards.builtin import answer, format, length, regex

WORKED = "4 x 4 = 16 cups of flour.\n#### 16"


def test_answer_matches_the_number_after_the_separator_as_studio_eval_does():
    completions = [WORKED, "It is 16.\n#### 16.00", "#### $1,600", "16 cups", "#### 15\n#### 16", "## 16",
                   [{"role": "assistant", "content": "so\n#### 16"}]]
    refs = ["So 16 cups.\n#### 16", "16", "1600", "16", "16", "16", "16"]
    assert answer(completions, reference=refs) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert answer(["#### 3"], reference=[None]) == [None]  # no reference: not scored
    assert answer(["#### -3"], reference=["-3"]) == [1.0] and answer(["#### 3"], reference=["-3"]) == [0.0]


def test_format_wants_working_then_exactly_one_answer_line_at_the_end():
    completions = [
        WORKED,                             # working, one answer line, last
        WORKED + "\n",                      # trailing newline is fine
        "#### 1\n#### 2\n#### 3",           # the gamed form of a looser reward
        "#### 16",                          # no working
        "ok\n#### 16",                      # too little working
        WORKED + "\nThanks!",               # something after the answer line
        "4 x 4 = 16 cups.\n#### sixteen",   # not a number
        "4 x 4 = 16 cups. #### 16",         # the answer is not on its own line
        "4 x 4 = 16 cups.\n#### -1,600.5",  # sign, thousands and decimals
        "......... \n#### 16",              # working without a letter or digit
    ]
    assert format(completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_length_penalizes_past_the_target_in_tokens_or_chars():
    assert length(["a", "b", "c"], completion_ids=[[1] * 10, [1] * 15, [1] * 40], target=10) == [0.0, -0.5, -1.0]
    assert length(["x" * 4, "x" * 6], target=4, unit="chars") == [0.0, -0.5]


def test_regex_searches_each_line():
    assert regex(["a\n#### 12", "#### x", "12"], pattern=r"^#### \d+$") == [1.0, 0.0, 0.0]


def test_specs_refuse_unknown_names_options_and_bad_values():
    specs = parse_specs([{"name": "answer", "weight": 1}, "format", {"name": "length", "target": 64}])
    assert [(s.name, s.weight) for s in specs] == [("answer", 1.0), ("format", 1.0), ("length", 1.0)]
    with pytest.raises(RewardError, match=r"unknown reward 'correctness'; rewards are answer, format, length, "
                                          r"regex, or path/to/file.py:function"):
        parse_specs([{"name": "correctness"}])
    with pytest.raises(RewardError, match="reward regex needs 'pattern'"):
        parse_specs([{"name": "regex"}])
    with pytest.raises(RewardError, match="not a valid pattern"):
        parse_specs([{"name": "regex", "pattern": "(unclosed"}])
    with pytest.raises(RewardError, match="has no option 'target'"):
        parse_specs([{"name": "format", "target": 3}])
    with pytest.raises(RewardError, match="weight must be a number"):
        parse_specs([{"name": "format", "weight": "high"}])
    with pytest.raises(RewardError, match="train.rewards is empty"):
        parse_specs([])


def _user_file(tmp_path, body: str):
    path = tmp_path / "my_rewards.py"
    path.write_text(body, encoding="utf-8")
    return f"{path}:score"


def test_a_user_function_is_called_with_the_columns_it_names(tmp_path):
    name = _user_file(tmp_path, "def score(completions, reference):\n"
                                "    return [float(c.endswith(r)) for c, r in zip(completions, reference)]\n")
    (reward,) = build_rewards(parse_specs([{"name": name, "weight": 2}]))
    assert reward.__name__ == "score"
    assert reward(["a 4", "b 5"], reference=["4", "4"], prompts=["p", "p"], trainer_state=None) == [1.0, 0.0]


@pytest.mark.parametrize("body, called, message", [
    ("def score(completions, **kw):\n    return [1.0]\n", True,
     r"returned 1 value for 2 completions; it must return one number per completion"),
    ("def score(completions, **kw):\n    return ['high', 1]\n", True, r"returned 'high', not a number"),
    ("def score(completions, **kw):\n    return 1.0\n", True, r"returned float, not a list of 2 numbers"),
    ("def score(completions, **kw):\n    raise KeyError('answer_col')\n", True,
     r"failed on a sample: KeyError: 'answer_col'"),
    ("import not_a_module_here\n", False, r"failed to import: ModuleNotFoundError: No module named"),
    ("def other(completions):\n    return []\n", False, r"has no function 'score'; it defines: other"),
])
def test_bad_user_rewards_are_one_line_naming_the_file(tmp_path, caplog, body, called, message):
    name = _user_file(tmp_path, body)
    caplog.set_level(logging.ERROR, logger="studio.rewards")
    with pytest.raises(RewardError, match=message) as err:
        (reward,) = build_rewards(parse_specs([name]))
        reward(["a", "b"], prompts=["p", "p"])
    assert "my_rewards.py" in str(err.value) and "\n" not in str(err.value)
    if "failed" in message:  # the traceback is logged (the run log), not shown
        assert "Traceback (most recent call last)" in caplog.text


def test_a_missing_user_file_is_named(tmp_path):
    with pytest.raises(RewardError, match=r"reward file nowhere/r.py not found"):
        build_rewards(parse_specs(["nowhere/r.py:f"]))


def test_user_code_is_refused_on_an_app_others_can_reach(tmp_path):
    specs = parse_specs([_user_file(tmp_path, "def score(completions, **kw):\n    return [0.0] * len(completions)\n"),
                         "answer"])
    check_user_code_allowed(specs, host="127.0.0.1")
    check_user_code_allowed(specs, host="localhost")
    for host, share in (("0.0.0.0", False), ("192.168.1.4", False), ("127.0.0.1", True)):
        with pytest.raises(RewardError, match="is your own Python code, and this app is reachable"):
            check_user_code_allowed(specs, host=host, share=share)
    check_user_code_allowed(parse_specs(["answer"]), host="0.0.0.0")  # built-ins are fine anywhere
    assert is_loopback("::1") and not is_loopback("example.org")
