"""Write ``assets/datasets/general_skills.jsonl``: a small general-skills set with checkable answers (stdlib only,
seeded, so regenerating writes the same bytes). The forgetting check scores the base model and each checkpoint on
it, to see that fine-tuning did not break what the model could already do.

Each row: ``prompt``, ``answer``, ``kind`` (arithmetic, fact, format) and ``match`` (how an answer is checked:
``number`` = the first number equals it, ``contains`` = the answer's text appears, case-insensitive, ``regex`` =
the whole reply matches the pattern in ``answer``). Regenerate with ``python scripts/make_general_skills.py``.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "assets" / "datasets" / "general_skills.jsonl"
SEED = 2026

FACTS = [
    ("What is the capital of France? Answer in one word.", "Paris"),
    ("What is the capital of Japan? Answer in one word.", "Tokyo"),
    ("What is the capital of Italy? Answer in one word.", "Rome"),
    ("What is the capital of Germany? Answer in one word.", "Berlin"),
    ("What is the capital of Spain? Answer in one word.", "Madrid"),
    ("What is the capital of the United Kingdom? Answer in one word.", "London"),
    ("How many days are there in a week? Answer with a number.", "7"),
    ("How many hours are there in a day? Answer with a number.", "24"),
    ("How many legs does a spider have? Answer with a number.", "8"),
    ("What color is the sky on a clear day? Answer in one word.", "blue"),
    ("Which planet do we live on? Answer in one word.", "Earth"),
    ("What is the largest ocean on Earth? Answer in one word.", "Pacific"),
    ("At what temperature in degrees Celsius does water freeze? Answer with a number.", "0"),
    ("How many minutes are there in an hour? Answer with a number.", "60"),
    ("What do bees make? Answer in one word.", "honey"),
]
FORMATS = [
    ("Reply with exactly the word YES in capital letters and nothing else.", r"(?s)\s*YES[.!]?\s*"),
    ("Reply with exactly the word no in lowercase letters and nothing else.", r"(?s)\s*no[.!]?\s*"),
    ("Write the number seven as a digit and nothing else.", r"(?s)\s*7[.]?\s*"),
    ("Write the first three letters of the English alphabet in lowercase, separated by commas.",
     r"(?si)\s*a\s*,\s*b\s*,\s*c[.]?\s*"),
    ("Repeat this word exactly once: banana", r"(?si)\s*banana[.!]?\s*"),
    ("Answer with one word, either True or False: the sun is a star.", r"(?si)\s*true[.!]?\s*"),
    ("Write the word cat in capital letters and nothing else.", r"(?s)\s*CAT[.!]?\s*"),
    ("Count from 1 to 5, separated by spaces, and nothing else.", r"(?s)\s*1 2 3 4 5[.]?\s*"),
]


def rows(seed: int = SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out: list[dict[str, str]] = []
    for _ in range(15):
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        op = rng.choice("+-x")
        value = a + b if op == "+" else a - b if op == "-" else a * b
        word = {"+": "plus", "-": "minus", "x": "times"}[op]
        out.append({"prompt": f"What is {a} {word} {b}? Reply with the number only.", "answer": str(value),
                    "kind": "arithmetic", "match": "number"})
    out += [{"prompt": p, "answer": a, "kind": "fact", "match": "number" if a.isdigit() else "contains"}
            for p, a in FACTS]
    out += [{"prompt": p, "answer": a, "kind": "format", "match": "regex"} for p, a in FORMATS]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows()), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
