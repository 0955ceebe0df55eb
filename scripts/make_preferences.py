"""Write the bundled preference dataset ``assets/datasets/word_problem_preferences.jsonl`` (deterministic, stdlib only).

Each row is a grade-school word problem (the generators of ``make_datasets.py``, a different seed, no question
shared with ``word_problems.jsonl``) with two answers: ``chosen`` is the worked answer ending in ``#### n``, as
in GSM8K; ``rejected`` is one of three flawed answers, a third each:

- ``slip``: the same working with an arithmetic slip in the last step, carried into ``#### n`` (a wrong number);
- ``no_answer_line``: the same, correct working without the ``#### n`` line;
- ``bare``: the final number alone, with no working and no ``####``.

Regenerate with::

    python scripts/make_preferences.py [--out FOLDER]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "assets" / "datasets"
NAME = "word_problem_preferences.jsonl"
SEED = 1234 + 19
ROWS = 400
KINDS = ("slip", "no_answer_line", "bare")


def _datasets_script():
    """``make_datasets.py`` as a module (its word-problem generators and formatting helpers)."""
    spec = importlib.util.spec_from_file_location("make_datasets", HERE / "make_datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?=\D*$)")


def slipped(reasoning: str, answer: Fraction, rng: random.Random) -> tuple[str, int] | None:
    """The working with its last result changed to a wrong whole number, and that number; None when the last
    line's last number is not the (whole) answer."""
    *head, last = reasoning.split("\n")
    m = _LAST_NUMBER.search(last)
    if m is None or "." in m.group(0) or answer.denominator != 1:
        return None
    if Fraction(int(m.group(0).replace(",", ""))) != answer:
        return None
    right = int(answer)
    delta = rng.choice([-10, -2, -1, 1, 2, 10, 3, -3]) if abs(right) > 12 else rng.choice([-2, -1, 1, 2, 3])
    wrong = right + delta
    text = f"{wrong:,}" if "," in m.group(0) else str(wrong)
    return "\n".join([*head, last[:m.start()] + text + last[m.end():]]), wrong


def preference_rows(rng: random.Random, count: int, avoid: set[str]) -> list[dict]:
    """``count`` rows of prompt/chosen/rejected, the kinds of rejected answer in turn."""
    md = _datasets_script()
    fns, weights = zip(*md.WORD_PROBLEMS)
    rows, seen = [], set(avoid)
    while len(rows) < count:
        fn = rng.choices(fns, weights=weights)[0]
        q, reasoning, ans = fn(rng, rng.choice(md.PEOPLE), rng.random() < 0.5)
        if q in seen:
            continue
        kind = KINDS[len(rows) % len(KINDS)]
        chosen = f"{reasoning}\n#### {md.dec(ans)}"
        if kind == "slip":
            slip = slipped(reasoning, Fraction(ans), rng)
            if slip is None:
                continue
            rejected = f"{slip[0]}\n#### {slip[1]}"
        elif kind == "no_answer_line":
            rejected = reasoning
        else:
            rejected = md.dec(ans)
        seen.add(q)
        rows.append({"prompt": q, "chosen": chosen, "rejected": rejected})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"Folder to write into (default: {OUT}).")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    sft = OUT / "word_problems.jsonl"
    avoid = {json.loads(line)["question"] for line in sft.read_text(encoding="utf-8").splitlines() if line}
    rows = preference_rows(random.Random(SEED), ROWS, avoid)
    path = out / NAME
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{NAME}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
