"""`studio serve` through the official openai client: models, answers, streaming, switching adapters, the queue,
the API key, the errors (the demo model), and equality with `studio chat` on the real SmolLM2 model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import httpx
import pytest

from chat_helpers import chat_runs_dir, one_thread, wp2_run, wp_run  # noqa: F401
from conftest import free_port
from serve_helpers import ThreadServer, smollm2_chat_run  # noqa: F401
from studio.cli import main

openai = pytest.importorskip("openai")
PROMPT = "A baker makes 5 trays of 12 cookies. How many cookies?"


@pytest.fixture(scope="module")
def demo(wp_run, wp2_run):  # noqa: F811
    from studio.inference import ChatEngine

    engine = ChatEngine.from_run(wp_run, device="cpu")
    engine.load_adapter(wp2_run)
    server = ThreadServer(engine, max_pending=2)
    yield server
    server.stop()


def _ask(client, model, **kw):
    kw.setdefault("max_tokens", 6)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}],
                                          temperature=0, **kw)


def test_models_and_switching_adapters_on_one_base(demo):
    client = demo.client()
    ids = [m.id for m in client.models.list().data]
    assert ids == ["studio/demo-tiny", "base", "wp", "wp2"]
    answers = {m: _ask(client, m).choices[0].message.content for m in ("wp", "wp2", "base")}
    engine = demo.engine
    for name in ("wp", "wp2"):  # each equals the engine's own greedy answer with that adapter
        assert answers[name] == engine.generate(PROMPT, adapter=name, params=engine_params(6)).text
    assert answers["base"] == engine.generate(PROMPT, adapter="base", params=engine_params(6)).text
    assert answers["wp"] != answers["base"]
    assert engine.active == "wp"  # a request's adapter never changes the engine's default


def engine_params(n):
    from studio.inference import GenerationParams

    return GenerationParams(max_new_tokens=n)


def test_completions_usage_and_stop(demo):
    client = demo.client()
    out = client.completions.create(model="wp", prompt="Tom has 3 apples.", max_tokens=5, temperature=0)
    assert out.usage.completion_tokens == 5 and out.usage.prompt_tokens > 0
    assert out.choices[0].finish_reason == "length"
    full = _ask(client, "base", max_tokens=8).choices[0].message.content
    word = full.split()[1]
    cut = _ask(client, "base", max_tokens=8, stop=word)
    assert word not in cut.choices[0].message.content and full.startswith(cut.choices[0].message.content)
    assert cut.choices[0].finish_reason == "stop"


def test_error_cases_are_openai_style(demo):
    client, base = demo.client(), demo.base
    with pytest.raises(openai.NotFoundError, match="'nope' is not served"):
        _ask(client, "nope")
    with pytest.raises(openai.BadRequestError, match="max_tokens must be at least 1"):
        _ask(client, "wp", max_tokens=0)
    with pytest.raises(openai.BadRequestError, match="max_tokens must be at least 1"):
        _ask(client, "wp", max_tokens=-3)
    with pytest.raises(openai.BadRequestError, match="stop must be a string or a list"):
        _ask(client, "wp", extra_body={"stop": {"a": 1}})
    with pytest.raises(openai.BadRequestError, match="context of 2048 tokens") as err:
        client.chat.completions.create(model="wp", messages=[{"role": "user", "content": "seven " * 3000}],
                                       max_tokens=4)
    assert err.value.body["code"] == "context_length_exceeded"
    for body, status, code in ((b"{not json", 400, "invalid_json"), (b'{"model": "wp"}', 422, "missing_field")):
        r = httpx.post(f"{base}/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status and r.json()["error"]["code"] == code
        assert set(r.json()["error"]) >= {"message", "type", "code"}


def test_full_queue_answers_429_and_a_client_leaving_stops_its_generation(demo):
    client = demo.client()
    stream = _ask(client, "wp", max_tokens=1500, stream=True)
    first = next(iter(stream))  # holds 1 of the 2 places
    pool = ThreadPoolExecutor(3)
    tries = [pool.submit(_try, client) for _ in range(3)]
    refused = []
    for f in as_completed(tries, timeout=60):
        refused.append(f.result())
        if len(refused) == 2:
            break
    assert refused == ["429", "429"]  # 1 streaming + 1 waiting fill the queue of 2; the others are refused
    assert first.choices[0].delta.role == "assistant"
    stream.close()  # the client goes away mid-answer
    assert sorted(f.result(timeout=120) for f in tries) == ["429", "429", "ok"]  # the waiting one is answered
    pool.shutdown()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        health = httpx.get(f"{demo.base}/health").json()
        if health["in_flight"] == 0 and health["cancelled_tokens"]:
            break
        time.sleep(0.1)
    assert health["cancelled"] == 1
    assert 0 < health["cancelled_tokens"][-1] < 1500  # generation stopped early, not at max_tokens
    assert _ask(client, "wp").choices[0].message.content  # the server is still up


def _try(client):
    try:
        _ask(client, "wp", max_tokens=2)
        return "ok"
    except openai.RateLimitError:
        return "429"


def test_serve_docs_grounds_chat_answers_on_the_retrieved_chunks(demo, tmp_path):
    from serve_helpers import FACT_QUESTION, write_docs
    from studio.retrieval import grounded_message, open_index

    index = open_index(write_docs(tmp_path / "docs"), retriever="bm25", cache_dir=tmp_path / "cache")
    server = ThreadServer(demo.engine, index=index, top_k=2)
    try:
        reply = server.client().chat.completions.create(
            model="wp", messages=[{"role": "user", "content": FACT_QUESTION}], max_tokens=3, temperature=0)
        chunks = reply.model_extra["studio_chunks"]
        assert [c["source"] for c in chunks][0] == "veltrania.txt" and len(chunks) == 2
        message = grounded_message(FACT_QUESTION, index.search(FACT_QUESTION, 2))
        assert message.startswith("Answer the question based only on the following context:\nThe capital of")
        prompt = demo.engine.build_prompt(message, adapter="wp", max_new_tokens=3, max_input_tokens=2048)
        assert reply.usage.prompt_tokens == len(prompt.input_ids)  # the question was sent grounded
    finally:
        server.stop()


def test_api_key(wp_run):  # noqa: F811
    from studio.inference import ChatEngine

    server = ThreadServer(ChatEngine.from_run(wp_run, device="cpu"), api_key="sekrit")
    try:
        with pytest.raises(openai.AuthenticationError, match="invalid API key"):
            server.client("wrong").models.list()
        assert httpx.get(f"{server.url}/models").status_code == 401
        assert [m.id for m in server.client("sekrit").models.list().data][-1] == "wp"
    finally:
        server.stop()


def test_cli_refuses_an_open_host_without_key_and_names_a_busy_port(wp_run, capsys):  # noqa: F811
    os.environ.pop("STUDIO_API_KEY", None)
    assert main(["serve", "--run", str(wp_run), "--host", "0.0.0.0"]) == 2
    assert "needs an API key" in capsys.readouterr().err
    from studio.serving.app import bind

    busy = bind("127.0.0.1", 0)
    try:
        port = busy.getsockname()[1]
        assert main(["serve", "--run", str(wp_run), "--port", str(port)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: port {port} on 127.0.0.1 is in use (another server listens there); pick another "
                       f"with --port"]
    finally:
        busy.close()


@pytest.mark.slow
def test_real_model_serve_equals_studio_chat(smollm2_chat_run, capsys):  # noqa: F811
    argv = ["chat", "--run", str(smollm2_chat_run), "--prompt", PROMPT, "--json", "--max-new-tokens", "24",
            "--device", "cpu"]
    assert main(argv) == 0
    chat = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "serve", "--run", str(smollm2_chat_run), "--port",
                             str(port), "--device", "cpu"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        while line and "serving" not in line:
            line = proc.stderr.readline()
        assert f"127.0.0.1:{port}/v1" in line, line
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=300)
        assert [m.id for m in client.models.list().data] == ["smollm2-135m-instruct", "base", "smol-chat"]
        reply = _ask(client, "smol-chat", max_tokens=24)
        assert reply.choices[0].message.content == chat["text"]
        assert reply.usage.completion_tokens == chat["n_tokens"]
        pieces = [c.choices[0].delta.content or "" for c in _ask(client, "smol-chat", max_tokens=24, stream=True)
                  if c.choices]
        assert len([p for p in pieces if p]) > 3 and "".join(pieces) == chat["text"]
        with ThreadPoolExecutor(8) as pool:
            texts = list(pool.map(lambda i: _ask(client, ("smol-chat", "base")[i % 2], max_tokens=6)
                                  .choices[0].message.content, range(8)))
        assert len(set(texts[0::2])) == 1 and chat["text"].startswith(texts[0])  # all 8 answered, in order
        assert len(set(texts[1::2])) == 1 and texts[1]  # the base model, switched per request
    finally:
        proc.terminate()
        proc.wait(30)
