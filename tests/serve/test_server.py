"""``scratchllm serve`` through the official ``openai`` client and raw HTTP: models,
completions and chat, streamed and not; usage; n; logprobs; stop strings; every error with its
code; concurrency without cross-talk; a disconnect freeing its slot."""

from __future__ import annotations

import http.client
import io
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import API_KEY, Server

MODEL = "tiny-chat"
PROMPTS = ["The cat", "A dog ran", "Café", "The mat. The", "Below is", "naïve", "park", "A"]


def test_health_and_models(server, client):
    assert server.request("GET", "/health") == (200, {"status": "ok"})  # open without a key
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    status, card = server.request("GET", "/v1/models", key=API_KEY)
    assert status == 200 and card["data"][0]["context_length"] == 256
    assert card["data"][0]["prompt_format"] == "alpaca"


def test_completion_usage_matches_tokenize_and_stream_matches_whole(server, client):
    whole = client.completions.create(model=MODEL, prompt="The cat", max_tokens=12,
                                      temperature=0)  # fmt: skip
    choice = whole.choices[0]
    assert choice.finish_reason in ("length", "stop")
    _, tokenized = server.request("POST", "/tokenize", {"prompt": "The cat"}, key=API_KEY)
    assert whole.usage.prompt_tokens == tokenized["count"] == len(tokenized["tokens"])
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    if choice.finish_reason == "length":
        assert whole.usage.completion_tokens == 12
    chunks = list(client.completions.create(model=MODEL, prompt="The cat", max_tokens=12,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True}))  # fmt: skip
    assert len({chunk.id for chunk in chunks}) == 1
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == choice.text
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [choice.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    # detokenize gives the prompt back
    _, back = server.request("POST", "/detokenize", {"tokens": tokenized["tokens"]}, key=API_KEY)
    assert back == {"prompt": "The cat"}


def test_chat_streamed_equals_whole_with_role_first_and_finish_last(client):
    messages = [{"role": "user", "content": "Name a colour."}]
    whole = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16,
                                           temperature=0)  # fmt: skip
    assert whole.choices[0].message.role == "assistant"
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
    ))  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    joined = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert joined == whole.choices[0].message.content
    with_finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(with_finish) == 1 and with_finish[0].choices[0].finish_reason == (
        whole.choices[0].finish_reason
    )
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert "\ufffd" not in joined or "\ufffd" in whole.choices[0].message.content


def test_n_choices_logprobs_and_seeds(client):
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say something."}], max_tokens=8,
        temperature=1.0, n=3, seed=7, logprobs=True, top_logprobs=2,
    )  # fmt: skip
    assert [c.index for c in answer.choices] == [0, 1, 2]
    for choice in answer.choices:
        content = choice.logprobs.content
        assert len(content) >= 1
        for token in content:
            assert token.logprob <= 0
            assert len(token.top_logprobs) == 2
            assert token.top_logprobs[0].logprob >= token.top_logprobs[1].logprob
    again = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say something."}], max_tokens=8,
        temperature=1.0, n=3, seed=7,
    )  # fmt: skip
    assert [c.message.content for c in again.choices] == [c.message.content for c in answer.choices]
    assert answer.usage.completion_tokens == sum(len(c.logprobs.content) for c in answer.choices)


def test_a_stop_string_ends_the_answer_and_never_reaches_the_client(client):
    free = client.completions.create(model=MODEL, prompt="The", max_tokens=30, temperature=0)
    text = free.choices[0].text
    if len(text) < 6:
        pytest.skip(f"the tiny model's answer is too short to cut: {text!r}")
    stop = text[3:6]
    expected = text[: text.index(stop)]
    for stream in (False, True):
        if stream:
            chunks = client.completions.create(model=MODEL, prompt="The", max_tokens=30,
                                               temperature=0, stop=[stop], stream=True)  # fmt: skip
            got = "".join(c.choices[0].text for c in chunks if c.choices)
        else:
            answer = client.completions.create(model=MODEL, prompt="The", max_tokens=30,
                                               temperature=0, stop=stop)  # fmt: skip
            got = answer.choices[0].text
            assert answer.choices[0].finish_reason == "stop"
        assert got == expected and stop not in got


def test_eight_concurrent_greedy_requests_match_one_at_a_time(client):
    def ask(prompt):
        answer = client.completions.create(model=MODEL, prompt=prompt, max_tokens=20,
                                           temperature=0)  # fmt: skip
        return answer.choices[0].text

    alone = [ask(prompt) for prompt in PROMPTS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(ask, PROMPTS))
    assert together == alone


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x", "temperature": 3}, "temperature"),
        ({"prompt": "x", "top_p": 0}, "top_p"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "n": 0}, "n"),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": "x", "logprobs": 9}, "logprobs"),
        ({"prompt": "x", "stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_bad_values_are_400_with_their_param(server, body, param):
    status, error = server.request("POST", "/v1/completions", {"model": MODEL, **body},
                                   key=API_KEY)  # fmt: skip
    assert status == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] == param


def test_every_error_has_its_code_and_the_server_stays_healthy(server):
    status, error = server.request("POST", "/v1/chat/completions", raw=b"{not json", key=API_KEY)
    assert status == 400 and "not valid JSON" in error["error"]["message"]
    status, error = server.request(
        "POST", "/v1/completions", {"model": MODEL, "prompt": "cat " * 300, "max_tokens": 100},
        key=API_KEY,
    )  # fmt: skip
    assert status == 400 and error["error"]["code"] == "context_length_exceeded"
    status, error = server.request("POST", "/v1/completions", {"model": "gpt-9", "prompt": "x"},
                                   key=API_KEY)  # fmt: skip
    assert status == 404 and error["error"]["code"] == "model_not_found"
    status, error = server.request("GET", "/v1/nothing", key=API_KEY)
    assert status == 404 and error["error"]["code"] == "not_found"
    status, error = server.request("POST", "/v1/completions", {"model": MODEL, "prompt": "x"})
    assert status == 401 and error["error"]["code"] == "invalid_api_key"
    status, error = server.request("POST", "/v1/completions", {"model": MODEL, "prompt": "x"},
                                   key="wrong")  # fmt: skip
    assert status == 401
    huge = {"model": MODEL, "prompt": "x" * 30000}
    status, error = server.request("POST", "/v1/completions", huge, key=API_KEY)
    assert status == 413 and error["error"]["code"] == "request_too_large"
    chat = {"model": MODEL, "messages": [{"role": "assistant", "content": "hi"}]}
    status, error = server.request("POST", "/v1/chat/completions", chat, key=API_KEY)
    assert status == 400 and error["error"]["param"] == "messages"
    assert server.request("GET", "/health")[0] == 200
    small = {"model": MODEL, "prompt": "x", "max_tokens": 2}
    status, answer = server.request("POST", "/v1/completions", small, key=API_KEY)
    assert status == 200 and answer["usage"]["completion_tokens"] <= 2
    assert server.metrics()['scratchllm_errors_total{status="400"}'] >= 3


def test_a_client_that_disconnects_frees_its_slot(slow_server):
    server = slow_server  # a reply takes seconds: the client leaves long before its end
    before = server.metrics().get("scratchllm_cancellations_total", 0)
    body = json.dumps({"model": "page-model", "prompt": "The", "max_tokens": 400,
                       "temperature": 1.0, "stream": True}).encode()  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", "/v1/completions", body=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"})  # fmt: skip
    response = connection.getresponse()
    assert response.status == 200
    response.fp.readline()  # the first event arrived: the sequence is running
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()
    deadline = time.monotonic() + 20
    metrics = server.metrics()
    while time.monotonic() < deadline:
        metrics = server.metrics()
        if (metrics.get("scratchllm_cancellations_total", 0) > before
                and metrics["scratchllm_active_sequences"] == 0):  # fmt: skip
            break
        time.sleep(0.1)
    assert metrics["scratchllm_cancellations_total"] > before
    assert metrics["scratchllm_active_sequences"] == 0


def test_a_full_queue_answers_429_and_recovers(tiny_checkpoint):
    busy = Server(tiny_checkpoint, "--max-batch", "1", "--max-queue", "1")
    try:
        body = {"model": MODEL, "prompt": "The", "max_tokens": 120, "temperature": 1.0}
        results = []

        def ask():
            results.append(busy.request("POST", "/v1/completions", body)[0])

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert 429 in results and 200 in results
        assert busy.request("POST", "/v1/completions", {**body, "max_tokens": 2})[0] == 200
    finally:
        busy.stop()


def test_the_terminal_chat_talks_to_the_server(server, client, monkeypatch, capsys):
    """``scratchllm chat --remote``: piped lines, streamed answers equal to the server's own
    non-streamed answers to the same history (seeded sampling: the same tokens again)."""
    from scratchllm.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello.\nName a colour.\n"))
    argv = ["chat", "--remote", server.url, "--temperature", "1", "--seed", "5",
            "--max-new-tokens", "10"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out

    def answer(history):
        reply = client.chat.completions.create(model=MODEL, messages=history, max_tokens=10,
                                               temperature=1.0, seed=5)  # fmt: skip
        return reply.choices[0].message.content.strip()  # the REPL shows answers stripped

    history = [{"role": "user", "content": "Hello."}]
    first = answer(history)
    history += [{"role": "assistant", "content": first},
                {"role": "user", "content": "Name a colour."}]  # fmt: skip
    second = answer(history)
    assert first and second
    assert printed == f"{first}\n{second}\n"


def test_unknown_fields_are_accepted_and_ignored(server):
    body = {"model": MODEL, "prompt": "The", "max_tokens": 2, "user": "someone",
            "frobnicate": {"deep": [1, 2]}, "echo": False, "best_of": 1}  # fmt: skip
    status, answer = server.request("POST", "/v1/completions", body, key=API_KEY)
    assert status == 200 and answer["object"] == "text_completion"


def preflight(port: int, origin: str) -> dict[str, str]:
    """The headers of a browser's CORS preflight for a chat request from ``origin``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("OPTIONS", "/v1/chat/completions", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization"})  # fmt: skip
    response = connection.getresponse()
    response.read()
    connection.close()
    return {name.lower(): value for name, value in response.getheaders()}


def test_cors_is_off_unless_origins_are_given(server, tiny_checkpoint):
    assert "access-control-allow-origin" not in preflight(server.port, "http://elsewhere.test")
    open_to = Server(tiny_checkpoint, "--cors-origins", "http://app.test")
    try:
        allowed = preflight(open_to.port, "http://app.test")
        assert allowed.get("access-control-allow-origin") == "http://app.test"
        refused = preflight(open_to.port, "http://elsewhere.test")
        assert refused.get("access-control-allow-origin") != "http://elsewhere.test"
    finally:
        open_to.stop()


def test_our_server_can_be_the_judge(slow_server, monkeypatch, capsys, tmp_path, shared_data):
    """``scratchllm judge`` through our own server (the larger model: a grading prompt is a
    few hundred tokens): every request answered, and the random model's replies (not
    scores) counted as unusable, not dropped."""
    server = slow_server
    from scratchllm.cli import main

    entries = json.loads((shared_data / "instruction-data-with-response.json").read_text())[:3]
    responses = tmp_path / "responses.json"
    responses.write_text(json.dumps(entries), encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    scores = tmp_path / "scores.json"
    status = main(["judge", "--responses", str(responses), "--endpoint", f"{server.url}/v1",
                   "--model", "page-model", "--max-tokens", "4", "-o", str(scores),
                   "--no-progress"])  # fmt: skip
    printed = capsys.readouterr()
    assert status == 1, printed  # no usable score from a random model: said, not hidden
    assert "3 responses: 0 scored, 3 without a usable score" in printed.out + printed.err
    written = json.loads(scores.read_text())
    assert len(written["items"]) == 3


def test_the_remote_chat_drops_the_oldest_turns_when_the_window_fills(server, monkeypatch, capsys):
    """The server's /tokenize counts the conversation; the REPL drops the oldest turns with
    a notice instead of sending what the server would refuse."""
    from scratchllm.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    long_line = "the cat sat on the mat " * 8  # ~50 tokens a turn in a 256-token window
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{i} {long_line}\n" for i in range(5))))
    argv = ["chat", "--remote", server.url, "--temperature", "0", "--max-new-tokens", "8"]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "oldest turn" in printed.out + printed.err  # the notice
    assert "error" not in printed.err.lower()  # no request refused for its length
    assert printed.err.count("tokens/s") == 5  # every message answered: one stats line each


def test_ctrl_c_stops_the_server_cleanly(tiny_checkpoint):
    running = Server(tiny_checkpoint)
    running.process.send_signal(signal.SIGINT)
    output, _ = running.process.communicate(timeout=20)
    assert running.process.returncode == 0, output
    assert "Traceback" not in output and output.rstrip().endswith("stopped")


def test_n_streamed_choices_interleave_and_each_equals_its_whole(client):
    messages = [{"role": "user", "content": "Say something."}]
    options = dict(model=MODEL, messages=messages, max_tokens=8, temperature=1.0, n=2, seed=11)
    whole = client.chat.completions.create(**options)
    chunks = list(client.chat.completions.create(**options, stream=True))
    joined = {0: "", 1: ""}
    finishes = {}
    for chunk in chunks:
        for choice in chunk.choices:
            joined[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert [joined[0], joined[1]] == [c.message.content for c in whole.choices]
    assert finishes == {c.index: c.finish_reason for c in whole.choices}
