"""studio/formatting.py: the one place sizes, clock times and table values are written."""
from __future__ import annotations

import pytest

from studio.formatting import format_bytes, format_seconds, format_value


@pytest.mark.parametrize("n, text", [(None, "?"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"),
                                     (50 * 1024 ** 2, "50.0 MB"), (5 * 1024 ** 3, "5.0 GB"),
                                     (3 * 1024 ** 4, "3.0 TB"), (2048 * 1024 ** 4, "2048.0 TB")])
def test_sizes_are_binary_units_with_one_decimal(n, text):
    assert format_bytes(n) == text


def test_clock_times_are_tqdms_and_never_negative():
    assert (format_seconds(None), format_seconds(7), format_seconds(3723), format_seconds(-3)) == \
        ("?", "00:07", "1:02:03", "00:00")


@pytest.mark.parametrize("value, spec, text", [(None, None, "-"), (["q_proj", "v_proj"], None, "q_proj, v_proj"),
                                               (0.000123456, None, "0.0001235"), (12345, None, "12345"),
                                               (True, ".0%", "True"), (0.25, ".0%", "25%"), (3, ".1f", "3.0"),
                                               ("cosine", None, "cosine")])
def test_table_values(value, spec, text):
    assert format_value(value, spec) == text


def test_counts_read_as_english():
    """"1 rows" read oddly in the Data tab and the card (issue 23.9)."""
    import dataclasses

    from studio.data.stats import DataStats
    from studio.formatting import plural

    assert plural(1, "row") == "1 row" and plural(2, "row") == "2 rows" and plural(0, "row") == "0 rows"
    assert plural(1200, "row") == "1,200 rows"
    fields = {f.name: 0 for f in dataclasses.fields(DataStats)}
    warnings = DataStats(**{**fields, "n_rows": 5, "duplicate_rows": 1, "zero_trained_rows": 1}).warnings()
    assert any(w.startswith("1 row has no trained tokens") for w in warnings), warnings
    assert "1 row is an exact duplicate of earlier rows." in warnings, warnings
