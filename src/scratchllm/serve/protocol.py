"""OpenAI's request and response shapes: what a client may send, checked, and what it gets.

Requests are plain JSON objects read field by field (not a schema library), so that every bad
value becomes OpenAI's error object with the ``param`` it concerns, and unknown fields are
accepted and ignored, as OpenAI's own server and vLLM do. The fields we honour:

- ``model`` (the served name), ``prompt`` (completions: a string, or a list of one) or
  ``messages`` (chat: ``{"role", "content"}`` objects, rendered by the checkpoint's prompt
  format, ``finetune/prompts.render_chat``);
- ``max_tokens`` (chat also ``max_completion_tokens``; when absent, what is left of the
  window), ``temperature`` (0 = greedy), ``top_p``, ``top_k`` (our extension), ``stop`` (a
  string or up to four), ``seed``, ``n``, ``presence_penalty`` / ``frequency_penalty``;
- ``stream`` and ``stream_options.include_usage``;
- ``logprobs``: completions take an integer (alternatives per token, 0-5), chat a boolean with
  ``top_logprobs`` (0-20).

Nothing here imports torch: the server's request checks run without the model.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_STOP_STRINGS = 4  # OpenAI's limit
MAX_N = 16
MAX_COMPLETION_LOGPROBS = 5  # completions' `logprobs` (OpenAI's legacy limit)
MAX_TOP_LOGPROBS = 20  # chat's `top_logprobs`


class APIError(Exception):
    """An error as OpenAI's API returns it: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status, message, type, param, code,
        )  # fmt: skip

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message, "type": self.type, "param": self.param,
                "code": self.code,
            }
        }  # fmt: skip


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 ``invalid_request_error`` about ``param``."""
    return APIError(400, message, param=param, code=code)


@dataclass(frozen=True)
class GenerationRequest:
    """One completions or chat request, checked; ``max_tokens`` None = the rest of the window."""

    model: str | None
    n: int = 1
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    prompt: str | None = None  # completions
    messages: tuple[dict[str, str], ...] = field(default=())  # chat


def parse_completion(body: Any) -> GenerationRequest:
    """A ``/v1/completions`` body, checked."""
    body = _object(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise invalid("'prompt' must be a string (or a list holding one string)", "prompt")
    logprobs = body.get("logprobs")
    if logprobs is not None and not _is_int(logprobs, 0, MAX_COMPLETION_LOGPROBS):
        raise invalid(
            f"'logprobs' must be an integer from 0 to {MAX_COMPLETION_LOGPROBS}", "logprobs"
        )
    return GenerationRequest(
        prompt=prompt,
        max_tokens=_optional_int(body, "max_tokens", 1),
        logprobs=logprobs is not None,
        top_logprobs=logprobs or 0,
        **_sampling_fields(body),
    )


def parse_chat(body: Any) -> GenerationRequest:
    """A ``/v1/chat/completions`` body, checked."""
    body = _object(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' must be a non-empty list of {role, content} objects",
                      "messages")  # fmt: skip
    checked = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid(f"{where} must be an object with 'role' and 'content'", where)
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "developer", "user", "assistant"):
            raise invalid(f"{where}.role must be system, user or assistant, got {role!r}",
                          f"{where}.role")  # fmt: skip
        content = _text_content(content, f"{where}.content")
        checked.append({"role": "system" if role == "developer" else role, "content": content})
    if checked[-1]["role"] != "user":
        raise invalid("the last message must be the user's: the model answers it", "messages")
    max_tokens = _optional_int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_tokens", 1)
    logprobs = body.get("logprobs", False)
    if logprobs is None:
        logprobs = False
    if not isinstance(logprobs, bool):
        raise invalid("'logprobs' must be true or false", "logprobs")
    top_logprobs = body.get("top_logprobs")
    if top_logprobs is not None:
        if not _is_int(top_logprobs, 0, MAX_TOP_LOGPROBS):
            raise invalid(f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}",
                          "top_logprobs")  # fmt: skip
        if not logprobs:
            raise invalid("'top_logprobs' needs 'logprobs': true", "top_logprobs")
    return GenerationRequest(
        messages=tuple(checked),
        max_tokens=max_tokens,
        logprobs=logprobs,
        top_logprobs=top_logprobs or 0,
        **_sampling_fields(body),
    )


def _sampling_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields completions and chat share."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid("'model' must be a string", "model")
    temperature = _optional_number(body, "temperature", 0.0, 2.0)
    top_p = _optional_number(body, "top_p", 0.0, 1.0)
    if top_p is not None and top_p == 0:
        raise invalid("'top_p' must be above 0 and at most 1", "top_p")
    top_k = _optional_int(body, "top_k", 0)
    n = _optional_int(body, "n", 1, MAX_N)
    seed = body.get("seed")
    if seed is not None and not _is_int(seed, -(2**63), 2**64 - 1):
        raise invalid("'seed' must be an integer", "seed")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid("'stream' must be true or false", "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise invalid("'stream_options' must be an object", "stream_options")
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise invalid("'stream_options.include_usage' must be true or false",
                          "stream_options.include_usage")  # fmt: skip
        if not stream:
            raise invalid("'stream_options' is only allowed with 'stream': true",
                          "stream_options")  # fmt: skip
    return {
        "model": model,
        "n": 1 if n is None else n,
        "temperature": 1.0 if temperature is None else temperature,
        "top_p": None if top_p is None or top_p >= 1 else top_p,
        "top_k": top_k or None,
        "stop": _stop_strings(body.get("stop")),
        "seed": seed,
        "presence_penalty": _penalty(body, "presence_penalty"),
        "frequency_penalty": _penalty(body, "frequency_penalty"),
        "stream": stream,
        "include_usage": include_usage,
    }


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    return body


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _optional_int(body: Mapping[str, Any], name: str, low: int, high: int = 2**62) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value, low, high):
        limit = f"from {low} to {high}" if high < 2**62 else f"of at least {low}"
        raise invalid(f"'{name}' must be an integer {limit}, got {value!r}", name)
    return value


def _optional_number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(f"'{name}' must be a number from {low:g} to {high:g}, got {value!r}", name)
    return float(value)


def _penalty(body: Mapping[str, Any], name: str) -> float:
    value = _optional_number(body, name, -2.0, 2.0)
    return 0.0 if value is None else value


def _stop_strings(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if (
        not isinstance(stop, list)
        or len(stop) > MAX_STOP_STRINGS
        or not all(isinstance(item, str) and item for item in stop)
    ):
        raise invalid(
            f"'stop' must be a non-empty string or a list of up to {MAX_STOP_STRINGS} of them",
            "stop",
        )
    return tuple(dict.fromkeys(stop))


def _text_content(content: Any, where: str) -> str:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        for part in content
    ):
        return "".join(part["text"] for part in content)
    raise invalid(f"{where} must be a string (or a list of text parts)", where)


# ---- responses --------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@dataclass
class TokenLogprob:
    """One generated token's log-probability and its alternatives (text, logprob)."""

    text: str
    logprob: float
    alternatives: Sequence[tuple[str, float]] = ()


def chat_logprobs(tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
    """Chat's ``logprobs`` object: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""

    def entry(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    return {
        "content": [
            {**entry(t.text, t.logprob),
             "top_logprobs": [entry(text, lp) for text, lp in t.alternatives]}
            for t in tokens
        ]
    }  # fmt: skip


def completion_logprobs(tokens: Sequence[TokenLogprob], start: int = 0) -> dict[str, Any]:
    """Completions' legacy ``logprobs`` object (tokens, token_logprobs, top_logprobs,
    text_offset)."""
    offsets, offset = [], start
    for token in tokens:
        offsets.append(offset)
        offset += len(token.text)
    return {
        "tokens": [t.text for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.alternatives) for t in tokens],
        "text_offset": offsets,
    }
