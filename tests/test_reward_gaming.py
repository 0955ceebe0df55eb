"""The reward-gaming detector on synthetic histories."""
from __future__ import annotations

from studio.rewards.gaming import StepSignals, detect_gaming

HONEST = ["Tom has 3 + 4 = 7 apples.\n#### 7", "She reads 10 x 8 = 80 pages.\n#### 80",
          "24 / 6 = 4, so 4 x 4 = 16.\n#### 16", "868 - 59 = 809 oranges.\n#### 809"]
GAMED = ["#### 1\n#### 2\n#### 3", "#### 1\n#### 2\n#### 3", "#### 1\n#### 2\n#### 3", "#### 4\n#### 4\n#### 4"]


def history(format_means, answer_means, lengths, last_completions):
    out = []
    for i, (f, a, n) in enumerate(zip(format_means, answer_means, lengths)):
        done = i == len(format_means) - 1
        out.append(StepSignals(step=i + 1, rewards={"format": f, "answer": a}, mean_length=n,
                               completions=last_completions if done else HONEST))
    return out


def test_a_climbing_format_reward_with_flat_answers_and_repeated_lines_is_caught():
    h = history([0.1, 0.2, 0.5, 0.8, 0.95, 1.0], [0.05] * 6, [40, 38, 30, 20, 12, 10], GAMED)
    warning = detect_gaming(h)
    assert warning is not None and warning.reward == "format"
    assert "format reward climbed from 0.15 to 0.97 while answer stayed at 0.05" in warning.message
    assert "the completions repeat the same lines" in warning.signs
    assert "3 of 4 completions are the same short text" in warning.signs
    assert "the completions shrank from 39 to 11 tokens" in warning.signs
    assert warning.samples[0] == "#### 1\n#### 2\n#### 3"


def test_shrinking_to_nothing_alone_is_a_collapse():
    h = history([0.0, 0.1, 0.4, 0.7, 0.9, 0.9], [0.1] * 6, [60, 50, 20, 8, 2, 1], ["#### 3", "#### 5", "#### 9", ""])
    warning = detect_gaming(h)
    assert warning is not None and warning.signs == ["the completions shrank from 55 to 2 tokens"]


def test_honest_progress_is_not_flagged():
    # answer rises with format: learning, not gaming
    assert detect_gaming(history([0.1, 0.3, 0.6, 0.8, 0.9, 0.95], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                                 [40, 40, 39, 41, 40, 40], GAMED)) is None
    # format climbs, answer flat, but completions stay varied and long: not enough to say gaming
    assert detect_gaming(history([0.1, 0.3, 0.6, 0.8, 0.9, 0.95], [0.1] * 6, [40, 40, 39, 41, 40, 40],
                                 HONEST)) is None
    # too few steps to judge
    assert detect_gaming(history([0.1, 1.0, 1.0], [0.0] * 3, [40, 5, 5], GAMED)) is None
