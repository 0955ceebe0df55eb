"""A GGUF export that fails its check is never uploaded (fast: the export is stubbed, the Hub is the local one)."""
from __future__ import annotations

import pytest

from hub_server import TEST_TOKEN
from studio.errors import HubError

TOKEN = TEST_TOKEN  # the shared `hub` fixture's token


def _stub(tmp_path, monkeypatch, *, ok: bool):
    import studio.hub.gguf_export as gguf_export
    from studio.hub.gguf_export import GGUFCheck, GGUFExport, ProbeParity

    out = tmp_path / "gguf"
    out.mkdir()
    (out / "m-f16.gguf").write_bytes(b"GGUF")
    (out / "README.md").write_text("# m\n", encoding="utf-8")
    probe = ProbeParity("2+2?", "4", "4" if ok else "5", same=ok, agreed_tokens=0 if not ok else 1)
    check = GGUFCheck("f16", probes=[probe], template_ok=True, eos_ok=True, modelfile_ok=True, compared=True)
    result = GGUFExport(path=out, gguf_file="m-f16.gguf", outtype="f16", check=check, files=["m-f16.gguf"])
    monkeypatch.setattr(gguf_export, "export_gguf", lambda *a, **k: result)


def test_a_gguf_that_fails_its_check_is_not_pushed(hub, tmp_path, monkeypatch):
    from studio.hub import push

    _stub(tmp_path, monkeypatch, ok=False)
    with pytest.raises(HubError, match=r"GGUF f16: 0/1 probe answers identical.*CHECK FAILED.*not pushed.*kept in"):
        push(tmp_path, "m-gguf", TOKEN, gguf="f16")
    assert "commit" not in hub.routes_called() and "create" not in hub.routes_called()


def test_a_checked_gguf_is_pushed(hub, tmp_path, monkeypatch):
    from studio.hub import push

    _stub(tmp_path, monkeypatch, ok=True)
    url = push(tmp_path, "m-gguf", TOKEN, gguf="f16")
    assert url.endswith("/tester/m-gguf")
    repo = hub.repo("tester/m-gguf")
    assert repo.files["m-f16.gguf"] == b"GGUF" and "GGUF f16" in repo.commits[-1]["summary"]
