"""The FastAPI app of ``studio serve`` and a server for it (in the foreground for the CLI, in a thread for the
Chat tab's Serve panel).

Each request names a model: the base model (its name, or ``base``) or a loaded adapter (a run's name); the engine
switches adapters per request on one copy of the base weights, under its lock, and builds chat prompts with that
run's trained format, exactly as ``studio chat`` does. Streamed answers are server-sent events; a client that goes
away stops its generation within a token.
"""
# no `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request) at runtime

import hmac
import ipaddress
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from studio.errors import StudioError
from studio.serving.queue import RequestQueue
from studio.serving.schemas import ApiError, ApiRequest, parse_json, parse_request

FINISH = {"eos": "stop", "stop_string": "stop", "stopped": "stop", "length": "length"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeOptions:
    api_key: str | None = None
    max_pending: int = 16
    index: Any = None
    """A :class:`studio.retrieval.DocIndex`: chat questions are grounded on its chunks."""
    top_k: int = 4


def model_names(engine: Any) -> dict[str, str]:
    """``{model id: adapter name or "base"}``: the base model by its name (and ``base``), each adapter by name."""
    from studio.inference import BASE

    out = {engine.base_model or BASE: BASE, BASE: BASE}
    out.update({name: name for name in engine.adapters})
    return out


def create_app(get_engine: Callable[[], Any], options: ServeOptions | None = None) -> Any:
    """The app. ``get_engine()`` returns the ChatEngine to serve (the Chat tab's may change between requests)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    opts = options or ServeOptions()
    queue = RequestQueue(opts.max_pending)
    app = FastAPI(title="Fine-Tune Studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.queue = queue

    def error(err: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api(_: Request, err: ApiError) -> JSONResponse:
        return error(err)

    @app.exception_handler(StudioError)
    async def _studio(_: Request, err: StudioError) -> JSONResponse:
        return error(ApiError(400, str(err), type(err).__name__))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, err: HTTPException) -> JSONResponse:
        code = "not_found" if err.status_code == 404 else "http_error"
        return error(ApiError(err.status_code, str(err.detail), code))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return error(ApiError(422, str(err)[:300], "invalid_request"))

    @app.exception_handler(Exception)
    async def _other(_: Request, err: Exception) -> JSONResponse:
        return error(ApiError(500, f"{type(err).__name__}: {str(err).splitlines()[0][:240] if str(err) else ''}",
                              "internal_error", type="server_error"))

    def check_key(request: Request) -> None:
        if not opts.api_key:
            return
        given = request.headers.get("authorization", "")
        token = given[7:].strip() if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), opts.api_key.encode()):
            raise ApiError(401, "invalid API key: send the server's key as 'Authorization: Bearer <key>'",
                           "invalid_api_key", type="authentication_error")

    def engine_now() -> Any:
        engine = get_engine()
        if engine is None or getattr(engine, "model", None) is None:
            raise ApiError(503, "no model is loaded (load a run in the Chat tab)", "model_not_loaded",
                           type="server_error")
        return engine

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **queue.stats()}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_key(request)
        engine, now = engine_now(), int(time.time())
        return {"object": "list", "data": [{"id": name, "object": "model", "created": now,
                                            "owned_by": "base" if target == "base" else "studio"}
                                           for name, target in model_names(engine).items()]}

    async def answer(request: Request, chat: bool) -> Any:
        check_key(request)
        req = parse_request(parse_json(await request.body()), chat=chat)
        engine = engine_now()
        target = model_names(engine).get(req.model)
        if target is None:
            raise ApiError(404, f"model {req.model!r} is not served; served: {', '.join(model_names(engine))}",
                           "model_not_found", param="model")
        queue.enter()
        try:
            stream, grounding = await run_in_threadpool(open_stream, engine, req, target, opts)
        except BaseException:
            queue.leave(answered=False)
            raise
        kind = "chat.completion" if chat else "text_completion"
        meta = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
                "model": req.model}
        extra = {"studio_chunks": [h.to_dict() for h in grounding.hits]} if grounding else {}
        if req.stream:
            return StreamingResponse(events(request, stream, req, meta, kind, chat, extra),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            reply = await run_in_threadpool(stream.reply)
        finally:
            stream.close()
            queue.leave()
        choice = ({"message": {"role": "assistant", "content": reply.text}} if chat else {"text": reply.text})
        return {**meta, "object": kind, "choices": [{"index": 0, **choice, "logprobs": None,
                                                     "finish_reason": FINISH.get(reply.finish_reason, "stop")}],
                "usage": usage(stream), **extra}

    async def events(request: Request, stream: Any, req: ApiRequest, meta: dict, kind: str, chat: bool,
                     extra: dict) -> AsyncIterator[str]:
        obj = "chat.completion.chunk" if chat else kind
        cancelled = True

        def chunk(text: str | None, finish: str | None = None, **more: Any) -> str:
            delta = ({"delta": {"content": text} if text is not None else {}} if chat else {"text": text or ""})
            body = {**meta, "object": obj, "choices": [{"index": 0, **delta, "logprobs": None,
                                                        "finish_reason": finish}], **more}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        try:
            if chat:
                first = {**meta, "object": obj, "choices": [{"index": 0, "delta": {"role": "assistant",
                         "content": ""}, "logprobs": None, "finish_reason": None}], **extra}
                yield f"data: {json.dumps(first, ensure_ascii=False)}\n\n"
            while True:
                piece = await run_in_threadpool(next, stream, None)
                if await request.is_disconnected():
                    return
                if piece is None:
                    break
                yield chunk(piece)
            yield chunk(None, FINISH.get(stream.finish_reason or "eos", "stop"))
            if req.include_usage:
                body = {**meta, "object": obj, "choices": [], "usage": usage(stream)}
                yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"
            cancelled = False
        finally:
            stream.close()
            queue.leave(cancelled=cancelled)
            if cancelled:
                queue.note_cancelled(stream)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await answer(request, True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await answer(request, False)

    return app


def usage(stream: Any) -> dict[str, int]:
    n_prompt = len(stream.prompt.input_ids)
    return {"prompt_tokens": n_prompt, "completion_tokens": stream.n_tokens,
            "total_tokens": n_prompt + stream.n_tokens}


def open_stream(engine: Any, req: ApiRequest, target: str, opts: ServeOptions) -> tuple[Any, Any]:
    """The engine's stream for a request (not started) and its grounding (None without documents).

    Raises:
        ApiError: 400 when the prompt does not fit the model's context with ``max_tokens``.
    """
    from studio.inference.prompt import Prompt, PromptTooLong

    ctx = getattr(getattr(engine.model, "config", None), "max_position_embeddings", None) or 10 ** 9
    budget = req.params.max_new_tokens
    if budget >= ctx:
        raise ApiError(400, f"max_tokens ({budget}) must be below the model's context of {ctx} tokens",
                       "context_length_exceeded", param="max_tokens")
    limit, grounding = ctx - budget, None
    if req.prompt is not None:
        ids = list(engine.tokenizer(req.prompt)["input_ids"])
        if len(ids) > limit:
            raise _too_long(len(ids), ctx, budget)
        prompt = Prompt(ids, req.prompt, 0, 0, limit)
    else:
        system, history, message = req.split()
        if opts.index is not None:
            from studio.retrieval.grounding import Grounding

            grounding = Grounding.retrieve(opts.index, message, opts.top_k)
            message = grounding.message
        try:
            prompt = engine.build_prompt(message, history, system, adapter=target, max_new_tokens=budget,
                                         max_input_tokens=ctx)
        except PromptTooLong:
            raise _too_long(None, ctx, budget) from None
        if prompt.trimmed:
            raise _too_long(None, ctx, budget)
    return engine.stream(prompt=prompt, params=req.params, adapter=target), grounding


def _too_long(n: int | None, ctx: int, budget: int) -> ApiError:
    size = f"is {n} tokens, " if n is not None else ""
    return ApiError(400, f"the prompt {size}over this model's context of {ctx} tokens with max_tokens {budget} "
                    f"(at most {ctx - budget} prompt tokens); shorten it or lower max_tokens",
                    "context_length_exceeded", param="messages")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``.

    Raises:
        StudioError: the port is in use (or the address can't be bound), in one sentence.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "is in use (another server listens there)" if exc.errno in (98, 48, 10048) else f"can't be bound " \
            f"({exc.strerror or exc})"
        raise StudioError(f"port {port} on {host} {why}; pick another with --port") from None
    sock.listen(128)
    return sock


class Server:
    """uvicorn serving ``app`` on a socket bound at once (so a busy port is said before anything loads)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 8000) -> None:
        import uvicorn

        self.host = host
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                    timeout_graceful_shutdown=2))
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '::') else host}:{self.port}/v1"

    def run(self) -> None:
        """Serve in this thread until Ctrl-C."""
        self.server.run(sockets=[self.sock])

    def start(self, timeout: float = 30.0) -> "Server":
        """Serve in a daemon thread; returns once it accepts connections."""
        self.thread = threading.Thread(target=self.run, daemon=True, name="studio-serve")
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise StudioError(f"the server on port {self.port} did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
        self.sock.close()
