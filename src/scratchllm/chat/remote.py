"""Answers from a running OpenAI-compatible server, streamed: ``scratchllm chat --remote URL``.

One ``POST {URL}/v1/chat/completions`` per answer, with the whole conversation and
``"stream": true``; the server answers with server-sent events, one
``chat.completion.chunk`` per ``data: {...}`` event, each carrying a piece of the answer in
``choices[0].delta.content``, and ends with ``data: [DONE]``. Closing a reply early (Ctrl-C)
closes the connection, which tells the server to stop generating. An error (an OpenAI error
object, ``{"error": {"message": ...}}``, as the HTTP response or as an event) is a
``RemoteChatError`` with the server's message. When the conversation outgrows the model's
window, the oldest turns are dropped (with a notice), counted by the server's ``/tokenize``
(ours and vLLM's have it). The standard library's ``urllib`` does the HTTP, so nothing more
is needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from scratchllm.config import SamplingConfig
from scratchllm.errors import ScratchLLMError
from scratchllm.finetune.prompts import keep_fitting_turns
from scratchllm.judge import chat_completions_url, error_message

DEFAULT_TIMEOUT = 300.0  # seconds to wait for the server's next bytes


class RemoteChatError(ScratchLLMError):
    """The server could not be reached, refused the request, or sent an error."""


class RemoteChat:
    """A chat-completions server; ``model`` None asks the server (``GET /v1/models``)."""

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        import urllib.request

        self.url = chat_completions_url(url)
        self.model = model
        self._api_key = api_key
        self.timeout = timeout
        self._opener = urllib.request.build_opener()  # honours the *_proxy variables
        self._no_tokenize = False  # set once the server shows it has no /tokenize

    def __repr__(self) -> str:  # never the key
        return f"RemoteChat({self.url!r}, model={self.model!r})"

    def describe(self) -> str:
        return f"{self.model or 'the model'} at {self.url}"

    def fit(
        self, messages: Sequence[Mapping[str, str]], settings: SamplingConfig
    ) -> tuple[list[Mapping[str, str]], int]:
        """The messages whose prompt leaves room for the answer (up to half the window), and
        how many of the oldest turns had to go, counted by the server's ``POST /tokenize``
        (ours and vLLM's); a server without it gets them all (and says when they do not
        fit)."""
        counted = self._count(messages)
        if counted is None:
            return list(messages), 0
        window = counted[1]
        reserve = min(settings.max_new_tokens, window // 2)

        def fits(kept: list[Mapping[str, str]]) -> bool:
            if len(kept) == len(messages):  # all of them: counted above
                return counted[0] + reserve <= window
            return (self._count(kept) or (0, window))[0] + reserve <= window

        return keep_fitting_turns(messages, fits)

    def _count(self, messages: Sequence[Mapping[str, str]]) -> tuple[int, int] | None:
        """``(prompt tokens, window)`` from the server's ``/tokenize``; None when it has none."""
        if self._no_tokenize:
            return None
        url = self.url.removesuffix("/v1/chat/completions") + "/tokenize"
        body = {"model": self.model, "messages": [dict(m) for m in messages]}
        try:
            with self.open(body, url=url) as response:
                answer = json.loads(response.read())
            return int(answer["count"]), int(answer["max_model_len"])
        except (RemoteChatError, ValueError, KeyError, TypeError):
            self._no_tokenize = True  # not ours or vLLM's: the server will say what fails
            return None

    def request_body(
        self, messages: Sequence[Mapping[str, str]], settings: SamplingConfig
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "stream": True,
            "temperature": settings.temperature,
            "max_tokens": settings.max_new_tokens,
        }
        # top_k is not OpenAI's, but vLLM's and ours take it; each only when set
        for name, value in (
            ("top_p", settings.top_p),
            ("top_k", settings.top_k),
            ("seed", settings.seed),
            ("stop", list(settings.stop_strings) or None),
        ):
            if value is not None:
                body[name] = value
        return body

    def reply(self, messages: Sequence[Mapping[str, str]], settings: SamplingConfig) -> RemoteReply:
        if self.model is None:
            self.model = self._served_model()
        return RemoteReply(self, self.request_body(messages, settings))

    def open(self, body: Mapping[str, Any] | None = None, *, url: str | None = None):
        """POST ``body`` (or GET ``url``); the open response, or a ``RemoteChatError``."""
        import http.client
        import urllib.error
        import urllib.request

        headers = {"Accept": "text/event-stream" if body else "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode("utf-8")
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(url or self.url, data=data, headers=headers)
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            with error:
                detail = error_message(error.read())
            raise RemoteChatError(
                f"{request.full_url}: HTTP {error.code} {self._hide_key(detail)}"
            ) from None
        except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise RemoteChatError(
                f"cannot reach {request.full_url} ({reason}); is the server running?"
            ) from None

    def _served_model(self) -> str:
        """The first model the server lists: asked once, when no --model was given."""
        url = self.url.removesuffix("/chat/completions") + "/models"
        with self.open(url=url) as response:
            try:
                return str(json.loads(response.read())["data"][0]["id"])
            except (ValueError, KeyError, IndexError, TypeError):
                raise RemoteChatError(
                    f"{url} lists no model; give the model's name with --model"
                ) from None

    def _hide_key(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


class RemoteReply:
    """The answer's pieces as the server streams them; ``tokens`` is the server's count (its
    ``usage``) when it sends one, else the number of chunks with text."""

    def __init__(self, chat: RemoteChat, body: dict[str, Any]) -> None:
        self._chat = chat
        self._body = body
        self._response = None
        self.tokens: int | None = None

    def __iter__(self) -> Iterator[str]:
        import http.client

        self._response = self._chat.open(self._body)
        try:
            yield from self._pieces()
        except (OSError, http.client.HTTPException) as error:  # a timeout, a cut connection
            raise RemoteChatError(
                f"the answer from {self._chat.url} broke off ({type(error).__name__}: {error})"
            ) from None

    def _pieces(self) -> Iterator[str]:
        chunks = 0
        try:
            if "json" in (self._response.headers.get("Content-Type") or ""):
                # a server that does not stream sends the whole completion
                completion = _json(self._response.read())
                text = _field(completion, "message")
                self.tokens = _usage(completion)
                if text:
                    yield text
                return
            for data in server_sent_events(self._response):
                chunk = _json(data.encode("utf-8"))
                self.tokens = _usage(chunk) or self.tokens
                text = _field(chunk, "delta")
                if text:
                    chunks += 1
                    yield text
        finally:
            self.tokens = self.tokens or chunks
            self.close()

    def close(self) -> None:
        if self._response is not None:
            self._response.close()  # the server sees the connection close, and stops


def server_sent_events(lines: Iterable[bytes]) -> Iterator[str]:
    """The ``data`` of each event in a server-sent-events stream, up to ``[DONE]``.

    Events are separated by a blank line; an event's ``data:`` lines are joined by newlines;
    comments (``:``) and other fields (``event:``, ``id:``) are skipped.

    >>> list(server_sent_events([b": hi\\n", b'data: {"a": 1}\\n', b"\\n", b"data: [DONE]\\n"]))
    ['{"a": 1}']
    """
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                event = "\n".join(data)
                data = []
                if event == "[DONE]":
                    return
                yield event
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data and "\n".join(data) != "[DONE]":
        yield "\n".join(data)


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise RemoteChatError(
            f"the server sent something that is not JSON: {error_message(data)!r}"
        ) from None
    if not isinstance(value, dict):
        raise RemoteChatError(f"the server sent {type(value).__name__}, not a JSON object")
    if "error" in value:
        raise RemoteChatError(f"the server stopped: {error_message(data)}")
    return value


def _field(value: dict[str, Any], key: str) -> str:
    """``choices[0][key].content`` ("delta" in a chunk, "message" in a completion), or ""."""
    try:
        choices = value.get("choices") or [{}]
        content = (choices[0].get(key) or {}).get("content")
    except (AttributeError, TypeError):
        raise RemoteChatError(
            f"the server's answer is not a chat completion: {json.dumps(value)[:200]}"
        ) from None
    return content if isinstance(content, str) else ""


def _usage(value: dict[str, Any]) -> int | None:
    usage = value.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return tokens if isinstance(tokens, int) else None


def api_key_from(variable: str) -> str | None:
    """The key in the environment variable ``variable``, if set and not empty."""
    return os.environ.get(variable) or None
