"""Write the bundled demo datasets into ``assets/datasets/`` (deterministic, stdlib only).

Every answer is computed here (equations solved with ``Fraction``, word problems with integer or exact
arithmetic, Python answers executed), so the files are correct by construction. Regenerate with::

    python scripts/make_datasets.py [--out FOLDER]

The word lists, sentences, definitions, tips and fixed tasks are data: ``scripts/dataset_tables/*.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import random
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "assets" / "datasets"
TABLES = Path(__file__).resolve().parent / "dataset_tables"
SEED = 1234


def tables(dataset: str) -> dict:
    """A dataset's word lists, sentences, definitions, tips and fixed tasks (data, not code)."""
    return json.loads((TABLES / f"{dataset}.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# shared helpers

PEOPLE, FRUITS, ITEMS, THINGS = map(tables("word_problems").get, ("people", "fruits", "items", "things"))


def num(n: int, commas: bool) -> str:
    """Format an integer, with thousands separators when asked."""
    return f"{n:,}" if commas else str(n)


def dec(x: Fraction | int) -> str:
    """Format an exact number with a finite decimal expansion (no trailing zeros)."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    d = Decimal(x.numerator) / Decimal(x.denominator)
    text = format(d.normalize(), "f")
    assert Fraction(text) == x, (x, text)
    return text


def money(x: Fraction | int) -> str:
    """Format dollars: whole amounts plain, otherwise with two decimals."""
    x = Fraction(x)
    if x.denominator == 1:
        return f"${x.numerator:,}"
    cents = x * 100
    assert cents.denominator == 1, x
    return f"${format(Decimal(cents.numerator) / 100, ',.2f')}"


# ---------------------------------------------------------------------------------------------------------------
# 1. linear equations (Problem, Solution)

VARS = ["x", "x", "x", "y", "n", "t", "a", "m"]


def term(a: int, v: str) -> str:
    if a == 1:
        return v
    if a == -1:
        return f"-{v}"
    return f"{a}{v}"


def lin(a: int, v: str, b: int) -> str:
    """Render ``a*v + b``."""
    head = term(a, v) if a else ""
    if b == 0:
        return head or "0"
    if not head:
        return str(b)
    return f"{head} + {b}" if b > 0 else f"{head} - {-b}"


def solve_steps(a: int, b: int, c: int, v: str) -> tuple[list[str], Fraction]:
    """Steps that solve ``a*v + b = c``; returns (lines, answer)."""
    lines = []
    if b > 0:
        lines.append(f"Subtract {b} from both sides: {term(a, v)} = {c - b}")
    elif b < 0:
        lines.append(f"Add {-b} to both sides: {term(a, v)} = {c - b}")
    rhs = c - b
    ans = Fraction(rhs, a)
    if a == -1:
        lines.append(f"Multiply both sides by -1: {v} = {ans}")
    elif a != 1:
        if ans.denominator != 1 and abs(rhs) != abs(ans.numerator):
            p, q = (rhs, a) if a > 0 else (-rhs, -a)
            lines.append(f"Divide both sides by {a}: {v} = {p}/{q} = {ans}")
        else:
            lines.append(f"Divide both sides by {a}: {v} = {ans}")
    lines.append(f"{v} = {ans}")
    return lines, ans


def _nz(rng: random.Random, lo: int, hi: int) -> int:
    while True:
        k = rng.randint(lo, hi)
        if k:
            return k


def equation(rng: random.Random) -> tuple[str, str]:
    v = rng.choice(VARS)
    kind = rng.choices(["axb", "paren", "both", "div", "bminus"], weights=[40, 15, 20, 12, 13])[0]
    fractional = rng.random() < 0.15
    x = rng.randint(-12, 15) if rng.random() < 0.3 else rng.randint(1, 15)
    if kind == "axb":
        a, b = _nz(rng, -9, 12), _nz(rng, -30, 40)
        c = a * x + b + (rng.choice([1, -1, 2]) if fractional and abs(a) > 1 else 0)
        eq = f"{lin(a, v, b)} = {c}"
        lines, ans = solve_steps(a, b, c, v)
    elif kind == "paren":
        a, k = rng.randint(2, 9) * rng.choice([1, 1, 1, -1]), _nz(rng, -9, 9)
        c = a * (x + k) + (rng.choice([1, -1]) if fractional else 0)
        inner = lin(1, v, k)
        eq = f"{a}({inner}) = {c}"
        lines = [f"Expand the left side: {lin(a, v, a * k)} = {c}"]
        more, ans = solve_steps(a, a * k, c, v)
        lines += more
    elif kind == "both":
        a, cc = _nz(rng, -6, 12), _nz(rng, -6, 9)
        while a == cc:
            cc = _nz(rng, -6, 9)
        b = rng.randint(-20, 25)
        d = (a - cc) * x + b + (1 if fractional and abs(a - cc) > 1 else 0)
        eq = f"{lin(a, v, b)} = {lin(cc, v, d)}"
        # a v + b = cc v + d  ->  (a - cc) v + b = d ; move cc v first
        if cc > 0:
            move = f"Subtract {term(cc, v)} from both sides"
        else:
            move = f"Add {term(-cc, v)} to both sides"
        lines = [f"{move}: {lin(a - cc, v, b)} = {d}"]
        more, ans = solve_steps(a - cc, b, d, v)
        lines += more
        # sanity: the original equation holds at ans
        assert a * ans + b == cc * ans + d
    elif kind == "div":
        q, b = rng.randint(2, 9), _nz(rng, -15, 20)
        rhs = x
        c = rhs + b
        ans = Fraction(rhs * q)
        eq = f"{v}/{q} {'+' if b > 0 else '-'} {abs(b)} = {c}"
        lines = []
        if b > 0:
            lines.append(f"Subtract {b} from both sides: {v}/{q} = {rhs}")
        else:
            lines.append(f"Add {-b} to both sides: {v}/{q} = {rhs}")
        lines.append(f"Multiply both sides by {q}: {v} = {ans}")
        lines.append(f"{v} = {ans}")
    else:  # b - a v = c
        a, b = rng.randint(2, 9), rng.randint(5, 60)
        c = b - a * x + (rng.choice([1, -1]) if fractional else 0)
        eq = f"{b} - {term(a, v)} = {c}"
        lines = [f"Subtract {b} from both sides: {term(-a, v)} = {c - b}"]
        more, ans = solve_steps(-a, 0, c - b, v)
        lines += more
        assert b - a * ans == c
    stem = rng.choice([
        "Solve for {v}: {eq}", "Solve for {v}: {eq}", "Solve the equation {eq} for {v}.",
        "Find {v} if {eq}.", "What value of {v} makes {eq} true?", "Solve: {eq}",
    ])
    return stem.format(v=v, eq=eq), "\n".join(lines)


def linear_equations(rng: random.Random, count: int) -> list[dict]:
    rows, seen = [], set()
    while len(rows) < count:
        problem, solution = equation(rng)
        if problem not in seen:
            seen.add(problem)
            rows.append({"Problem": problem, "Solution": solution})
    return rows


# ---------------------------------------------------------------------------------------------------------------
# 2. grade-school word problems (question, answer ending in "#### N")


def wp_fruit(rng, p, commas):
    name, he, _ = p
    fruit = rng.choice(FRUITS)
    a = rng.randint(15, 80)
    b, c = rng.randint(2, a // 3), rng.randint(1, a // 4)
    r = a - b - c
    q = f"{name} picked {a} {fruit}. {he.capitalize()} gave {b} to a neighbor and ate {c}. How many {fruit} does {he} have left?"
    ans = f"{he.capitalize()} gave away or ate {b} + {c} = {b + c} {fruit}.\nSo {he} has {a} - {b + c} = {r} {fruit} left."
    return q, ans, r


def wp_change(rng, p, commas):
    name, he, _ = p
    item, base = rng.choice(ITEMS)
    n, price = rng.randint(2, 6), base + rng.randint(0, 4)
    total = n * price
    bill = next(b for b in (20, 50, 100, 200) if b > total)
    q = f"{name} buys {n} {item} that cost ${price} each. {he.capitalize()} pays with a ${bill} bill. How much change does {he} get?"
    ans = f"The {item} cost {n} x ${price} = ${total}.\nThe change is ${bill} - ${total} = ${bill - total}."
    return q, ans, bill - total


def wp_distance(rng, p, commas):
    vehicle, lo, hi, unit = rng.choice([("train", 60, 140, "km"), ("car", 40, 90, "miles"),
                                        ("plane", 700, 900, "km"), ("ship", 20, 40, "km")])
    s, t = rng.randint(lo, hi), rng.randint(2, 9)
    d = s * t
    q = f"A {vehicle} travels at {s} {unit} per hour for {t} hours. How far does it travel?"
    ans = f"Distance is speed times time.\nThe {vehicle} travels {s} x {t} = {num(d, commas)} {unit}."
    return q, ans, d


def wp_time(rng, p, commas):
    name, he, _ = p
    s = rng.randint(8, 20)
    halves = rng.random() < 0.1 and s % 2 == 0
    t = Fraction(rng.randint(3, 11), 2) if halves else Fraction(rng.randint(2, 6))
    d = s * t
    q = f"{name} rides a bike {dec(d)} miles at a steady {s} miles per hour. How many hours does the ride take?"
    ans = f"Time is distance divided by speed.\nThe ride takes {dec(d)} / {s} = {dec(t)} hours."
    return q, ans, t


def wp_ages(rng, p, commas):
    (a, _, _), (b, _, _) = rng.sample(PEOPLE, 2)
    k, bage, n = rng.randint(2, 12), rng.randint(5, 40), rng.randint(2, 10)
    aage = bage + k
    if rng.random() < 0.5:
        q = f"{a} is {k} years older than {b}. {b} is {bage} years old. How old will {a} be in {n} years?"
        ans = f"{a} is {bage} + {k} = {aage} years old now.\nIn {n} years {a} will be {aage} + {n} = {aage + n} years old."
        return q, ans, aage + n
    q = f"{a} is {k} years older than {b}, who is {bage}. What is the sum of their ages?"
    ans = f"{a} is {bage} + {k} = {aage} years old.\nTogether they are {aage} + {bage} = {aage + bage} years old."
    return q, ans, aage + bage


def wp_sharing(rng, p, commas):
    name, he, _ = p
    thing = rng.choice(["stickers", "candies", "marbles", "cards", "cookies", "crayons"])
    k, each = rng.randint(2, 9), rng.randint(3, 25)
    total = k * each
    q = f"{name} has {total} {thing} and shares them equally among {k} friends, keeping none. How many {thing} does each friend get?"
    ans = f"Each friend gets {total} / {k} = {each} {thing}."
    return q, ans, each


def wp_savings(rng, p, commas):
    name, he, _ = p
    s, w = rng.randint(5, 40), rng.randint(4, 20)
    saved = s * w
    spend = rng.randint(saved // 4, saved - 1)
    thing = rng.choice(THINGS)
    q = f"{name} saves ${s} every week for {w} weeks, then spends ${spend} on a {thing}. How much money does {he} have left?"
    ans = f"{he.capitalize()} saves {s} x {w} = ${saved}.\nAfter buying the {thing}, {he} has ${saved} - ${spend} = ${saved - spend} left."
    return q, ans, saved - spend


def wp_pages(rng, p, commas):
    name, he, _ = p
    r, d = rng.randint(8, 40), rng.randint(3, 12)
    read = r * d
    total = read + rng.randint(10, 300)
    q = f"A book has {total} pages. {name} reads {r} pages a day for {d} days. How many pages does {he} still have to read?"
    ans = f"{he.capitalize()} reads {r} x {d} = {read} pages.\nThere are {total} - {read} = {total - read} pages left."
    return q, ans, total - read


def wp_fence(rng, p, commas):
    length, width, c = rng.randint(8, 60), rng.randint(5, 40), rng.randint(4, 25)
    per = 2 * (length + width)
    cost = per * c
    q = (f"A rectangular garden is {length} meters long and {width} meters wide. Fencing costs ${c} per meter. "
         f"How much does it cost to fence the whole garden?")
    ans = (f"The perimeter is 2 x ({length} + {width}) = {per} meters.\n"
           f"The fence costs {per} x ${c} = ${num(cost, commas)}.")
    return q, ans, cost


def wp_discount(rng, p, commas):
    item = rng.choice(["jacket", "lamp", "backpack", "tent", "bicycle", "desk chair"])
    d = rng.choice([10, 20, 25, 30, 40, 50])
    price = rng.randint(4, 40) * 5 if rng.random() < 0.12 else rng.randint(2, 30) * 20
    off = Fraction(price * d, 100)
    sale = price - off
    q = f"A {item} costs ${price}. It is on sale for {d}% off. What is the sale price?"
    ans = f"The discount is {d}% of ${price} = {money(off)}.\nThe sale price is ${price} - {money(off)} = {money(sale)}."
    return q, ans, sale


def wp_temperature(rng, p, commas):
    t, drop = rng.randint(-5, 12), rng.randint(3, 20)
    q = f"At noon the temperature was {t} degrees Celsius. By midnight it had dropped by {drop} degrees. What was the temperature at midnight?"
    ans = f"The temperature at midnight was {t} - {drop} = {t - drop} degrees Celsius."
    return q, ans, t - drop


def wp_bakery(rng, p, commas):
    b, c = rng.randint(3, 12), rng.randint(6, 24)
    made = b * c
    s = rng.randint(made // 4, made // 2)
    t = rng.randint(1, made - s)
    q = (f"A bakery bakes {b} trays of {c} muffins each. It sells {s} muffins in the morning and {t} in the "
         f"afternoon. How many muffins are left?")
    ans = (f"The bakery bakes {b} x {c} = {made} muffins.\nIt sells {s} + {t} = {s + t} muffins.\n"
           f"So {made} - {s + t} = {made - s - t} muffins are left.")
    return q, ans, made - s - t


def wp_bus(rng, p, commas):
    start = rng.randint(20, 50)
    off1, on1 = rng.randint(2, 15), rng.randint(2, 15)
    mid = start - off1 + on1
    off2 = rng.randint(1, mid - 1)
    q = (f"A bus leaves the station with {start} passengers. At the first stop {off1} people get off and {on1} get on. "
         f"At the second stop {off2} people get off. How many passengers are on the bus now?")
    ans = (f"After the first stop there are {start} - {off1} + {on1} = {mid} passengers.\n"
           f"After the second stop there are {mid} - {off2} = {mid - off2} passengers.")
    return q, ans, mid - off2


def wp_wages(rng, p, commas):
    name, he, _ = p
    h, hrs, days, weeks = rng.randint(12, 40), rng.randint(4, 9), rng.randint(3, 6), rng.randint(2, 8)
    daily, weekly = h * hrs, h * hrs * days
    total = weekly * weeks
    q = (f"{name} earns ${h} per hour and works {hrs} hours a day, {days} days a week. "
         f"How much does {he} earn in {weeks} weeks?")
    ans = (f"{he.capitalize()} earns {hrs} x ${h} = ${daily} per day.\n"
           f"That is {days} x ${daily} = ${num(weekly, commas)} per week.\n"
           f"In {weeks} weeks {he} earns {weeks} x ${num(weekly, commas)} = ${num(total, commas)}.")
    return q, ans, total


def wp_factory(rng, p, commas):
    n, d = rng.randint(120, 950), rng.randint(5, 30)
    thing = rng.choice(["toys", "bottles", "bricks", "chairs", "shirts"])
    q = f"A factory makes {n} {thing} each day. How many {thing} does it make in {d} days?"
    ans = f"It makes {n} x {d} = {num(n * d, commas)} {thing}."
    return q, ans, n * d


def wp_shopping(rng, p, commas):
    name, he, _ = p
    a, pp, b, qq = rng.randint(2, 9), rng.randint(1, 4), rng.randint(2, 6), rng.randint(2, 7)
    if rng.random() < 0.1:
        pp = Fraction(rng.choice([5, 15, 25, 35]), 10)
    pens, books = a * pp, b * qq
    q = f"{name} buys {a} pens at {money(pp)} each and {b} notebooks at ${qq} each. How much does {he} spend in total?"
    ans = (f"The pens cost {a} x {money(pp)} = {money(pens)}.\nThe notebooks cost {b} x ${qq} = ${books}.\n"
           f"In total {he} spends {money(pens)} + ${books} = {money(pens + books)}.")
    return q, ans, pens + books


def wp_boxes(rng, p, commas):
    fruit = rng.choice(FRUITS)
    b, n = rng.randint(5, 40), rng.randint(12, 60)
    total = b * n
    bad = rng.randint(3, max(4, total // 10))
    q = (f"A store receives {b} boxes of {fruit} with {n} {fruit} in each box. {bad} of them are bruised and thrown "
         f"away. How many good {fruit} are left?")
    ans = (f"The store receives {b} x {n} = {num(total, commas)} {fruit}.\n"
           f"After throwing away {bad}, there are {num(total, commas)} - {bad} = {num(total - bad, commas)} good {fruit}.")
    return q, ans, total - bad


def wp_times_as_many(rng, p, commas):
    (a, _, _), (b, _, _) = rng.sample(PEOPLE, 2)
    k, m = rng.randint(2, 5), rng.randint(4, 30)
    thing = rng.choice(["marbles", "shells", "stamps", "coins", "books"])
    q = f"{a} has {k} times as many {thing} as {b}. {b} has {m} {thing}. How many {thing} do they have together?"
    ans = f"{a} has {k} x {m} = {k * m} {thing}.\nTogether they have {k * m} + {m} = {k * m + m} {thing}."
    return q, ans, k * m + m


def wp_average(rng, p, commas):
    name, he, his = p
    n = rng.choice([3, 4, 5])
    scores = [rng.randint(60, 100) for _ in range(n)]
    if n == 3 or rng.random() < 0.85:  # a whole average; otherwise n is 4 or 5, so the decimal terminates
        scores[-1] += (-sum(scores)) % n
        if scores[-1] > 100:
            scores[-1] -= n
    total = sum(scores)
    avg = Fraction(total, n)
    shown = ", ".join(map(str, scores[:-1])) + f" and {scores[-1]}"
    q = f"{name}'s test scores are {shown}. What is {his} average score?"
    ans = (f"The scores add up to {' + '.join(map(str, scores))} = {total}.\n"
           f"The average is {total} / {n} = {dec(avg)}.")
    return q, ans, avg


def wp_fraction_of(rng, p, commas):
    num_, den = rng.choice([(1, 2), (1, 3), (2, 3), (1, 4), (3, 4), (2, 5), (3, 5), (3, 8)])
    n = den * rng.randint(3, 10)
    girls = n * num_ // den
    q = f"There are {n} students in a class and {num_}/{den} of them are girls. How many boys are in the class?"
    ans = f"There are {n} x {num_}/{den} = {girls} girls.\nSo there are {n} - {girls} = {n - girls} boys."
    return q, ans, n - girls


def wp_quarter(rng, p, commas):
    name, he, _ = p
    m = rng.randint(5, 50) * 4
    books = m // 4
    lunch = rng.randint(3, 15)
    q = f"{name} had ${m}. {he.capitalize()} spent a quarter of it on books and ${lunch} on lunch. How much money is left?"
    ans = (f"A quarter of ${m} is ${m} / 4 = ${books}.\n{he.capitalize()} spent ${books} + ${lunch} = ${books + lunch}.\n"
           f"So ${m} - ${books + lunch} = ${m - books - lunch} is left.")
    return q, ans, m - books - lunch


def wp_recipe(rng, p, commas):
    s = rng.choice([2, 4, 6])
    c = rng.randint(1, 4)
    t = s * rng.randint(2, 5) if rng.random() < 0.9 else s * rng.randint(2, 5) + s // 2
    cups = Fraction(c * t, s)
    q = f"A recipe uses {c} cups of flour for {s} servings. How many cups of flour are needed for {t} servings?"
    scale = Fraction(t, s)
    ans = (f"{t} servings is {t} / {s} = {dec(scale)} times the recipe.\n"
           f"So you need {dec(scale)} x {c} = {dec(cups)} cups of flour.")
    return q, ans, cups


def wp_practice(rng, p, commas):
    name, he, _ = p
    m = rng.choice([15, 20, 30, 45, 60, 90])
    w = rng.randint(1, 3) * (60 // math.gcd(60, 7 * m))  # whole hours
    mins = m * 7 * w
    hours = Fraction(mins, 60)
    q = f"{name} practices piano for {m} minutes every day. How many hours does {he} practice in {w} weeks?"
    ans = (f"{w} weeks have {w} x 7 = {7 * w} days.\n{he.capitalize()} practices {7 * w} x {m} = {num(mins, commas)} minutes.\n"
           f"That is {num(mins, commas)} / 60 = {dec(hours)} hours.")
    return q, ans, hours


def wp_diver(rng, p, commas):
    d, r = rng.randint(20, 90), rng.randint(5, 15)
    d2 = rng.randint(3, 20)
    end = -d + r - d2
    q = (f"A diver is {d} meters below sea level. She rises {r} meters and then dives {d2} meters deeper. "
         f"What is her position relative to sea level, in meters?")
    ans = (f"She starts at -{d} meters.\nAfter rising she is at -{d} + {r} = {-d + r} meters.\n"
           f"After diving deeper she is at {-d + r} - {d2} = {end} meters.")
    return q, ans, end


def wp_rent(rng, p, commas):
    name, he, his = p
    rent, months = rng.randint(6, 25) * 50, rng.choice([6, 12])
    total = rent * months
    q = f"{name} pays ${num(rent, commas)} in rent each month. How much rent does {he} pay in {months} months?"
    ans = f"{he.capitalize()} pays {months} x ${num(rent, commas)} = ${num(total, commas)}."
    return q, ans, total


WORD_PROBLEMS = [
    (wp_fruit, 6), (wp_change, 6), (wp_distance, 5), (wp_time, 4), (wp_ages, 5), (wp_sharing, 5),
    (wp_savings, 5), (wp_pages, 5), (wp_fence, 4), (wp_discount, 4), (wp_temperature, 1), (wp_bakery, 5),
    (wp_bus, 5), (wp_wages, 4), (wp_factory, 4), (wp_shopping, 5), (wp_boxes, 4), (wp_times_as_many, 5),
    (wp_average, 4), (wp_fraction_of, 4), (wp_quarter, 4), (wp_recipe, 3), (wp_practice, 3), (wp_diver, 1),
    (wp_rent, 3),
]


def word_problems(rng: random.Random, count: int) -> list[dict]:
    rows, seen = [], set()
    fns, weights = zip(*WORD_PROBLEMS)
    while len(rows) < count:
        fn = rng.choices(fns, weights=weights)[0]
        q, reasoning, ans = fn(rng, rng.choice(PEOPLE), rng.random() < 0.5)
        if q in seen:
            continue
        seen.add(q)
        rows.append({"question": q, "answer": f"{reasoning}\n#### {dec(ans)}"})
    return rows


# ---------------------------------------------------------------------------------------------------------------
# 3. Python assistant (instruction, input, output); every snippet is executed here

# FIXED: (instruction, code, example call or None, note); CONVERSIONS: (name, what, argument, expression, example)
WORDS, SENTENCES, CONVERSIONS, FIXED = map(tables("python_assistant").get,
                                           ("words", "sentences", "conversions", "fixed"))


def run_code(code: str) -> str:
    """Execute ``code`` and return what it printed."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "<task>", "exec"), {})
    return buf.getvalue().rstrip("\n")


def with_output(code: str, lead: str = "") -> str:
    out = run_code(code)
    head = f"{lead}\n\n" if lead else ""
    return f"{head}```python\n{code}\n```\n\nOutput:\n```\n{out}\n```"


def rlist(rng, n=None, lo=-20, hi=60):
    return [rng.randint(lo, hi) for _ in range(n or rng.randint(4, 9))]


def in_reverse_string(rng):
    text = rng.choice(WORDS + SENTENCES)
    return "Reverse the given string.", text, with_output(f"text = {text!r}\nprint(text[::-1])")


def in_sort(rng):
    xs = rlist(rng)
    desc = rng.random() < 0.5
    ins = f"Sort the list in {'descending' if desc else 'ascending'} order."
    code = f"numbers = {xs}\nnumbers.sort({'reverse=True' if desc else ''})\nprint(numbers)"
    return ins, str(xs), with_output(code)


def in_vowels(rng):
    text = rng.choice(SENTENCES + WORDS)
    code = f"text = {text!r}\ncount = sum(1 for ch in text.lower() if ch in \"aeiou\")\nprint(count)"
    return "Count the vowels in the given text.", text, with_output(code)


def in_maxmin(rng):
    xs = rlist(rng)
    which = rng.choice(["largest", "smallest"])
    fn = "max" if which == "largest" else "min"
    return f"Find the {which} number in the list.", str(xs), with_output(f"numbers = {xs}\nprint({fn}(numbers))")


def in_factorial(rng):
    n = rng.randint(0, 15)
    code = f"n = {n}\nresult = 1\nfor i in range(2, n + 1):\n    result *= i\nprint(result)"
    return "Compute the factorial of the given number.", f"n = {n}", with_output(code)


def in_title(rng):
    text = rng.choice(SENTENCES)
    return "Convert the text to title case.", text, with_output(f"text = {text!r}\nprint(text.title())")


def in_dedupe(rng):
    xs = [rng.randint(1, 6) for _ in range(rng.randint(6, 10))]
    code = f"items = {xs}\nunique = list(dict.fromkeys(items))\nprint(unique)"
    return "Remove duplicates from the list but keep the original order.", str(xs), with_output(code)


def in_sum_even(rng):
    xs = rlist(rng, lo=1, hi=40)
    code = f"numbers = {xs}\nprint(sum(n for n in numbers if n % 2 == 0))"
    return "Return the sum of the even numbers in the list.", str(xs), with_output(code)


def in_palindrome(rng):
    w = rng.choice(WORDS)
    code = f"word = {w!r}\nprint(word == word[::-1])"
    return "Check whether the word is a palindrome.", w, with_output(code)


def in_word_count(rng):
    text = rng.choice(SENTENCES)
    return "Count the words in the sentence.", text, with_output(f"sentence = {text!r}\nprint(len(sentence.split()))")


def in_average(rng):
    xs = rlist(rng, lo=1, hi=50)
    code = f"numbers = {xs}\naverage = sum(numbers) / len(numbers)\nprint(round(average, 2))"
    return "Compute the average of the numbers, rounded to two decimals.", str(xs), with_output(code)


def in_celsius(rng):
    c = rng.randint(-30, 45)
    code = f"celsius = {c}\nfahrenheit = celsius * 9 / 5 + 32\nprint(fahrenheit)"
    return "Convert the temperature from Celsius to Fahrenheit.", f"{c} degrees Celsius", with_output(code)


def in_gcd(rng):
    g = rng.randint(2, 15)
    a, b = g * rng.randint(2, 12), g * rng.randint(2, 12)
    code = f"import math\n\nprint(math.gcd({a}, {b}))"
    return "Find the greatest common divisor of the two numbers.", f"a = {a}, b = {b}", with_output(code)


def in_fib(rng):
    n = rng.randint(1, 30)
    code = f"n = {n}\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, a + b\nprint(a)"
    lead = "Counting F(0) = 0 and F(1) = 1:"
    return "Compute the n-th Fibonacci number.", f"n = {n}", with_output(code, lead)


def in_binary(rng):
    n = rng.randint(2, 1000)
    return "Convert the number to binary.", str(n), with_output(f"n = {n}\nprint(bin(n)[2:])")


def in_longest(rng):
    text = rng.choice(SENTENCES)
    code = f"sentence = {text!r}\nprint(max(sentence.split(), key=len))"
    return "Find the longest word in the sentence.", text, with_output(code)


def in_squares(rng):
    xs = rlist(rng, lo=-9, hi=12)
    code = f"numbers = {xs}\nsquares = [n * n for n in numbers]\nprint(squares)"
    return "Square every number in the list.", str(xs), with_output(code)


def in_long_words(rng):
    text, k = rng.choice(SENTENCES), rng.randint(3, 5)
    code = f"sentence = {text!r}\nprint([w for w in sentence.split() if len(w) > {k}])"
    return f"List the words with more than {k} letters.", text, with_output(code)


def in_leap(rng):
    y = rng.choice([1900, 2000, 2024, 2023, 2100, 1996, 2400, 1999, 2020, 1800]) + rng.choice([0, 0, 4, 1])
    code = f"year = {y}\nis_leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)\nprint(is_leap)"
    return "Check whether the year is a leap year.", str(y), with_output(code)


def in_char_freq(rng):
    w = rng.choice(WORDS)
    code = f"from collections import Counter\n\nword = {w!r}\nprint(dict(Counter(word)))"
    return "Count how often each character appears in the word.", w, with_output(code)


def in_reverse_words(rng):
    text = rng.choice(SENTENCES)
    code = f"sentence = {text!r}\nprint(\" \".join(reversed(sentence.split())))"
    return "Reverse the order of the words in the sentence.", text, with_output(code)


def in_second_largest(rng):
    xs = rlist(rng, lo=1, hi=50)
    code = f"numbers = {xs}\nprint(sorted(set(numbers))[-2])"
    return "Find the second largest distinct number in the list.", str(xs), with_output(code)


def in_digit_sum(rng):
    n = rng.randint(100, 999999)
    code = f"n = {n}\nprint(sum(int(d) for d in str(n)))"
    return "Compute the sum of the digits of the number.", str(n), with_output(code)


def in_prime(rng):
    n = rng.randint(2, 200)
    code = (f"n = {n}\nis_prime = n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))\nprint(is_prime)")
    return "Check whether the number is prime.", str(n), with_output(code)


def in_merge_sorted(rng):
    a, b = sorted(rlist(rng, 4, 0, 30)), sorted(rlist(rng, 4, 0, 30))
    code = f"a = {a}\nb = {b}\nprint(sorted(a + b))"
    return "Merge the two lists into one sorted list.", f"a = {a}\nb = {b}", with_output(code)


def in_count_target(rng):
    xs = [rng.randint(1, 5) for _ in range(rng.randint(6, 12))]
    t = rng.randint(1, 5)
    code = f"numbers = {xs}\nprint(numbers.count({t}))"
    return f"Count how many times {t} appears in the list.", str(xs), with_output(code)


INPUT_TASKS = [
    in_reverse_string, in_sort, in_vowels, in_maxmin, in_factorial, in_title, in_dedupe, in_sum_even,
    in_palindrome, in_word_count, in_average, in_celsius, in_gcd, in_fib, in_binary, in_longest, in_squares,
    in_long_words, in_leap, in_char_freq, in_reverse_words, in_second_largest, in_digit_sum, in_prime,
    in_merge_sorted, in_count_target,
]


def fn_answer(code: str, call: str, note: str = "") -> str:
    """A function definition plus one example call whose result is computed by running it."""
    env: dict = {}
    exec(compile(code, "<task>", "exec"), env)
    result = eval(call, env)
    tail = f" {note}" if note else ""
    return f"```python\n{code}\n```\n\nFor example, `{call}` returns `{result!r}`.{tail}"


def no_multiple(rng):
    k = rng.randint(2, 13)
    code = f"def is_multiple_of_{k}(n):\n    \"\"\"Return True if n is divisible by {k}.\"\"\"\n    return n % {k} == 0"
    return f"Write a function `is_multiple_of_{k}(n)` that checks whether n is divisible by {k}.", "", \
        fn_answer(code, f"is_multiple_of_{k}({k * rng.randint(2, 9) + rng.choice([0, 0, 1])})")


def no_first_squares(rng):
    n, kind = rng.randint(3, 15), rng.choice(["square", "cube", "even", "odd"])
    expr = {"square": "i * i", "cube": "i ** 3", "even": "2 * i", "odd": "2 * i - 1"}[kind]
    code = f"numbers = [{expr} for i in range(1, {n + 1})]\nprint(numbers)"
    return f"Write a list comprehension that builds the first {n} {kind} numbers.", "", with_output(code)


def no_count_letter(rng):
    c = rng.choice("aeiostnr")
    word = rng.choice([w for w in WORDS + SENTENCES if c in w])
    code = (f"def count_{c}(text):\n    \"\"\"Count the letter '{c}' in text, ignoring case.\"\"\"\n"
            f"    return text.lower().count(\"{c}\")")
    return f"Write a function that counts how many times the letter '{c}' appears in a string, ignoring case.", "", \
        fn_answer(code, f"count_{c}({word!r})")


def no_table(rng):
    k, m = rng.randint(2, 12), rng.choice([5, 10])
    code = f"for i in range(1, {m + 1}):\n    print(f\"{k} x {{i}} = {{{k} * i}}\")"
    return f"Write a loop that prints the multiplication table of {k} from 1 to {m}.", "", with_output(code)


def no_sum_range(rng):
    n = rng.choice([10, 20, 50, 100, 200, 500, 1000])
    code = f"total = sum(range(1, {n + 1}))\nprint(total)"
    return f"Use Python to add up the whole numbers from 1 to {n}.", "", with_output(code)


def no_evens_between(rng):
    a = rng.randint(1, 20)
    b = a + rng.randint(6, 20)
    code = f"for n in range({a}, {b + 1}):\n    if n % 2 == 0:\n        print(n, end=\" \")\nprint()"
    return f"Print the even numbers from {a} to {b} on one line.", "", with_output(code)


def no_convert(rng):
    name, what, arg, expr, example = rng.choice(CONVERSIONS)
    code = f"def {name}({arg}):\n    \"\"\"Convert {what}.\"\"\"\n    return {expr}"
    ins = rng.choice([f"Write a function that converts {what}.", f"Write a Python function `{name}` that converts {what}."])
    return ins, "", fn_answer(code, f"{name}({example})")


def no_repeat(rng):
    k = rng.randint(2, 5)
    sep = rng.choice(["-", ", ", " "])
    code = f"def repeat(word):\n    \"\"\"Return word repeated {k} times, joined by {sep!r}.\"\"\"\n    return {sep!r}.join([word] * {k})"
    return f"Write a function that returns a word repeated {k} times, joined by {sep!r}.", "", \
        fn_answer(code, f"repeat({rng.choice(WORDS)!r})")


def fixed_tasks() -> list[dict]:
    rows = []
    for ins, code, call, note in FIXED:
        if call is None:
            compile(code, "<task>", "exec")
            out = run_code(code) if "open(" not in code and "def " not in code else ""
            text = f"```python\n{code}\n```"
            if out:
                text += f"\n\nOutput:\n```\n{out}\n```"
            if note:
                text += f"\n\n{note}"
        else:
            text = fn_answer(code, call, note)
        rows.append({"instruction": ins, "input": "", "output": text})
    return rows


NO_INPUT_TASKS = [no_multiple, no_first_squares, no_count_letter, no_table, no_sum_range, no_evens_between,
                  no_convert, no_repeat]


def python_assistant(rng: random.Random, count: int) -> list[dict]:
    rows = fixed_tasks()
    seen = {(r["instruction"], r["input"]) for r in rows}
    half = count // 2
    while len(rows) < count:
        with_input = sum(1 for r in rows if r["input"]) < half
        fn = rng.choice(INPUT_TASKS if with_input else NO_INPUT_TASKS)
        ins, inp, out = fn(rng)
        if (ins, inp) not in seen:
            seen.add((ins, inp))
            rows.append({"instruction": ins, "input": inp, "output": out})
    rng.shuffle(rows)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# 4. chat conversations (messages)

# DEFINITIONS: term -> (definition, example); TIPS and FOLLOW_THANKS: (question, answer); UNITS: (small, big, factor, fact)
SYSTEM_PROMPTS, DEFINITIONS, TIPS, FOLLOW_THANKS, UNITS = map(
    tables("chat").get, ("system_prompts", "definitions", "tips", "follow_thanks", "units"))


def _ask_definition(rng):
    term, (definition, example) = rng.choice(sorted(DEFINITIONS.items()))
    q = rng.choice(["What is {t}?", "Can you explain what {t} is?", "What does {t} mean?", "Define {t}, please."])
    first = (q.format(t=term), definition)
    follow = (rng.choice(["Can you give me an example?", "Could you give an example?", "What's an example?"]), example)
    return [first, follow] if rng.random() < 0.6 else [first]


def _ask_tip(rng):
    q, a = rng.choice(TIPS)
    pairs = [(q, a)]
    if rng.random() < 0.4:
        pairs.append(rng.choice(FOLLOW_THANKS))
    return pairs


OPS = {"+": ("plus", lambda a, b: a + b), "-": ("minus", lambda a, b: a - b), "x": ("times", lambda a, b: a * b)}


def _ask_arithmetic(rng):
    op = rng.choice(list(OPS))
    word, fn = OPS[op]
    a, b = (rng.randint(11, 99), rng.randint(2, 49)) if op == "x" else (rng.randint(10, 999), rng.randint(10, 999))
    r = fn(a, b)
    q = rng.choice([f"What is {a} {word} {b}?", f"What's {a} {op} {b}?", f"Can you calculate {a} {word} {b}?"])
    pairs = [(q, f"{a} {op} {b} = {r}.")]
    if rng.random() < 0.6:
        k = rng.randint(2, 9)
        if rng.random() < 0.5:
            pairs.append((f"And if I add {k * 10} to that?", f"{r} + {k * 10} = {r + k * 10}."))
        else:
            pairs.append((f"Now multiply that by {k}.", f"{r} x {k} = {r * k}."))
    return pairs


def _ask_division(rng):
    b, qq = rng.randint(2, 12), rng.randint(3, 40)
    rem = rng.randint(0, b - 1)
    a = b * qq + rem
    q = f"What is {a} divided by {b}?"
    if rem == 0:
        return [(q, f"{a} / {b} = {qq}.")]
    return [(q, f"{a} / {b} = {qq} with a remainder of {rem}, or {dec(Fraction(a, b)) if b in (2, 4, 5, 8, 10) else f'about {a / b:.2f}'}.")]


def _ask_percent(rng):
    pct = rng.choice([10, 15, 18, 20, 25])
    bill = rng.randint(12, 150)
    tip = Fraction(bill * pct, 100)
    q = rng.choice([f"What's a {pct}% tip on a ${bill} bill?", f"How much is {pct}% of ${bill}?"])
    pairs = [(q, f"{pct}% of ${bill} is {money(tip)}.")]
    if rng.random() < 0.5:
        pairs.append(("So what's the total?", f"${bill} + {money(tip)} = {money(bill + tip)}."))
    return pairs


def _ask_units(rng):
    small, big, k, fact = rng.choice(UNITS)
    n = Fraction(rng.randint(2, 12)) if rng.random() < 0.7 else Fraction(rng.randint(3, 15), 2)
    r = n * k
    return [(f"How many {small} are in {dec(n)} {big}?", f"{fact}, so {dec(n)} {big} is {dec(n)} x {k:,} = {dec(r) if r < 1000 else f'{int(r):,}'} {small}.")]


TOPICS = [(_ask_definition, 4), (_ask_tip, 4), (_ask_arithmetic, 3), (_ask_division, 1), (_ask_percent, 2),
          (_ask_units, 2)]


def chat(rng: random.Random, count: int) -> list[dict]:
    rows, seen = [], set()
    fns, weights = zip(*TOPICS)
    while len(rows) < count:
        want = rng.choice([1, 2, 2, 3])
        pairs: list[tuple[str, str]] = []
        while len(pairs) < want:
            more = rng.choices(fns, weights=weights)[0](rng)
            pairs += more[: want - len(pairs)]
        msgs = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}]
        for user, assistant in pairs:
            msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        key = json.dumps(msgs[1:])
        if key not in seen:
            seen.add(key)
            rows.append({"messages": msgs})
    return rows


# ---------------------------------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"Folder to write into (default: {OUT}).")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    with (out / "linear_equations.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["Problem", "Solution"], lineterminator="\n")
        w.writeheader()
        w.writerows(linear_equations(random.Random(SEED), 600))
    write_jsonl(out / "word_problems.jsonl", word_problems(random.Random(SEED + 1), 500))
    write_jsonl(out / "python_assistant.jsonl", python_assistant(random.Random(SEED + 2), 300))
    write_jsonl(out / "chat.jsonl", chat(random.Random(SEED + 3), 300))
    for p in sorted(out.glob("*.*")):
        if p.suffix in (".csv", ".jsonl"):
            print(f"{p.name}: {p.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
