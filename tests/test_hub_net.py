"""The Hub client's plumbing: repo ids (huggingface_hub's validator), "can't reach the Hub" told by the typed errors
(never by message text) in the tokenizer, model and dataset loaders, and the model card read back by ModelCard."""
from __future__ import annotations

import pytest

from studio.errors import ConfigError, HubError, ModelError, hub_unreachable


# ------------------------------------------------------------------------------------------------- repo ids
@pytest.mark.parametrize("repo_id", ["a/b/c", "bad--name", "has space", "trailing.", "", "  /  "])
def test_bad_repo_ids_are_one_sentence_in_push_and_config(repo_id):
    from studio.config import RunConfig
    from studio.hub.push import HubAccount, full_repo_id

    with pytest.raises(HubError, match=r"^repo id must look like 'name' or 'owner/name', got "):
        full_repo_id(repo_id, HubAccount("tester"))
    if repo_id.strip():
        with pytest.raises(ConfigError, match=r"hub.repo_id must look like 'name' or 'owner/name'"):
            RunConfig.from_dict({"hub": {"repo_id": repo_id}})


def test_good_repo_ids_get_the_account_when_they_have_no_owner():
    from studio.config import RunConfig
    from studio.hub.push import HubAccount, full_repo_id

    account = HubAccount("tester")
    assert full_repo_id(" my-adapter_v1.2 ", account) == "tester/my-adapter_v1.2"
    assert full_repo_id("/studio-org/shared/", account) == "studio-org/shared"
    assert RunConfig.from_dict({"hub": {"repo_id": "me/x"}}).hub.repo_id == "me/x"


# ------------------------------------------------------------------------------------------------- unreachable
def _raised_from(cause: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except BaseException as exc:  # noqa: BLE001
        return exc


def test_hub_unreachable_follows_the_typed_errors_not_the_words():
    import httpx2
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

    assert hub_unreachable(OfflineModeIsEnabled("HF_HUB_OFFLINE is set"))
    assert hub_unreachable(httpx2.ConnectError("[Errno 111] Connection refused"))
    assert hub_unreachable(_raised_from(LocalEntryNotFoundError("not cached"), OSError("We couldn't load it")))
    assert hub_unreachable(_raised_from(httpx2.ReadTimeout("slow"), RuntimeError("wrapped twice")))
    assert not hub_unreachable(ValueError("offline: cannot connect, Name or service not known"))
    assert not hub_unreachable(OSError("someone/x is not a valid model identifier"))
    not_found = httpx2.Response(404, request=httpx2.Request("GET", "http://hub/api/models/someone/x"))
    assert not hub_unreachable(RepositoryNotFoundError("404 Repository Not Found", response=not_found))
    assert not hub_unreachable(None)


@pytest.fixture
def offline(monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the libraries read it once, at import: set their copies too
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_offline_tokenizer_and_model_say_the_hub_cant_be_reached(offline):
    from studio.config import ModelConfig
    from studio.modeling import load_base
    from studio.modeling.tokenizer import load_tokenizer

    missing = ModelConfig(name_or_path="someone/not-cached-anywhere")
    with pytest.raises(ModelError, match="can't reach the Hugging Face Hub to download 'someone/not-cached"):
        load_tokenizer(missing)
    tok = load_tokenizer(ModelConfig())  # the demo model's, built locally
    with pytest.raises(ModelError, match="Hub is out of reach and 'someone/not-cached"):  # hub_problem's sentence
        load_base(missing, device="cpu", tokenizer=tok)


def test_a_refused_connection_is_unreachable_too(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    from hub_fixtures import skip_retry_waits

    from studio.config import ModelConfig
    from studio.modeling.tokenizer import load_tokenizer

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    skip_retry_waits(monkeypatch)
    with pytest.raises(ModelError, match="can't reach the Hugging Face Hub to download"):
        load_tokenizer(ModelConfig(name_or_path="someone/not-cached-anywhere"))


# ------------------------------------------------------------------------------------------------- card header
def test_the_card_header_is_read_by_model_card():
    from studio.hub import card_metadata_of, parse_card

    data, body = parse_card("---\nlicense: mit\ntags: [sft, lora]\nmy_key: 3\n---\n\n# Title\n")
    assert (data.license, data.tags, body) == ("mit", ["sft", "lora"], "\n# Title\n")
    assert card_metadata_of("---\nlicense: mit\nmy_key: 3\n---\n# T\n") == {"license": "mit", "my_key": 3}
    assert card_metadata_of("# no header\n") == {}
    with pytest.raises(HubError, match="YAML header is invalid"):
        parse_card("---\nlicense: [mit\n---\n# T\n")
    with pytest.raises(HubError, match="must be a mapping"):
        parse_card("---\n- a list\n---\n# T\n")


def test_timeouts_install_once_per_value_and_leave_the_factory_readable():
    import huggingface_hub
    from huggingface_hub.utils import _http, get_session

    from studio.hub import net

    before = _http._GLOBAL_CLIENT_FACTORY
    try:
        net.install_timeouts(7.0)
        first = _http._GLOBAL_CLIENT_FACTORY
        session = get_session()
        assert net.install_timeouts(7.0) == 7.0
        assert _http._GLOBAL_CLIENT_FACTORY is first and get_session() is session  # same value: client kept
        net.install_timeouts(3.0)
        assert _http._GLOBAL_CLIENT_FACTORY.seconds == 3.0 and get_session().timeout.read == 3.0
    finally:
        huggingface_hub.set_client_factory(before)
