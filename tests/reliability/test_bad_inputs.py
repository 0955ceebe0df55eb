"""Bad inputs through the CLI, in process: each gives exit code 2 and one line naming the problem, no traceback.

One table of cases, one test. A case writes what it needs under ``tmp_path`` and returns the ``studio`` argv.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import yaml
from checks import one_clear_line
from conftest import tiny_config_dict

from studio.cli import main

CSV_OK = "Problem,Solution\n2x=4,x=2\n3x=9,x=3\n"


def _cfg(tmp: Path, data: dict | None = None, model: dict | None = None, **sections) -> dict:
    raw = tiny_config_dict(tmp / "runs")
    raw["data"].update(data or {})
    raw["model"].update(model or {})
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def _write_cfg(tmp: Path, raw: dict | str, name: str = "run.yaml") -> str:
    path = tmp / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def _file(tmp: Path, name: str, content: str | bytes) -> str:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def data_file(name: str, content: str | bytes, **data) -> Callable[[Path], list[str]]:
    """`studio preview` on a config whose only source is the file ``name`` holding ``content``."""
    def make(tmp: Path) -> list[str]:
        src = _file(tmp, name, content)
        return ["preview", "--config", _write_cfg(tmp, _cfg(tmp, {"sources": [{"path": src}], **data}))]
    return make


def data_cfg(**data) -> Callable[[Path], list[str]]:
    """`studio preview` on the tiny config with these data settings (the bundled linear equations)."""
    return lambda tmp: ["preview", "--config", _write_cfg(tmp, _cfg(tmp, data))]


def train_cfg(**sections) -> Callable[[Path], list[str]]:
    """`studio train` on the tiny config with these section overrides (rejected before anything loads)."""
    return lambda tmp: ["train", "--config", _write_cfg(tmp, _cfg(tmp, **sections))]


def train_yaml(text: str | bytes) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        path = tmp / "run.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return ["train", "--config", str(path)]
    return make


def with_set(*items: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        argv = ["train", "--config", _write_cfg(tmp, _cfg(tmp))]
        for item in items:
            argv += ["--set", item]
        return argv
    return make


def model_folder(files: dict[str, str]) -> Callable[[Path], list[str]]:
    """`studio preview` with model.name_or_path a local folder holding ``files``."""
    def make(tmp: Path) -> list[str]:
        folder = tmp / "my-model"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return ["preview", "--config", _write_cfg(tmp, _cfg(tmp, model={"name_or_path": str(folder)}))]
    return make


def _config_dir(tmp: Path) -> list[str]:
    (tmp / "folder").mkdir()
    return ["train", "--config", str(tmp / "folder")]


def _runs_under_file(tmp: Path) -> list[str]:
    (tmp / "afile").write_text("x")
    return ["train", "--config", _write_cfg(tmp, _cfg(tmp)), "--runs-dir", str(tmp / "afile" / "runs")]


def _runs_is_file(tmp: Path) -> list[str]:
    (tmp / "runsfile").write_text("x")
    return ["train", "--config", _write_cfg(tmp, _cfg(tmp)), "--runs-dir", str(tmp / "runsfile")]


def _resume_not_a_run(tmp: Path) -> list[str]:
    (tmp / "plain").mkdir()
    return ["train", "--resume", str(tmp / "plain")]


def _resume_no_checkpoint(tmp: Path) -> list[str]:
    run = tmp / "run0"
    (run / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    _write_cfg(run, _cfg(tmp), "config.yaml")
    (run / "checkpoints" / "checkpoint-2" / "trainer_state.json").write_text("{cut")  # damaged
    return ["train", "--resume", str(run)]


def _run_arg(command: str, *extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: [command, "--run", str(tmp / "no-such-run"), *extra]


def _push_card_missing(tmp: Path) -> list[str]:
    run = tmp / "run1"
    run.mkdir()
    _write_cfg(run, _cfg(tmp), "config.yaml")
    return ["push", "--run", str(run), "--export-only", str(tmp / "out"), "--card", str(tmp / "nope.md")]


def _folder_no_data(tmp: Path) -> list[str]:
    (tmp / "d").mkdir()
    (tmp / "d" / "notes.md").write_text("hi")
    return ["preview", "--config", _write_cfg(tmp, _cfg(tmp, {"sources": [{"path": str(tmp / "d")}]}))]


def _folder_mixed_columns(tmp: Path) -> list[str]:
    _file(tmp, "d/a.csv", CSV_OK)
    _file(tmp, "d/b.csv", "question,answer\nq,a\n")
    return ["preview", "--config", _write_cfg(tmp, _cfg(tmp, {"sources": [{"path": str(tmp / "d")}]}))]


RUN = "linear_equations.csv"
CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    # ---- data files
    ("empty csv", data_file("e.csv", ""), r"e\.csv is empty"),
    ("blank lines only", data_file("b.jsonl", "\n\n  \n"), r"b\.jsonl is empty"),
    ("csv header only", data_file("h.csv", "Problem,Solution\n"), r"h\.csv has a header line but no rows"),
    ("csv not utf-8", data_file("l.csv", "Problem,Solution\ncaf\xe9,x\n".encode("latin-1")), r"line 2.*not UTF-8"),
    ("jsonl malformed line", data_file("m.jsonl", '{"a": 1}\n{"a": 2}\n{"a": \n'), r"m\.jsonl line 3: malformed JSON"),
    ("jsonl line is a list", data_file("l.jsonl", '{"a": 1}\n[1, 2]\n'), r"line 2: each line must be a JSON object"),
    ("json not a list", data_file("s.json", '"just a string"'), r"must hold a list of objects"),
    ("unsupported extension", data_file("x.xlsx", "PK\x03\x04"), r"unsupported file type \.xlsx"),
    ("missing data file", data_cfg(sources=[{"path": "./nope/missing.csv"}]), r"file not found: \./nope/missing\.csv"),
    ("not a hub id", data_cfg(sources=[{"path": "not a valid id!"}]), r"neither an existing file nor a Hub dataset id"),
    ("folder without data", _folder_no_data, r"holds no dataset files"),
    ("folder mixed columns", _folder_mixed_columns, r"different columns"),
    ("garbage parquet", data_file("g.parquet", b"not parquet at all"), r"g\.parquet could not be read as parquet"),
    ("one column, unclear delimiter", data_file("u.csv", "Problem~Solution;x\n2x=4~x=2;y\n"),
     r"can't tell the format from the columns|needs a column for|one column named"),
    ("mapped column missing", data_file("c.csv", "foo,bar\nq,a\n", template=None, response_template=None),
     r"can't tell the format from the columns foo, bar|needs a column for 'prompt'"),
    ("mapping names a missing column",
     lambda tmp: ["preview", "--config", _write_cfg(tmp, _cfg(tmp, {"sources": [
         {"path": _file(tmp, "k.csv", CSV_OK), "columns": {"prompt": "Question"}}]}))],
     r"column 'Question' \(for prompt\) is not in the data"),
    ("messages not a list", data_file("msg.jsonl", '{"messages": "hello"}\n', format="messages", template=None,
                                      response_template=None), r"messages must be a non-empty list"),
    ("message without role", data_file("msg2.jsonl", '{"messages": [{"content": "hi"}]}\n', format="messages",
                                       template=None, response_template=None), r"needs role"),
    ("unknown format", data_cfg(format="tables"), r"data\.format must be one of"),
    ("no sources", data_cfg(sources=[]), r"no dataset chosen"),
    ("empty source path", data_cfg(sources=[{"path": ""}]), r"sources\[\]\.path must be a non-empty string"),
    ("negative weight", data_cfg(sources=[{"path": "x.csv", "weight": -1}]), r"weight must be"),
    ("eval fraction too big", data_cfg(eval_fraction=0.9), r"eval_fraction must be between 0 and 0\.5"),
    ("max_rows zero", data_cfg(max_rows=0), r"max_rows must be >= 1"),
    # ---- templates
    ("template unknown column", data_cfg(template="{Question} -> {Solution}"), r"placeholder \{Question\} matches no column"),
    ("template broken braces", data_cfg(template="{Problem -> {Solution}"), r"template is malformed"),
    ("template positional field", data_cfg(template="{} ### Solution: {Solution}"), r"positional|malformed|placeholder"),
    ("bad chat template choice", lambda tmp: ["preview", "--config", _write_cfg(tmp, _cfg(
        tmp, model={"chat_template": "klingon"}))], r"chat_template must be one of"),
    # ---- models
    ("model folder without tokenizer", model_folder({"config.json": "{}"}), r"has no tokenizer files"),
    ("model corrupt config.json", model_folder({"config.json": '{"model_type": "llama",', "tokenizer.json": "{}"}),
     r"config\.json is not valid JSON \(line 1"),
    ("model corrupt tokenizer.json", model_folder({"config.json": "{}", "tokenizer.json": "{oops"}),
     r"tokenizer\.json is not valid JSON"),
    ("model config.json a list", model_folder({"config.json": "[1, 2]"}), r"config\.json must hold a JSON object"),
    ("model missing local path", lambda tmp: ["preview", "--config", _write_cfg(tmp, _cfg(
        tmp, model={"name_or_path": str(tmp / "nowhere" / "model")}))], r"not found locally or on the Hub|can't reach"),
    ("unknown quantization", train_cfg(model={"quantization": "3bit"}), r"model\.quantization must be one of"),
    ("empty model name", train_cfg(model={"name_or_path": ""}), r"model\.name_or_path must name"),
    # ---- configs
    ("config is a directory", _config_dir, r"is a folder, not a config file"),
    ("config missing", lambda tmp: ["train", "--config", str(tmp / "none.yaml")], r"config file not found"),
    ("config invalid yaml", train_yaml("train: [1, 2\nmodel: {"), r"is not valid YAML at line"),
    ("config not utf-8", train_yaml(b"train:\n  run_name: caf\xe9\n"), r"is not UTF-8 text"),
    ("config is a list", train_yaml("- 1\n- 2\n"), r"a config must be a mapping of sections"),
    ("config section not a mapping", train_yaml("train: 5\n"), r"train must be a mapping of keys"),
    ("unknown section", train_yaml("trian: {max_steps: 3}\n"), r"unknown config section 'trian'"),
    ("unknown key typo", train_cfg(train={"learnig_rate": 0.1}), r"unknown key train\.learnig_rate"),
    ("wrong type", train_cfg(train={"max_steps": "ten"}), r"train\.max_steps must be"),
    ("max_steps zero", train_cfg(train={"max_steps": 0}), r"max_steps must be -1 \(use epochs\) or >= 1"),
    ("learning rate too big", train_cfg(train={"learning_rate": 5}), r"learning_rate must be < 1"),
    ("batch size zero", train_cfg(train={"batch_size": 0}), r"batch_size must be > 0"),
    ("warmup ratio 1", train_cfg(train={"warmup_ratio": 1.0}), r"warmup_ratio must be in \[0, 1\)"),
    ("max_length tiny", train_cfg(train={"max_length": 4}), r"max_length must be >= 16"),
    ("gradient checkpointing maybe", train_cfg(train={"gradient_checkpointing": "maybe"}), r"gradient_checkpointing must be"),
    ("unknown optimizer", train_cfg(train={"optim": "sgd-fancy"}), r"train\.optim must be one of"),
    ("unknown scheduler", train_cfg(train={"lr_scheduler": "zigzag"}), r"lr_scheduler must be one of"),
    ("lora dropout 1.5", train_cfg(lora={"dropout": 1.5}), r"lora\.dropout must be in \[0, 1\)"),
    ("lora rank zero", train_cfg(lora={"r": 0}), r"lora\.r must be"),
    ("lora targets empty", train_cfg(lora={"target_modules": []}), r"target_modules must be 'all-linear'"),
    ("hub repo id three parts", train_cfg(hub={"repo_id": "a/b/c"}), r"hub\.repo_id must look like"),
    # ---- CLI arguments
    ("--set without =", with_set("train.max_steps"), r"--set expects section\.key=value"),
    ("--set unknown section", with_set("nope.x=1"), r"unknown config section 'nope'"),
    ("--set unknown key", with_set("train.stepz=1"), r"unknown key 'train\.stepz'"),
    ("--set bad value", with_set("train.batch_size=-3"), r"batch_size must be > 0"),
    ("train without config", lambda tmp: ["train"], r"give --config FILE"),
    ("resume not a run", _resume_not_a_run, r"is not a run directory \(no config\.yaml\)"),
    ("resume damaged checkpoint only", _resume_no_checkpoint, r"has no complete checkpoint to resume from"),
    ("runs folder under a file", _runs_under_file, r"afile is a file, not a folder"),
    ("runs folder is a file", _runs_is_file, r"runsfile is a file, not a folder"),
    ("preview negative rows", lambda tmp: ["preview", "--config", _write_cfg(tmp, _cfg(tmp)), "--rows", "-1"],
     r"--rows must be >= 0"),
    ("chat missing run", _run_arg("chat", "--prompt", "hi"), r"no-such-run"),
    ("eval missing run", _run_arg("eval"), r"no-such-run"),
    ("push missing run", _run_arg("push", "--export-only", "out"), r"no-such-run"),
    ("push card missing", _push_card_missing, r"can't read the card .*nope\.md"),
    # ---- numbers that are not numbers, misspelled names (issue 23)
    ("--set nan", with_set("train.learning_rate=nan"), r"train\.learning_rate must be a finite number, got nan"),
    ("yaml inf", train_yaml("train: {warmup_ratio: .inf}\n"), r"train\.warmup_ratio must be a finite number"),
    ("yaml -inf weight", data_cfg(sources=[{"path": "x.csv", "weight": float("-inf")}]), r"weight must be a finite"),
    ("chat temperature inf", _run_arg("chat", "--prompt", "hi", "--sample", "--temperature", "inf"),
     r"temperature must be a finite number, got inf"),
    ("chat top_p nan", _run_arg("chat", "--prompt", "hi", "--top-p", "nan"), r"top_p must be a finite number"),
    ("tracker not installed", train_cfg(train={"report_to": "mlflow"}),
     r"train\.report_to is mlflow, but the mlflow package is not installed: pip install mlflow"),
    ("unknown tracker", train_cfg(train={"report_to": "comet"}), r"train\.report_to must be one of"),
    ("misspelled named template", data_cfg(template="solutoin"),
     r"template 'solutoin' is neither a named template.*did you mean 'solution'\?.*solution, alpaca, qa, plain"),
]


@pytest.mark.parametrize("make, pattern", [pytest.param(m, p, id=i) for i, m, p in CASES])
def test_bad_input_is_one_clear_line(make, pattern, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = make(tmp_path)
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, f"exit {rc}: {err}"
    line = one_clear_line(err, pattern)
    assert line.startswith("error: ")


def test_the_table_is_big_enough():
    assert len(CASES) >= 60 and len({i for i, _, _ in CASES}) == len(CASES)
