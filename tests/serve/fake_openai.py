"""A fake OpenAI-compatible server for developing and testing the chat page without a model.

It serves what `scratchllm serve` serves, with a script instead of a model:

- ``GET /``: the chat page, read from the package (``scratchllm/serve/static/index.html``);
- ``GET /health`` and ``GET /v1/models`` (one model, ``fake-gpt2``);
- ``POST /v1/chat/completions``: the reply is ``FakeOpenAI.reply``, or, when the last message
  starts with ``echo:``, the rest of that message verbatim (markup included). Streamed, one word
  per chunk every ``word_delay`` seconds, so a test can watch a reply grow and press Stop; at most
  ``max_tokens`` words (one word counts as one token). A last message over ``max_prompt_chars``
  characters gets a 400 ``context_length_exceeded`` error object, as OpenAI sends.

It records every request's JSON body in ``requests`` and every stream the client left before
its end in ``cancellations``. Run it by hand to work on the page::

    PYTHONPATH=src python tests/serve/fake_openai.py --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

MODEL_ID = "fake-gpt2"
DEFAULT_REPLY = (
    "A language model predicts the next token from the tokens before it. Trained on enough "
    "text, it learns spelling, grammar and some facts, and sampling one token at a time turns "
    "those predictions into a reply like this one."
)


def split_words(text: str) -> list[str]:
    """The reply's stream chunks: each word with the whitespace before it, so they join back.

    >>> split_words("Hello there,\\n  you")
    ['Hello', ' there,', '\\n  you']
    """
    return re.findall(r"\s*\S+", text)


def error_object(message: str, *, kind: str, code: str | None, param: str | None = None) -> dict:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def server_sent_event(payload: dict | str) -> str:
    """One ``data:`` event; a dict is sent as JSON, a string (``[DONE]``) as it is."""
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n"


class FakeOpenAI:
    """The fake server's script and records, and its FastAPI app; ``start`` runs it on a port."""

    def __init__(self, *, word_delay: float = 0.06, max_prompt_chars: int = 2000) -> None:
        self.reply = DEFAULT_REPLY
        self.word_delay = word_delay  # seconds between chunks: slow enough to watch and stop
        self.max_prompt_chars = max_prompt_chars
        self.requests: list[dict] = []  # each chat request's JSON body
        self.cancellations: list[dict] = []  # {"request": body, "words_sent": n} per early leave
        self.url = ""
        self.app = self._build_app()
        self._server = None
        self._thread: threading.Thread | None = None

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/", response_class=HTMLResponse)
        def page() -> str:
            return (resources.files("scratchllm.serve") / "static" / "index.html").read_text()

        @app.get("/health")
        def health() -> dict:
            return {"status": "ok"}

        @app.get("/v1/models")
        def models() -> dict:
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "scratchllm"}
            return {"object": "list", "data": [model]}

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request):
            body = await request.json()
            self.requests.append(body)
            messages = body.get("messages") or []
            if not messages:
                message = "'messages' must hold at least one message"
                error = error_object(message, kind="invalid_request_error", code=None)
                return JSONResponse(error, status_code=400)
            last = str(messages[-1].get("content", ""))
            if len(last) > self.max_prompt_chars:
                message = (
                    f"This model's maximum context length is {self.max_prompt_chars} characters, "
                    f"but the last message has {len(last)}. Please shorten it."
                )
                error = error_object(
                    message,
                    kind="invalid_request_error",
                    code="context_length_exceeded",
                    param="messages",
                )
                return JSONResponse(error, status_code=400)
            reply = last.removeprefix("echo:").lstrip() if last.startswith("echo:") else self.reply
            words = split_words(reply)[: body.get("max_tokens") or None]
            finish_reason = "length" if len(words) < len(split_words(reply)) else "stop"
            prompt_tokens = sum(len(split_words(str(m.get("content", "")))) for m in messages)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words),
                "total_tokens": prompt_tokens + len(words),
            }
            if not body.get("stream"):
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(words)},
                    "finish_reason": finish_reason,
                }
                return {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": MODEL_ID,
                    "choices": [choice],
                    "usage": usage,
                }
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._stream(body, words, finish_reason, usage if include_usage else None)
            return StreamingResponse(events, media_type="text/event-stream")

        return app

    async def _stream(
        self, body: dict, words: list[str], finish_reason: str, usage: dict | None
    ) -> AsyncIterator[str]:
        """The chunks of one streamed reply; a client that leaves early is recorded."""

        def chunk(choices: list[dict], **extra) -> dict:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": MODEL_ID,
                "choices": choices,
                **extra,
            }

        sent = 0
        finished = False
        try:
            yield server_sent_event(chunk([{"index": 0, "delta": {"role": "assistant"}}]))
            for word in words:
                await asyncio.sleep(self.word_delay)
                yield server_sent_event(chunk([{"index": 0, "delta": {"content": word}}]))
                sent += 1
            last = {"index": 0, "delta": {}, "finish_reason": finish_reason}
            yield server_sent_event(chunk([last]))
            if usage is not None:
                yield server_sent_event(chunk([], usage=usage))
            yield server_sent_event("[DONE]")
            finished = True
        finally:
            # Starlette cancels (or closes) this generator when the client disconnects.
            if not finished:
                self.cancellations.append({"request": body, "words_sent": sent})

    def start(self) -> FakeOpenAI:
        """Serve on a free port of 127.0.0.1 in a background thread; ``url`` says where."""
        import uvicorn

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the fake OpenAI server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--word-delay", type=float, default=0.06, help="seconds between words")
    arguments = parser.parse_args()
    import uvicorn

    fake = FakeOpenAI(word_delay=arguments.word_delay)
    print(f"the chat page: http://127.0.0.1:{arguments.port}/")
    uvicorn.run(fake.app, host="127.0.0.1", port=arguments.port, log_level="info")


if __name__ == "__main__":
    main()
