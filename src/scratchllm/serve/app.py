"""``scratchllm serve``: an OpenAI-compatible HTTP API over the continuous-batching engine.

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/completions``,
``POST /v1/chat/completions``, ``POST /tokenize``, ``POST /detokenize``, ``GET /metrics``
(Prometheus text) and ``GET /`` (the chat page, ``static/index.html``).

A request becomes token ids (a chat's messages through the checkpoint's prompt format:
``finetune/prompts.render_chat``), then one sequence per ``n`` in the engine
(``generate/engine.py``: every active sequence of every request decoded together, each in its
own slot of a preallocated KV cache, joining and leaving between steps), stepped by one thread
(``worker.py``). Each sequence's tokens go through a ``TextStream``, as ``generate`` streams
them: a character split across tokens waits for its end (never U+FFFD), and a stop string
(the request's, or the format's end of turn) ends the answer without reaching the client.
Streaming answers are OpenAI's server-sent events: a first chunk with the role (chat), content
chunks, a last chunk with the finish reason, the usage chunk when asked, ``data: [DONE]``; one
id across them; joined, they are the non-streamed answer.

Errors are OpenAI's error objects: 400 ``invalid_request_error`` with the ``param`` for a bad
value or malformed JSON, 400 ``context_length_exceeded`` when the prompt and ``max_tokens`` do
not fit the window (never cut silently), 401 for a missing or wrong API key (``/health`` and
the page stay open), 404 for an unknown model or route, 413 for a body over the limit, 429
when the queue is full. A client that disconnects (or presses Stop on the page) frees its
slot at the next step.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from scratchllm.errors import ScratchLLMError
from scratchllm.finetune.prompts import PromptFormat, render_chat
from scratchllm.generate.engine import Engine, SamplingParams
from scratchllm.generate.prepack import prepack_linears
from scratchllm.generate.text_stream import TextStream
from scratchllm.serve import protocol
from scratchllm.serve.protocol import APIError, GenerationRequest, TokenLogprob, invalid
from scratchllm.serve.worker import TOKENS_PER_SECOND_WINDOW, EngineFailure, EngineWorker
from scratchllm.tokenizer import Tokenizer

DEFAULT_MAX_BODY_BYTES = 1_000_000
DISCONNECT_POLL_SECONDS = 0.25  # how often a non-streamed request checks its client is there


@dataclass
class ServedModel:
    """What the server serves: the model, its tokenizer and prompt format, under a name."""

    name: str
    model: Any  # a GPT
    tokenizer: Tokenizer
    prompt_format: PromptFormat | None
    created: int = field(default_factory=protocol.now)

    @property
    def context_length(self) -> int:
        return self.model.config.context_length


@dataclass
class ServerOptions:
    max_batch: int = 8  # slots of the KV cache: sequences decoded together
    max_queue: int = 64  # sequences that may wait for a slot before requests get 429
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    prepack: bool = True  # on a CPU, oneDNN's prepacked weights (generate/prepack.py)


def create_app(served: ServedModel, options: ServerOptions | None = None) -> FastAPI:
    """The FastAPI application serving ``served``; the engine's thread starts here
    (``app.state.worker.stop()`` ends it)."""
    options = options or ServerOptions()
    if options.prepack:  # the served model is the engine's alone: swap its layers in place
        prepack_linears(served.model)
    engine = Engine(served.model, max_batch=options.max_batch)
    worker = EngineWorker(engine, max_queue=options.max_queue)
    # the engine's thread runs from here on (a daemon: it ends with the process), not from an
    # ASGI lifespan, whose task a Ctrl-C of uvicorn cancels with a logged traceback
    worker.start()

    app = FastAPI(title="scratchllm", docs_url=None, redoc_url=None)
    app.state.served, app.state.worker, app.state.options = served, worker, options
    _add_error_handlers(app, worker)
    app.add_middleware(_BodyLimit, limit=options.max_body_bytes)
    if options.api_key:
        app.add_middleware(_ApiKey, key=options.api_key)
    if options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["*"])  # fmt: skip
    _add_routes(app, served, worker)
    return app


# ---- routes -----------------------------------------------------------------------------------


def _add_routes(app: FastAPI, served: ServedModel, worker: EngineWorker) -> None:
    counters = worker.counters

    def count(endpoint: str) -> None:
        counters.requests[endpoint] = counters.requests.get(endpoint, 0) + 1

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        count("models")
        return {"object": "list", "data": [_model_card(served)]}

    @app.get("/v1/models/{name}")
    async def model(name: str) -> dict[str, Any]:
        _check_model(served, name)
        return _model_card(served)

    @app.post("/v1/completions")
    async def completions(request: Request):
        count("completions")
        parsed = protocol.parse_completion(await _json(request))
        _check_model(served, parsed.model)
        prompt_ids = _encode_prompt(served.tokenizer, parsed.prompt or "")
        return await _answer(request, served, worker, parsed, prompt_ids, (), chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        count("chat")
        parsed = protocol.parse_chat(await _json(request))
        _check_model(served, parsed.model)
        rendered = _render(served, parsed.messages)
        prompt_ids = served.tokenizer.encode(rendered.text, allowed_special="all")
        return await _answer(request, served, worker, parsed, prompt_ids, rendered.stop,
                             chat=True)  # fmt: skip

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict[str, Any]:
        count("tokenize")
        body = await _json(request)
        if not isinstance(body, dict):
            raise invalid("the request body must be a JSON object")
        if "messages" in body:
            parsed = protocol.parse_chat({"messages": body["messages"]})
            ids = served.tokenizer.encode(_render(served, parsed.messages).text,
                                          allowed_special="all")  # fmt: skip
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                raise invalid("'prompt' must be a string (or give 'messages')", "prompt")
            ids = _encode_prompt(served.tokenizer, prompt)
        return {"tokens": ids, "count": len(ids), "max_model_len": served.context_length}

    @app.post("/detokenize")
    async def detokenize(request: Request) -> dict[str, Any]:
        count("detokenize")
        body = await _json(request)
        tokens = body.get("tokens") if isinstance(body, dict) else None
        vocab = served.tokenizer.vocab_size
        if not isinstance(tokens, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab for t in tokens
        ):
            raise invalid(f"'tokens' must be a list of token ids from 0 to {vocab - 1}", "tokens")
        return {"prompt": served.tokenizer.decode(tokens)}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(_prometheus(worker), media_type="text/plain; version=0.0.4")

    @app.get("/")
    async def page() -> HTMLResponse:
        try:
            html = (
                resources.files("scratchllm.serve")
                .joinpath("static/index.html")
                .read_text(encoding="utf-8")
            )
        except (FileNotFoundError, OSError):
            raise APIError(404, "the chat page is not installed", code="not_found") from None
        return HTMLResponse(html)


def _model_card(served: ServedModel) -> dict[str, Any]:
    return {
        "id": served.name,
        "object": "model",
        "created": served.created,
        "owned_by": "scratchllm",
        "context_length": served.context_length,
        "max_model_len": served.context_length,
        "prompt_format": served.prompt_format.name if served.prompt_format else None,
    }


def _check_model(served: ServedModel, name: str | None) -> None:
    if name is not None and name != served.name:
        raise APIError(
            404,
            f"the model {name!r} does not exist; this server serves {served.name!r}",
            param="model",
            code="model_not_found",
        )


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise invalid(f"the request body is not valid JSON: {error}") from None


def _encode_prompt(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """A completion prompt's ids; an empty prompt starts from <|endoftext|>, as GPT-2's
    documents do (the same rule as ``generate``)."""
    ids = tokenizer.encode(prompt, allowed_special="all")
    if not ids and tokenizer.eot_id is not None:
        ids = [tokenizer.eot_id]
    if not ids:
        raise invalid("the prompt is empty and the tokenizer has no <|endoftext|> to start "
                      "from", "prompt")  # fmt: skip
    return ids


def _render(served: ServedModel, messages: Sequence[dict[str, str]]):
    try:
        return render_chat(messages, served.prompt_format)
    except ScratchLLMError as error:
        raise invalid(str(error), "messages") from None


# ---- generation -------------------------------------------------------------------------------


@dataclass
class _Sequence:
    """One of a request's ``n`` answers as it is decoded."""

    index: int
    stream: TextStream
    tokenizer: Tokenizer
    top_logprobs: int
    text: str = ""
    tokens: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None

    def take(self, event: Any) -> str:
        """The text an engine event adds (held-back characters and stop strings kept out)."""
        piece = ""
        if event.token is not None and self.finish_reason is None:
            self.tokens += 1
            piece = self.stream.push(event.token)
            if event.logprob is not None:
                decode = self.tokenizer.decode
                self.logprobs.append(TokenLogprob(
                    decode([event.token]), event.logprob,
                    [(decode([alt]), lp) for alt, lp in event.top_logprobs[: self.top_logprobs]],
                ))  # fmt: skip
            if self.stream.stopped:
                self.finish_reason = "stop"  # a stop string: the caller cancels the sequence
        if event.finish_reason is not None and self.finish_reason is None:
            piece += self.stream.finish()
            self.finish_reason = "length" if event.finish_reason == "length" else "stop"
        self.text += piece
        return piece


def _sampling(parsed: GenerationRequest, max_tokens: int, index: int, eot: int | None):
    seed = None if parsed.seed is None else parsed.seed + index
    return SamplingParams(
        max_new_tokens=max_tokens,
        temperature=parsed.temperature,
        top_k=parsed.top_k,
        top_p=parsed.top_p,
        seed=seed,
        presence_penalty=parsed.presence_penalty,
        frequency_penalty=parsed.frequency_penalty,
        top_logprobs=parsed.top_logprobs if parsed.logprobs else 0,
        stop_ids=frozenset() if eot is None else frozenset({eot}),
    )


def _max_tokens(served: ServedModel, parsed: GenerationRequest, prompt_length: int) -> int:
    """``max_tokens``, or the rest of the window; 400 when they do not fit."""
    window = served.context_length
    param = "messages" if parsed.messages else "prompt"
    if parsed.max_tokens is None:
        if prompt_length >= window:
            raise invalid(
                f"This model's maximum context length is {window} tokens, and the prompt has "
                f"{prompt_length}: nothing is left for an answer; shorten the prompt",
                param, "context_length_exceeded",
            )  # fmt: skip
        return window - prompt_length
    if prompt_length + parsed.max_tokens > window:
        raise invalid(
            f"This model's maximum context length is {window} tokens; the prompt has "
            f"{prompt_length} and max_tokens asks for {parsed.max_tokens} more "
            f"({prompt_length + parsed.max_tokens}); shorten the prompt or lower max_tokens",
            "max_tokens", "context_length_exceeded",
        )  # fmt: skip
    return parsed.max_tokens


async def _answer(
    request: Request,
    served: ServedModel,
    worker: EngineWorker,
    parsed: GenerationRequest,
    prompt_ids: list[int],
    format_stops: Sequence[str],
    *,
    chat: bool,
):
    max_tokens = _max_tokens(served, parsed, len(prompt_ids))
    eot = served.tokenizer.eot_id
    stops = tuple(dict.fromkeys((*format_stops, *parsed.stop)))
    sequences = [
        _Sequence(i, TextStream(served.tokenizer, stop_strings=stops, context_ids=prompt_ids),
                  served.tokenizer, parsed.top_logprobs)
        for i in range(parsed.n)
    ]  # fmt: skip
    prompts = [(prompt_ids, _sampling(parsed, max_tokens, i, eot)) for i in range(parsed.n)]
    try:
        ids, queue = worker.submit(prompts)
    except ScratchLLMError as error:  # the engine's own checks
        raise invalid(str(error), "messages" if chat else "prompt") from None
    worker.counters.prompt_tokens += len(prompt_ids) * parsed.n
    index_of = {request_id: i for i, request_id in enumerate(ids)}
    answer = _Answer(served, parsed, len(prompt_ids), sequences, chat=chat)
    events = _events(worker, queue, ids, index_of, sequences)
    if parsed.stream:
        return StreamingResponse(
            answer.stream(events, request, worker, ids), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )  # fmt: skip
    return await answer.whole(events, request, worker, ids)


async def _events(
    worker: EngineWorker,
    queue: asyncio.Queue,
    ids: list[int],
    index_of: dict[int, int],
    sequences: list[_Sequence],
) -> AsyncIterator[tuple[_Sequence, str]]:
    """``(sequence, new text)`` as the engine's events arrive, until every sequence ended; a
    sequence that reached a stop string is cancelled in the engine at once."""
    unfinished = set(ids)
    while unfinished:
        event = await queue.get()
        if isinstance(event, EngineFailure):
            raise APIError(500, str(event), type="server_error")
        sequence = sequences[index_of[event.request_id]]
        was_running = sequence.finish_reason is None
        piece = sequence.take(event)
        if was_running and sequence.finish_reason is not None and event.finish_reason is None:
            worker.cancel([event.request_id])  # a stop string: free its slot now
        if event.finish_reason is not None:
            unfinished.discard(event.request_id)
        if piece or (was_running and sequence.finish_reason is not None):
            yield sequence, piece


class _Answer:
    """Shapes one request's answer as OpenAI's response or stream."""

    def __init__(
        self,
        served: ServedModel,
        parsed: GenerationRequest,
        prompt_tokens: int,
        sequences: list[_Sequence],
        *,
        chat: bool,
    ) -> None:
        self.served, self.parsed, self.prompt_tokens = served, parsed, prompt_tokens
        self.sequences, self.chat = sequences, chat
        self.id = protocol.new_id("chatcmpl" if chat else "cmpl")
        self.created = protocol.now()
        self.object = "chat.completion" if chat else "text_completion"

    def _usage(self) -> dict[str, int]:
        return protocol.usage(self.prompt_tokens, sum(s.tokens for s in self.sequences))

    def _logprobs(self, tokens: list[TokenLogprob], start: int = 0) -> dict[str, Any] | None:
        if not self.parsed.logprobs:
            return None
        if self.chat:
            return protocol.chat_logprobs(tokens)
        return protocol.completion_logprobs(tokens, start)

    async def whole(self, events, request: Request, worker: EngineWorker, ids: list[int]):
        """The non-streamed answer; a client that leaves meanwhile cancels it."""
        iterator = events.__aiter__()
        try:
            while True:
                step = asyncio.ensure_future(iterator.__anext__())
                while not step.done():
                    await asyncio.wait({step}, timeout=DISCONNECT_POLL_SECONDS)
                    if not step.done() and await request.is_disconnected():
                        step.cancel()
                        worker.cancel(ids)
                        worker.note_cancellation()
                        return JSONResponse({}, status_code=499)
                try:
                    step.result()
                except StopAsyncIteration:
                    break
        except BaseException:
            worker.cancel(ids)
            raise
        choices = []
        for sequence in self.sequences:
            choice: dict[str, Any] = {"index": sequence.index}
            if self.chat:
                choice["message"] = {"role": "assistant", "content": sequence.text}
            else:
                choice["text"] = sequence.text
            choice["logprobs"] = self._logprobs(sequence.logprobs)
            choice["finish_reason"] = sequence.finish_reason
            choices.append(choice)
        return {
            "id": self.id, "object": self.object, "created": self.created,
            "model": self.served.name, "choices": choices, "usage": self._usage(),
        }  # fmt: skip

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        kind = f"{self.object}.chunk" if self.chat else self.object
        body = {"id": self.id, "object": kind, "created": self.created,
                "model": self.served.name, "choices": choices, **extra}  # fmt: skip
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def _delta(self, sequence: _Sequence, piece: str, logprobs: list[TokenLogprob],
               first: int) -> dict[str, Any]:  # fmt: skip
        choice: dict[str, Any] = {"index": sequence.index}
        if self.chat:
            choice["delta"] = {"content": piece} if piece else {}
        else:
            choice["text"] = piece
        choice["logprobs"] = self._logprobs(logprobs, first) if logprobs else None
        choice["finish_reason"] = None
        return choice

    async def stream(self, events, request: Request, worker: EngineWorker, ids: list[int]):
        """Server-sent events; the client leaving (the task cancelled) cancels the sequences."""
        finished = False
        try:
            if self.chat:
                yield self._chunk([{"index": s.index, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None}
                                   for s in self.sequences])  # fmt: skip
            reported = [0] * len(self.sequences)  # logprobs sent per sequence
            offsets = [0] * len(self.sequences)
            async for sequence, piece in events:
                new = sequence.logprobs[reported[sequence.index] :]
                if piece or new:
                    yield self._chunk([self._delta(sequence, piece, new, offsets[sequence.index])])
                    reported[sequence.index] += len(new)
                    offsets[sequence.index] += len(piece)
                if sequence.finish_reason is not None:
                    last: dict[str, Any] = {"index": sequence.index, "logprobs": None,
                                            "finish_reason": sequence.finish_reason}  # fmt: skip
                    last.update({"delta": {}} if self.chat else {"text": ""})
                    yield self._chunk([last])
            if self.parsed.include_usage:
                yield self._chunk([], usage=self._usage())
            yield "data: [DONE]\n\n"
            finished = True
        except APIError as error:
            yield f"data: {json.dumps(error.body())}\n\n"
            finished = True
        finally:
            if not finished:  # the client went away mid-answer
                worker.cancel(ids)
                worker.note_cancellation()


# ---- errors, keys, limits ---------------------------------------------------------------------


def _add_error_handlers(app: FastAPI, worker: EngineWorker) -> None:
    def reply(error: APIError) -> JSONResponse:
        worker.counters.errors[error.status] = worker.counters.errors.get(error.status, 0) + 1
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return reply(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            return reply(APIError(404, f"no route {request.method} {request.url.path}",
                                  code="not_found"))  # fmt: skip
        if error.status_code == 405:
            return reply(APIError(405, f"{request.method} is not allowed on {request.url.path}",
                                  code="method_not_allowed"))  # fmt: skip
        return reply(APIError(error.status_code, str(error.detail)))

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return reply(APIError(500, f"internal error: {type(error).__name__}: {error}",
                              type="server_error"))  # fmt: skip


def _error_response(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(APIError(status, message, code=code).body(), status_code=status)


class _ApiKey:
    """ASGI middleware: every route but ``/health`` and the page needs ``Bearer KEY``."""

    OPEN = ("/health", "/")

    def __init__(self, app, key: str) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in self.OPEN:
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), self.key):
                message = ("a valid API key is required: send 'Authorization: Bearer KEY'"
                           if not given else "the API key is wrong")  # fmt: skip
                response = JSONResponse(
                    APIError(401, message, code="invalid_api_key").body(), status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, read no further."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_long = _error_response(413, f"the request body is over {self.limit:,} bytes",
                                   "request_too_large")  # fmt: skip
        if length is not None and length.isdigit() and int(length) > self.limit:
            await too_long(scope, receive, send)
            return
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise APIError(413, f"the request body is over {self.limit:,} bytes",
                                   code="request_too_large")  # fmt: skip
            return message

        await self.app(scope, counted_receive, send)


def _prometheus(worker: EngineWorker) -> str:
    """The counters in Prometheus' text format."""
    counters = worker.counters
    lines = [
        "# HELP scratchllm_requests_total Requests received, by endpoint.",
        "# TYPE scratchllm_requests_total counter",
    ]
    lines += [f'scratchllm_requests_total{{endpoint="{name}"}} {value}'
              for name, value in sorted(counters.requests.items())]  # fmt: skip
    lines += [
        "# HELP scratchllm_errors_total Error responses, by HTTP status.",
        "# TYPE scratchllm_errors_total counter",
    ]
    lines += [f'scratchllm_errors_total{{status="{status}"}} {value}'
              for status, value in sorted(counters.errors.items())]  # fmt: skip
    gauges = (
        ("prompt_tokens_total", "counter", "Prompt tokens of accepted requests.",
         counters.prompt_tokens),
        ("generated_tokens_total", "counter", "Tokens generated.", counters.generated_tokens),
        ("tokens_per_second", "gauge",
         f"Tokens generated per second over the last {TOKENS_PER_SECOND_WINDOW:g} s.",
         round(counters.tokens_per_second(time.monotonic()), 3)),
        ("queue_depth", "gauge", "Sequences waiting for a slot.", worker.queue_depth),
        ("active_sequences", "gauge", "Sequences being decoded.", worker.active),
        ("cancellations_total", "counter",
         "Requests cancelled by their client (a disconnect, Stop).", counters.cancellations),
    )  # fmt: skip
    for name, kind, help_text, value in gauges:
        lines += [f"# HELP scratchllm_{name} {help_text}", f"# TYPE scratchllm_{name} {kind}",
                  f"scratchllm_{name} {value}"]  # fmt: skip
    return "\n".join(lines) + "\n"
