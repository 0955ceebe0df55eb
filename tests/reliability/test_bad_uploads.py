"""Bad input through the app's handlers (what a browser sends): uploads, settings, Start/Resume, chat folders.

Each answer is the error box with one sentence naming the problem, never an "Unexpected error" or a traceback.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from checks import one_clear_line

from studio.session import Studio
from studio.ui.app import compose, initial_config
from studio.ui.forms import SOURCE_PATH, SOURCE_UPLOAD


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    blocks = compose(Studio(runs_dir=tmp_path_factory.mktemp("runs")), initial=initial_config(demo=True))
    return blocks.handles, blocks.ctx


def _box_text(box: dict) -> str:
    assert box["visible"] is True, box
    return box["value"].replace("**⚠ ", "").rstrip("*")


UPLOADS = [
    ("empty file", "up.csv", b"", r"up\.csv is empty"),
    ("not utf-8", "up.jsonl", '{"prompt": "caf\xe9"}\n'.encode("latin-1"), r"line 1: bytes that are not UTF-8"),
    ("malformed jsonl", "up.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": \n', r"line 2: malformed JSON"),
    ("spreadsheet", "up.xlsx", b"PK\x03\x04", r"unsupported file type \.xlsx"),
    ("header only", "up.csv", b"question,answer\n", r"has a header line but no rows"),
    ("json scalar", "up.json", b"42", r"must hold a list of objects"),
    ("unknown columns", "up.csv", b"foo,bar\n1,2\n", r"can't tell the format from the columns foo, bar"),
    ("broken parquet", "up.parquet", b"PAR1 garbage", r"could not be read as parquet"),
]


@pytest.mark.parametrize("name, content, pattern", [pytest.param(n, c, p, id=i) for i, n, c, p in UPLOADS])
def test_bad_upload_is_one_sentence(app, tmp_path, name, content, pattern):
    handles, ctx = app
    h = handles["data"]
    path = tmp_path / name
    path.write_bytes(content)
    values = ctx.forms.write(ctx.initial)
    values[h.n_rows] = 2
    values[h.form.source_kind], values[h.form.upload] = SOURCE_UPLOAD, str(path)
    out = h.refresh(values, reset=True)
    text = _box_text(out[h.error])
    one_clear_line(text, pattern)
    assert "Unexpected error" not in text


def test_semicolon_upload_is_read_as_two_columns(app, tmp_path):
    handles, ctx = app
    h = handles["data"]
    path = tmp_path / "europe.csv"
    path.write_text("Problem;Solution\n" + "".join(f"{i}x = {2 * i};x = 2\n" for i in range(1, 9)), encoding="utf-8")
    values = ctx.forms.write(ctx.initial)
    values[h.n_rows] = 2
    values[h.form.source_kind], values[h.form.path] = SOURCE_PATH, str(path)
    out = h.refresh(values, reset=True)
    assert out[h.error]["visible"] is False, out[h.error]
    assert out[h.form.mapping["prompt"]]["value"] == "Problem"
    assert out[h.form.mapping["completion"]]["value"] == "Solution"


TRAIN = [
    ("learning rate 5", {"learning_rate": 5.0}, r"learning_rate must be < 1"),
    ("batch size 0", {"batch_size": 0}, r"batch.size must be at least 1 \(got 0\)"),
    ("warmup 1", {"warmup_ratio": 1.0}, r"warmup_ratio must be in \[0, 1\)"),
]


@pytest.mark.parametrize("changes, pattern", [pytest.param(c, p, id=i) for i, c, p in TRAIN])
def test_bad_training_settings_are_one_sentence(app, changes, pattern):
    handles, ctx = app
    h = handles["train"]
    values = ctx.forms.write(ctx.initial)
    for key, value in changes.items():
        values[getattr(h.form, key)] = value
    out = h.on_start(values)
    one_clear_line(_box_text(out[h.error]), pattern)


def test_resume_without_a_pick_and_chat_on_a_broken_folder(app, tmp_path):
    handles, _ = app
    h = handles["train"]
    one_clear_line(_box_text(h.on_resume(None)[h.error]), r"Pick a run to resume")
    chat = handles["chat"]
    folder = tmp_path / "not-an-adapter"
    folder.mkdir()
    out = chat.on_load(None, str(folder), lambda *a, **k: None)
    one_clear_line(_box_text(out[chat.error]), r"not-an-adapter")
    assert "Unexpected error" not in _box_text(out[chat.error])
