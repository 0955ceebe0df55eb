"""Hub faults during `studio push` (in process, against tests/hub_server.py): 401, 403, 404, 429, 500, a slow answer,
an upload that hangs, and a transient 429/503 that a retry gets past. Each failure is one line, exit 2, the token
never shown, and the export kept so a retry only uploads."""
from __future__ import annotations

import time

import pytest
from checks import one_error_after_progress
from hub_server import TEST_TOKEN

from studio.cli import main

TOKEN = TEST_TOKEN


@pytest.fixture
def hub(hub, monkeypatch):
    """The shared local Hub (tests/conftest.py), with HF_TOKEN set and a 1.5 s timeout on every call."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("STUDIO_HUB_TIMEOUT", "1.5")
    return hub


FAULTS = [
    ("401 bad token", {"fail": {"whoami": 401}}, r"rejected the token \(401 Unauthorized\)", False),
    ("403 no write", {"fail": {"create": 403}}, r"may not write to tester/target \(403 Forbidden\)", True),
    ("404 on commit", {"fail": {"commit": 404}}, r"tester/target was not found \(404\)", True),
    ("429 rate limit", {"fail": {"create": 429}}, r"rate-limiting this account \(429", True),
    ("500 server error", {"fail": {"commit": 500}}, r"server error \(500\).*push again", True),
    ("timeout on whoami", {"delay": {"whoami": 4.0}}, r"did not answer within 1\.5 s", False),
    ("upload hangs", {"hang": {"preupload"}}, r"did not answer within 1\.5 s.*export is kept in", True),
]


@pytest.mark.parametrize("setup, pattern, kept", [pytest.param(s, p, k, id=i) for i, s, p, k in FAULTS])
def test_hub_fault_is_one_line_and_keeps_the_export(hub, hub_run, capsys, setup, pattern, kept):
    for key, value in setup.items():
        setattr(hub, key, value)
    t0 = time.perf_counter()
    rc = main(["push", "--run", str(hub_run), "--repo", "target"])
    waited = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 2, err
    line = one_error_after_progress(err, pattern)
    assert TOKEN not in err
    if kept:
        assert "export is kept" in line
        assert (hub_run / "export" / "adapter" / "adapter_model.safetensors").is_file()
    assert waited < 60, "a hung Hub must end within the timeout (and its retries)"
    hub.hang.clear()


def test_transient_429_and_503_are_retried(hub, hub_run, capsys):
    hub.fail, hub.fail_times = {"create": 429, "whoami": 503}, {"create": 2, "whoami": 1}
    assert main(["push", "--run", str(hub_run), "--repo", "target"]) == 0, capsys.readouterr().err
    assert "target" in capsys.readouterr().out
    assert "tester/target" in hub.repos
    assert hub.routes_called().count("create") == 3 and hub.routes_called().count("whoami") >= 2


def test_every_hub_call_has_a_timeout(hub):
    from huggingface_hub.utils import get_session

    from studio.hub import net

    assert net.install_timeouts() == 1.5
    timeout = get_session().timeout
    assert timeout.read == 1.5 and timeout.connect == 1.5


def test_a_full_disk_during_an_export_is_one_line(hub_run, tmp_path, capsys, monkeypatch):
    import errno

    from studio.hub import exporting

    def full(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(exporting.shutil, "copyfile", full)
    assert main(["push", "--run", str(hub_run), "--export-only", str(tmp_path / "out")]) == 2
    one_error_after_progress(capsys.readouterr().err, r"error: the disk is full: no space left writing .*out")


def test_a_hub_that_never_answers_fails_within_the_total_limit(hub, hub_run, capsys, monkeypatch):
    """huggingface_hub retries a timed-out upload five times; the push's total limit cuts the retries short."""
    monkeypatch.setenv("STUDIO_HUB_TIMEOUT", "3")
    monkeypatch.setenv("STUDIO_HUB_TOTAL", "4")
    hub.hang = {"preupload"}
    t0 = time.perf_counter()
    assert main(["push", "--run", str(hub_run), "--repo", "target"]) == 2
    waited = time.perf_counter() - t0
    one_error_after_progress(capsys.readouterr().err, r"did not answer within 4 s.*export is kept in")
    assert hub.routes_called().count("preupload") <= 2, hub.routes_called()  # six without the limit
    assert waited < 4 * 3, waited
    hub.hang.clear()
