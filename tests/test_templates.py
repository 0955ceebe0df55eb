"""Templates: exact strings, placeholders, splits."""
from __future__ import annotations

import pytest

from studio.errors import TemplateError
from studio.templates import NAMED_TEMPLATES, fill, placeholders, resolve, split_at_response


def test_seed_solution_template_exact_string():
    template, response = resolve("solution")
    text = fill(template, {"prompt": "Solve 2x = 4", "completion": "x = 2"})
    assert text == "Solve 2x = 4\n ### Solution: x = 2"
    assert response == "### Solution:"
    assert split_at_response(text, response) == ("Solve 2x = 4\n ### Solution:", " x = 2")


def test_alpaca_exact_string():
    template, response = resolve("alpaca")
    text = fill(template, {"instruction": "Add", "input": "1 2", "output": "3"})
    assert text.endswith("### Instruction:\nAdd\n\n### Input:\n1 2\n\n### Response:\n3")
    assert split_at_response(text, response)[1] == "3"


def test_explicit_response_template_wins_over_named():
    assert resolve("solution", "Answer:")[1] == "Answer:"
    assert resolve("{q} => {a}", None) == ("{q} => {a}", None)
    assert resolve("", "x") == (None, "x")


def test_unknown_placeholder_lists_available_columns():
    with pytest.raises(TemplateError, match=r"\{questoin\} matches no column; available: answer, question"):
        fill("{questoin}", {"question": "q", "answer": "a"})


@pytest.mark.parametrize("bad", ["{", "{}", "{0}", "{a.b}"])
def test_malformed_templates(bad):
    with pytest.raises(TemplateError):
        placeholders(bad)


def test_literal_braces_and_order():
    assert placeholders("{{x}} {b} {a} {b}") == ["b", "a"]
    assert fill("{{x}} {a}", {"a": 1}) == "{x} 1"


def test_split_without_marker_is_none():
    assert split_at_response("no marker", "### Solution:") is None
    assert all(t.description for t in NAMED_TEMPLATES.values())
