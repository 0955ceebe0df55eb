"""Data tab, headless, on preference data: the preference roles in the mapping boxes, each pair shown as the prompt
once and both answers with exactly the trainer's labelled tokens marked trained, per-side statistics, the pairs'
warnings, and a KTO row's label."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from studio.config import SourceConfig
from studio.session import Studio
from studio.modeling.tokenizer import load_tokenizer
from studio.ui.app import compose, initial_config
from studio.ui.forms import MAPPING_ROLES, SOURCE_PATH

PAIRS = Path(__file__).resolve().parents[1] / "data" / "pairs.jsonl"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    blocks = compose(Studio(runs_dir=tmp_path_factory.mktemp("runs")), initial=initial_config(demo=True))
    return blocks.handles["data"], blocks.ctx


def _refresh(app, path: Path, method: str = "dpo", max_length: int = 512, n_rows: int = 3) -> dict:
    h, ctx = app
    values = ctx.forms.write(ctx.initial)
    values.update({h.n_rows: n_rows, h.form.source_kind: SOURCE_PATH, h.form.path: str(path),
                   h.form.template_name: "(chat template)", h.form.template: "", h.form.max_length: max_length,
                   ctx.forms.train.method: method})
    out = h.refresh(values, reset=True)
    assert out[h.error]["visible"] is False, out[h.error]
    return out


def _rows(spans) -> list[list[tuple[str, str | None]]]:
    """The highlighted spans split per row."""
    rows: list = []
    for text, label in spans:
        if label == "row" and text.startswith("── row"):
            rows.append([])
        elif rows:
            rows[-1].append((text, label))
    return rows


def _sides(row) -> dict[str, str]:
    """Head -> the trained text under it (the prompt under "prompt")."""
    out, head = {}, None
    for text, label in row:
        if label == "row":
            head = text.strip().split(" ")[0] if not text.startswith("prompt") else "prompt"
            out[head] = ""
        elif label == "trained" and head:
            out[head] += text
    return out


def test_pairs_show_the_prompt_once_and_both_answers_trained_as_the_trainer_labels(app):
    from studio.data import load_data
    from studio.data.pairs import render_pair
    from studio.data.prepare import spec_for

    h, ctx = app
    out = _refresh(app, PAIRS)
    assert out[h.form.format] == "preference"
    assert {"prompt", "chosen", "rejected"} <= set(MAPPING_ROLES)
    assert {r for r, dd in h.form.mapping.items() if out[dd]["visible"]} == {"prompt", "chosen", "rejected"}
    assert out[h.form.mapping["rejected"]]["value"] == "rejected"
    rows = _rows(out[h.highlighted])
    assert len(rows) == 3
    first = json.loads(PAIRS.read_text().splitlines()[0])
    text = "".join(t for t, _ in rows[0])
    assert text.count(first["prompt"]) == 1, "the prompt is shown once"
    sides = _sides(rows[0])
    assert set(sides) == {"prompt", "✔", "✘"} and sides["prompt"] == ""
    # exactly the trainer's labels: the rendered pair's labelled answer tokens, decoded
    cfg = dataclasses.replace(ctx.initial, data=dataclasses.replace(
        ctx.initial.data, template=None, format="auto", sources=[SourceConfig(path=str(PAIRS))]),
        train=dataclasses.replace(ctx.initial.train, method="dpo", max_length=512))
    tok, _ = load_tokenizer(cfg.model)
    loaded = load_data(cfg.data)
    pair = render_pair(loaded.dataset[0], tok, spec_for(cfg, loaded, tok))
    for head, side in (("✔", pair.chosen), ("✘", pair.rejected)):
        ids, mask = pair.sequence("chosen" if head == "✔" else "rejected")
        assert sides[head] == tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=False)
    assert first["chosen"] in sides["✔"] and first["rejected"] in sides["✘"]
    stats = dict((k, v) for k, v in out[h.stats])
    assert stats["rows"] == 12 and "chosen: rows cut by max_length (512)" in stats
    assert "rejected: trained tokens (mean per row)" in stats
    assert out[h.histogram].data and len(out[h.histogram].data[0].x) == 12


def test_cut_identical_and_empty_pairs_are_warned(app, tmp_path):
    h, _ = app
    bad = tmp_path / "bad_pairs.jsonl"
    rows = [{"prompt": "Say hi.", "chosen": "Hi there, friend!", "rejected": "Hi there, friend!"},
            {"prompt": "Say bye.", "chosen": "Bye.", "rejected": ""},
            {"prompt": "Count.", "chosen": "one two three four five six seven eight nine ten eleven",
             "rejected": "one two three four five six seven eight nine ten twelve"}]
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _refresh(app, bad, max_length=24)  # the counts differ at their last word, past token 24
    warnings = out[h.warnings]
    assert "chosen and rejected are the same answer" in warnings and "an answer is empty" in warnings
    spans = out[h.highlighted]
    assert any(label == "cut" and "cut at max_length" in text for text, label in spans), "the cut is shown"
    assert any("eleven" in text for text, label in spans if label is None), "the cut words are shown"
    assert not any("eleven" in text or "twelve" in text for text, label in spans if label == "trained"), \
        "words past max_length are not trained"
    assert "1 of 3 rows: the answers differ only after the max_length cut" in warnings
    assert "\n⚠ the answers differ only after the max_length cut: this row is dropped from training" in \
        [text for text, _ in spans]


def test_kto_rows_show_their_label(app, tmp_path):
    h, _ = app
    kto = tmp_path / "kto.jsonl"
    kto.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completion": f"A{i}.", "label": i % 2 == 0}) + "\n"
                           for i in range(4)))
    out = _refresh(app, kto, method="sft")
    assert out[h.form.format] == "kto"
    assert {r for r, dd in h.form.mapping.items() if out[dd]["visible"]} == {"prompt", "completion", "label"}
    text = "".join(t for t, _ in out[h.highlighted])
    assert "label true (desirable)" in text and "label false (undesirable)" in text
    assert "train with the KTO method" in out[h.warnings]
