"""A judge model scores a model's responses, through any OpenAI-compatible endpoint.

The walkthrough's chapter 7 (section 7.8) has Llama 3, served by Ollama, score each response
of the finetuned GPT-2 medium from 0 to 100 against the dataset's reference answer, and
reports the average (50.32, later 49.45, on its 110 test instructions). This module asks the
same question, in the same words, of any server that speaks OpenAI's chat-completions API:
Ollama's ``/v1`` routes, vLLM, llama.cpp's server, OpenAI, and our own server later. It needs
only the standard library (``urllib``), and nothing here imports torch.

- **the responses file**: a JSON list of objects with ``instruction``, ``input`` (may be left
  out: empty), ``output`` (the reference) and the model's response (``model_response``): the
  walkthrough's ``instruction-data-with-response.json``, and what ``scratchllm respond`` writes;
- **the grading prompt**: ``grading_prompt``, the walkthrough's text character for character,
  its ``format_input`` being our Alpaca format without its ``### Response:`` line;
- **what counts as a score**: ``parse_score``, below;
- **the client**: ``ChatClient``, one ``POST .../v1/chat/completions`` per prompt, with a
  timeout and retries (with exponential backoff) on connection errors, timeouts, 429 and 5xx;
  any other 4xx is an error at once;
- **the run**: ``judge_responses``, every entry (optionally several at a time) under a progress
  bar, into a ``JudgeReport``.

**Usable scores.** The walkthrough keeps ``int(reply)`` and skips, with a printed line, a reply
it cannot convert. We accept a reply (surrounding whitespace stripped) that is an integer from
0 to 100, optionally after a ``Score:`` label and before ``/100`` or ``out of 100``, with an
optional final period; anything else (prose around the number, two numbers, a decimal, a
number above 100, which ``int`` would have averaged in) is *unusable*: the item keeps its raw
reply and a null score, and is counted and listed, never dropped silently. The average is over
the usable scores only, and says so.

**Determinism.** The walkthrough sends Ollama's native options ``seed 123``, ``temperature 0``
and ``num_ctx 2048``. The OpenAI API has ``seed`` and ``temperature``, sent with the same
values; ``num_ctx`` (Ollama's context window) has no OpenAI field: it is the server's setting,
and a grading prompt (a few hundred tokens) fits 2048 anyway. The walkthrough limits no reply
length, so ``max_tokens`` is sent only when given. Like its ``ollama_evaluate.py``, an empty
response scores 0 without asking the judge.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scratchllm.config import _option
from scratchllm.errors import ConfigError, ScratchLLMError
from scratchllm.io import read_user_json

DEFAULT_RESPONSE_KEY = "model_response"  # the walkthrough's json_key
EXAMPLE_ENDPOINT = "http://localhost:11434"  # Ollama's
MAX_RETRY_WAIT = 60.0  # seconds: the longest wait between attempts, whatever Retry-After says


class ResponsesFileError(ScratchLLMError):
    """A responses file is missing, not JSON, or not a list of complete entries; the message
    names the file and the entry."""


class JudgeError(ScratchLLMError):
    """The judge endpoint refused a request, kept failing, or answered in another protocol."""


# ---- the responses file -------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseEntry:
    """One instruction, its reference answer and the model's response."""

    index: int  # position in the file, from 0
    instruction: str
    input: str
    output: str  # the reference answer
    response: str  # the model's


def read_responses(
    path: str | os.PathLike[str], *, response_key: str = DEFAULT_RESPONSE_KEY
) -> list[ResponseEntry]:
    """The entries of a responses file (see the module docstring), each checked: a wrong
    layout is a ``ResponsesFileError`` naming the file and the entry (counting from 0)."""
    path = Path(path)
    data = read_user_json(path, ResponsesFileError,
                          missing="give the JSON file `scratchllm respond` wrote")  # fmt: skip
    if not isinstance(data, list) or not data:
        found = f"a JSON {type(data).__name__}" if data else "nothing"
        raise ResponsesFileError(
            f"{path} holds {found}; a responses file is a non-empty JSON list of objects with "
            f"instruction, input, output and {response_key}"
        )
    return [_entry(path, index, item, response_key) for index, item in enumerate(data)]


def _entry(path: Path, index: int, item: Any, response_key: str) -> ResponseEntry:
    if not isinstance(item, dict):
        raise ResponsesFileError(
            f"{path}: entry {index} is a JSON {type(item).__name__}, not an object"
        )
    for key in ("instruction", "output", response_key):  # the input may be left out
        if key not in item:
            hint = "; write them with `scratchllm respond`, or give --response-key"
            raise ResponsesFileError(
                f"{path}: entry {index} has no {key!r} (its keys: {', '.join(item) or 'none'})"
                + (hint if key == response_key else "")
            )
    values = {key: item.get(key, "") for key in ("instruction", "input", "output", response_key)}
    for key, value in values.items():
        if not isinstance(value, str):
            raise ResponsesFileError(
                f"{path}: entry {index}: {key!r} must be a string, got {type(value).__name__}"
            )
    return ResponseEntry(
        index, values["instruction"], values["input"], values["output"], values[response_key]
    )


# ---- the walkthrough's grading prompt, and what counts as a score ------------------------------


def format_input(instruction: str, input: str = "") -> str:  # noqa: A002 - the data's key
    """The walkthrough's ``format_input``: the Alpaca prompt up to its response line.

    >>> print(format_input("Name a colour.", "Warm ones only.")[107:])
    ### Instruction:
    Name a colour.
    <BLANKLINE>
    ### Input:
    Warm ones only.
    """
    from scratchllm.finetune.prompts import PROMPT_FORMATS

    alpaca = PROMPT_FORMATS["alpaca"]
    return alpaca.prompt(instruction, input).removesuffix(alpaca.response_prefix)


def grading_prompt(entry: ResponseEntry) -> str:
    """What the judge is asked about one entry: the walkthrough's chapter-7 prompt, verbatim.

    >>> entry = ResponseEntry(0, "Name a colour.", "", "Red.", "Blue.")
    >>> print(grading_prompt(entry))  # doctest: +NORMALIZE_WHITESPACE
    Given the input `Below is an instruction that describes a task. Write a response that
    appropriately completes the request.
    <BLANKLINE>
    ### Instruction:
    Name a colour.` and correct output `Red.`, score the model response `Blue.` on a scale
    from 0 to 100, where 100 is the best score. Respond with the integer number only.
    """
    return (
        f"Given the input `{format_input(entry.instruction, entry.input)}` "
        f"and correct output `{entry.output}`, "
        f"score the model response `{entry.response}`"
        f" on a scale from 0 to 100, where 100 is the best score. "
        f"Respond with the integer number only."
    )


# an optional "Score:" label, the integer, an optional "/100" or "out of 100", a final period
_SCORE_REPLY = re.compile(
    r"(?:score\s*[:=]?\s*)?([0-9]{1,3})(?:\s*(?:/|out\s+of)\s*100)?\s*\.?", re.IGNORECASE
)


def parse_score(reply: str) -> int | None:
    """The score in a judge's reply, or None if the reply holds no usable one (see the module
    docstring for the rule).

    >>> [parse_score(reply) for reply in ["85", " 85.\\n", "Score: 85", "85/100", "70 out of 100"]]
    [85, 85, 85, 85, 70]
    >>> [parse_score(reply) for reply in ["I'd rate it 85.", "85.5", "150", "-5", "", "N/A"]]
    [None, None, None, None, None, None]
    """
    match = _SCORE_REPLY.fullmatch(reply.strip())
    if match is None:
        return None
    score = int(match.group(1))
    return score if score <= 100 else None


# ---- the client ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeConfig:
    """Which judge, how it is asked, and how patiently. Holds no secret: the API key is read
    from the environment variable ``api_key_env`` names."""

    endpoint: str  # the server's base URL, with or without /v1 (see chat_completions_url)
    model: str  # the judge model's name on that server, e.g. llama3
    api_key_env: str = _option(
        "OPENAI_API_KEY",
        "environment variable holding the API key, sent as a Bearer token; unset: no key "
        "(Ollama and vLLM need none)",
        metavar="NAME",
    )
    seed: int | None = _option(123, "the request's seed (the walkthrough's)")
    temperature: float = _option(0.0, "the request's temperature (0: the judge's likeliest reply)")
    max_tokens: int | None = _option(
        None, "longest reply in tokens (default: not sent, no limit, as the walkthrough)"
    )
    timeout: float = _option(120.0, "seconds to wait for each reply", metavar="SECONDS")
    retries: int = _option(
        3, "retries of a request after a connection error, a timeout, a 429 or a 5xx"
    )
    backoff: float = _option(
        1.0,
        f"seconds before the first retry, doubling for each next one (or the server's "
        f"Retry-After; at most {MAX_RETRY_WAIT:g})",
        metavar="SECONDS",
    )
    concurrency: int = _option(1, "requests in flight at once")

    def __post_init__(self) -> None:
        chat_completions_url(self.endpoint)  # checks it
        if not self.model.strip():
            raise ConfigError("give the judge model's name (e.g. llama3)")
        for name in ("timeout", "temperature", "backoff"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        if self.timeout == 0:
            raise ConfigError("timeout must be above 0 seconds")
        for name, least in (("retries", 0), ("concurrency", 1), ("max_tokens", 1)):
            value = getattr(self, name)
            if value is None and name == "max_tokens":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")


def chat_completions_url(endpoint: str) -> str:
    """The chat-completions URL of a server: its base URL gets ``/v1/chat/completions``, a URL
    ending in ``/v1`` gets ``/chat/completions``, a full one is kept.

    >>> chat_completions_url("http://localhost:11434")
    'http://localhost:11434/v1/chat/completions'
    >>> chat_completions_url("https://api.example.com/v1/")
    'https://api.example.com/v1/chat/completions'
    """
    from urllib.parse import urlsplit

    problem = f"the endpoint must be an http:// or https:// URL such as {EXAMPLE_ENDPOINT}"
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as error:
        raise ConfigError(f"{problem}, got {endpoint!r} ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ConfigError(f"{problem}, got {endpoint!r}")
    base = endpoint.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


class _Retryable(Exception):
    """A failure worth another attempt: the connection, a timeout, a 429 or a 5xx."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class ChatClient:
    """An OpenAI-compatible chat-completions endpoint: a prompt in, the reply's text out.

    ``api_key`` defaults to the variable ``config.api_key_env`` names; it goes only into the
    ``Authorization`` header, never into a message or a repr. ``sleep`` waits between attempts
    (tests pass one that records the waits instead).
    """

    def __init__(
        self,
        config: JudgeConfig,
        *,
        api_key: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import urllib.request  # here, not at import: the CLI's --help stays fast

        self.config = config
        self._sleep = sleep
        self.url = chat_completions_url(config.endpoint)
        self._api_key = api_key if api_key is not None else os.environ.get(config.api_key_env)
        self._opener = urllib.request.build_opener()  # honours the *_proxy variables

    def __repr__(self) -> str:
        return f"ChatClient({self.url!r}, model={self.config.model!r})"

    def request_body(self, prompt: str) -> dict[str, Any]:
        """The JSON body of one request: the prompt as the one user message."""
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.config.temperature,
        }
        if self.config.seed is not None:
            body["seed"] = self.config.seed
        if self.config.max_tokens is not None:
            body["max_tokens"] = self.config.max_tokens
        return body

    def complete(self, prompt: str) -> str:
        """The judge's reply to ``prompt``, retried as the config says; a ``JudgeError`` if it
        is refused (4xx other than 429) or still failing after the last retry."""
        payload = json.dumps(self.request_body(prompt)).encode("utf-8")
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            try:
                return self._post(payload)
            except _Retryable as failure:
                if attempt + 1 == attempts:
                    raise JudgeError(
                        f"{self.url} failed {attempts} time(s), last: {failure}; is the server "
                        "running (see --timeout, --retries)?"
                    ) from None
                wait = max(self.config.backoff * 2**attempt, failure.retry_after or 0.0)
                self._sleep(min(wait, MAX_RETRY_WAIT))
        raise AssertionError("unreachable")

    def _post(self, payload: bytes) -> str:
        import http.client
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.config.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            with error:
                detail = self._error_detail(error.read())
            if error.code == 429 or error.code >= 500:
                raise _Retryable(
                    f"HTTP {error.code} {detail}", _retry_after(error.headers)
                ) from None
            raise JudgeError(self._refusal(error.code, detail)) from None
        except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, TimeoutError):
                raise _Retryable(f"no reply within {self.config.timeout:g} s") from None
            raise _Retryable(f"{type(reason).__name__}: {reason}") from None
        return self._reply_text(raw)

    def _reply_text(self, raw: bytes) -> str:
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeError(
                f"{self.url} did not answer as OpenAI's chat completions do (no "
                f"choices[0].message.content in {self._error_detail(raw)}); give the base URL "
                "of an OpenAI-compatible server (Ollama: http://localhost:11434)"
            ) from None
        if content is not None and not isinstance(content, str):
            raise JudgeError(f"{self.url} answered a {type(content).__name__}, not text")
        return content or ""

    def _error_detail(self, body: bytes) -> str:
        """A server's error body as one short line (its ``error.message`` when it has one),
        with our key blanked out should the server echo it."""
        text = error_message(body, limit=None)
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return repr(text[:200] + ("..." if len(text) > 200 else ""))

    def _refusal(self, code: int, detail: str) -> str:
        message = f"{self.url} refused the request: HTTP {code} {detail}"
        if code in (401, 403):
            state = "set" if self._api_key else "not set"
            return f"{message}; put the API key in ${self.config.api_key_env} (now {state})"
        if code == 404:
            return (
                f"{message}; check the URL and that the model {self.config.model!r} is "
                f"served there (Ollama: `ollama pull {self.config.model}`)"
            )
        return message


def _retry_after(headers: Any) -> float | None:
    """A Retry-After header given in seconds (an HTTP date is ignored: the backoff applies)."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


# ---- judging a responses file -------------------------------------------------------------------


@dataclass(frozen=True)
class JudgedItem:
    """One entry's verdict: ``score`` is None when ``reply`` held no usable score; ``reply`` is
    None when the response was empty (scored 0 without asking)."""

    index: int
    score: int | None
    reply: str | None


@dataclass(frozen=True)
class JudgeReport:
    """Every entry's verdict, in file order, and what they add up to."""

    items: tuple[JudgedItem, ...]

    @property
    def scores(self) -> list[int]:
        return [item.score for item in self.items if item.score is not None]

    @property
    def unusable(self) -> list[int]:
        """Indices of the entries whose reply held no usable score."""
        return [item.index for item in self.items if item.score is None]

    @property
    def empty(self) -> list[int]:
        """Indices of the empty responses, scored 0 without asking."""
        return [item.index for item in self.items if item.reply is None]

    @property
    def average(self) -> float | None:
        """The mean of the usable scores (None if there is none)."""
        scores = self.scores
        return sum(scores) / len(scores) if scores else None

    def summary(self) -> str:
        """One line: how many were scored, which were not, and the average over the scored.

        >>> items = [JudgedItem(0, 80, "80"), JudgedItem(1, None, "good"), JudgedItem(2, 41, "41")]
        >>> JudgeReport(tuple(items)).summary()
        '3 responses: 2 scored, 1 without a usable score (index 1); average 60.50 over the 2 scored'
        """
        total, scored, unusable = len(self.items), len(self.scores), self.unusable
        text = f"{total} responses: {scored} scored"
        if unusable:
            shown = ", ".join(map(str, unusable[:20])) + (", ..." if len(unusable) > 20 else "")
            text += (
                f", {len(unusable)} without a usable score "
                f"({'index' if len(unusable) == 1 else 'indices'} {shown})"
            )
        if self.empty:
            text += f", {len(self.empty)} of them empty (scored 0 without asking)"
        if self.average is None:
            return text + "; no average"
        over = "all" if scored == total else "the"
        return f"{text}; average {self.average:.2f} over {over} {scored} scored"

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": len(self.items),
            "scored": len(self.scores),
            "average": self.average,
            "unusable": self.unusable,
            "empty": self.empty,
            "items": [asdict(item) for item in self.items],
        }


def judge_entry(entry: ResponseEntry, client: ChatClient) -> JudgedItem:
    """Ask the judge about one entry (an empty response scores 0 without asking)."""
    if not entry.response.strip():
        return JudgedItem(entry.index, 0, None)
    try:
        reply = client.complete(grading_prompt(entry))
    except JudgeError as error:
        raise JudgeError(f"entry {entry.index}: {error}") from None
    return JudgedItem(entry.index, parse_score(reply), reply)


def judge_responses(
    entries: Sequence[ResponseEntry], client: ChatClient, *, show_progress: bool = False
) -> JudgeReport:
    """Every entry's verdict, ``client.config.concurrency`` requests at a time; the first
    error stops the run (requests not yet sent are cancelled)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm import tqdm

    items: dict[int, JudgedItem] = {}
    try:
        with tqdm(
            total=len(entries), desc="judging", unit="response", disable=not show_progress
        ) as progress:
            if client.config.concurrency == 1:
                for entry in entries:
                    items[entry.index] = judge_entry(entry, client)
                    progress.update()
            else:
                with ThreadPoolExecutor(client.config.concurrency) as pool:
                    futures = [pool.submit(judge_entry, entry, client) for entry in entries]
                    try:
                        for future in as_completed(futures):
                            item = future.result()
                            items[item.index] = item
                            progress.update()
                    except BaseException:
                        pool.shutdown(wait=False, cancel_futures=True)
                        raise
    except (ScratchLLMError, KeyboardInterrupt) as error:
        # what was judged before the failure is kept: the caller may write it
        done = JudgeReport(tuple(items[e.index] for e in entries if e.index in items))
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else str(error)
        raise JudgeStopped(
            f"{reason} ({len(done.items)} of {len(entries)} responses judged before it)", done
        ) from None
    return JudgeReport(tuple(items[entry.index] for entry in entries))


class JudgeStopped(ScratchLLMError):
    """A judging run stopped early (a request failed after its retries, or Ctrl-C); ``report``
    holds the verdicts reached before it, so that they are not lost."""

    def __init__(self, message: str, report: JudgeReport) -> None:
        super().__init__(message)
        self.report = report


def error_message(body: bytes, *, limit: int | None = 300) -> str:
    """A server's error body as one short line: its OpenAI ``error.message`` when it has one,
    cut to ``limit`` characters (None: whole).

    >>> error_message(b'{"error": {"message": "no such model", "type": "invalid_request_error"}}')
    'no such model'
    """
    text = body.decode("utf-8", errors="replace")
    try:
        error = json.loads(text)["error"]
        text = error["message"] if isinstance(error, dict) else str(error)
    except (ValueError, KeyError, TypeError):
        pass
    text = " ".join(str(text).split())
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + "..."
