"""`studio export`: adapter and merged exports into a folder; bad input is one line and exit code 2."""
from __future__ import annotations

import pytest

from studio.cli import main


def test_export_adapter_into_a_folder(hub_base_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", "--run", str(hub_base_run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "adapter_model.safetensors").is_file() and (out / "README.md").is_file()


def test_export_merged_defaults_to_the_run_folder(hub_base_run, capsys):
    assert main(["export", "--run", str(hub_base_run), "--format", "merged"]) == 0
    out = hub_base_run / "export" / "merged"
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "config.json").is_file()


def test_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", "--run", str(tmp_path / "nope"), "--format", "gguf"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not a run directory" in err and "\n" not in err
    with pytest.raises(SystemExit) as exc:
        main(["export", "--run", str(tmp_path), "--format", "gguf", "--outtype", "q4_k"])
    assert exc.value.code == 2
