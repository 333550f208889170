"""The judge: the walkthrough's grading prompt, what counts as a score, and the client against a
fake OpenAI-compatible server on 127.0.0.1 (replies, retries, timeouts, refusals)."""

from __future__ import annotations

import json

import pytest

from scratchllm.errors import ConfigError
from scratchllm.judge import (
    ChatClient,
    JudgeConfig,
    JudgeError,
    ResponseEntry,
    ResponsesFileError,
    grading_prompt,
    judge_responses,
    parse_score,
    read_responses,
)

KEY_VARIABLE = "SCRATCHLLM_TEST_JUDGE_KEY"


def client_for(fake_judge, waits=None, **settings) -> ChatClient:
    """A client of the fake judge with tiny waits; ``waits`` collects the pauses between tries."""
    settings = {"timeout": 2.0, "backoff": 0.25, "api_key_env": KEY_VARIABLE, **settings}
    sleep = waits.append if waits is not None else (lambda seconds: None)
    return ChatClient(JudgeConfig(fake_judge.url, "llama3", **settings), sleep=sleep)


def test_grading_prompt_is_the_walkthroughs(shared_data):
    # the walkthrough's first test entry, whose prompt is written out here by hand
    entries = read_responses(shared_data / "instruction-data-with-response.json")
    assert len(entries) == 110
    assert grading_prompt(entries[0]) == (
        "Given the input `Below is an instruction that describes a task. Write a response that "
        "appropriately completes the request.\n\n### Instruction:\nRewrite the sentence using "
        "a simile.\n\n### Input:\nThe car is very fast.` and correct output `The car is as fast "
        "as lightning.`, score the model response `The car is as fast as a bullet.` on a scale "
        "from 0 to 100, where 100 is the best score. Respond with the integer number only."
    )
    # without an input, no Input block
    entry = ResponseEntry(0, "Name a colour.", "", "Red.", "Blue.")
    assert "### Input" not in grading_prompt(entry)
    assert "\n### Instruction:\nName a colour.` and correct output `Red.`" in grading_prompt(entry)


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("85", 85),
        ("0", 0),
        ("100", 100),
        (" 85.\n", 85),
        ("Score: 85", 85),
        ("score=7", 7),
        ("85/100", 85),
        ("85 / 100", 85),
        ("70 out of 100", 70),
        ("I think 80 or 90", None),
        ("I'd rate it 85.", None),
        ("85.5", None),
        ("101", None),
        ("-5", None),
        ("80 90", None),
        ("", None),
        ("N/A", None),
    ],
)
def test_parse_score(reply, score):
    assert parse_score(reply) == score


def test_request_body_and_key_from_the_environment(fake_judge, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, "sk-test")
    client = client_for(fake_judge)
    assert client.complete("How good?") == "50"
    (request,) = fake_judge.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"] == {
        "model": "llama3",
        "messages": [{"role": "user", "content": "How good?"}],
        "temperature": 0.0,
        "seed": 123,
    }
    assert "sk-test" not in repr(client)
    # the variable unset: no Authorization header; max_tokens sent when given
    monkeypatch.delenv(KEY_VARIABLE)
    client_for(fake_judge, max_tokens=8).complete("How good?")
    assert "Authorization" not in fake_judge.requests[1]["headers"]
    assert fake_judge.requests[1]["body"]["max_tokens"] == 8


def test_a_500_is_retried_after_the_backoff(fake_judge):
    fake_judge.script = [(500, {}, b'{"error": "overloaded"}'), (502, {}, b"bad gateway"), "91"]
    waits = []
    assert client_for(fake_judge, waits).complete("?") == "91"
    assert len(fake_judge.requests) == 3
    assert waits == [0.25, 0.5]  # the backoff, doubling


def test_a_429_waits_as_long_as_retry_after_says(fake_judge):
    fake_judge.script = [(429, {"Retry-After": "3"}, b"slow down"), "77"]
    waits = []
    assert client_for(fake_judge, waits).complete("?") == "77"
    assert waits == [3.0]


def test_a_timeout_is_retried_then_reported(fake_judge):
    fake_judge.script = [("sleep", 0.5, "10"), "20"]
    waits = []
    assert client_for(fake_judge, waits, timeout=0.1).complete("?") == "20"
    assert len(waits) == 1
    fake_judge.script = [("sleep", 0.5, "10")] * 2
    with pytest.raises(JudgeError, match=r"failed 2 time\(s\), last: no reply within 0.1 s"):
        client_for(fake_judge, timeout=0.1, retries=1).complete("?")


def test_server_errors_until_the_last_retry(fake_judge):
    fake_judge.script = [(503, {}, b'{"error": {"message": "model loading"}}')] * 4
    with pytest.raises(JudgeError, match=r"failed 4 time\(s\), last: HTTP 503 'model loading'"):
        client_for(fake_judge).complete("?")
    assert len(fake_judge.requests) == 4


def test_a_wrong_key_is_an_error_at_once(fake_judge, monkeypatch):
    fake_judge.api_key = "sk-right"
    monkeypatch.setenv(KEY_VARIABLE, "sk-wrong")
    with pytest.raises(JudgeError) as error:
        client_for(fake_judge).complete("?")
    message = str(error.value)
    assert "HTTP 401" in message and f"${KEY_VARIABLE} (now set)" in message
    assert "sk-wrong" not in message  # the echoed key is blanked out
    assert len(fake_judge.requests) == 1  # not retried


def test_a_server_that_is_not_openai_compatible(fake_judge):
    fake_judge.script = [(200, {}, b"<html>hello</html>")]
    with pytest.raises(JudgeError, match="did not answer as OpenAI's chat completions do"):
        client_for(fake_judge).complete("?")


def test_no_server_is_a_clear_error():
    client = ChatClient(JudgeConfig("http://127.0.0.1:9", "llama3", retries=0))
    with pytest.raises(JudgeError, match="failed 1 time.*is the server running"):
        client.complete("?")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_judging_counts_unusable_replies_and_skips_empty_responses(fake_judge, concurrency):
    entries = [
        ResponseEntry(index, f"instruction {index}", "", "the reference", response)
        for index, response in enumerate(["a", "b", "", "d", "e"])
    ]
    # one reply per non-empty response, chosen by the response it is about
    replies = {"a": "80", "b": "I think 80 or 90", "d": "Score: 41", "e": "41."}

    def reply_for(body):  # the reply depends on the response asked about, not on timing
        prompt = body["messages"][0]["content"]
        return replies[prompt.split("score the model response `")[1][0]]

    fake_judge.default = reply_for
    client = client_for(fake_judge, concurrency=concurrency)
    report = judge_responses(entries, client)
    assert [item.score for item in report.items] == [80, None, 0, 41, 41]
    assert report.unusable == [1] and report.empty == [2]
    assert report.items[1].reply == "I think 80 or 90"
    assert report.average == pytest.approx((80 + 0 + 41 + 41) / 4)
    assert len(fake_judge.requests) == 4  # the empty response was not sent
    assert "1 without a usable score (index 1)" in report.summary()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["unusable"] == [1] and data["items"][1] == {
        "index": 1,
        "score": None,
        "reply": "I think 80 or 90",
    }


def test_responses_file_errors(tmp_path):
    with pytest.raises(ResponsesFileError, match="no file at .*missing.json"):
        read_responses(tmp_path / "missing.json")
    path = tmp_path / "responses.json"
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(ResponsesFileError, match=r"responses.json is not JSON \(line 1"):
        read_responses(path)
    path.write_text('{"instruction": "x"}', encoding="utf-8")
    with pytest.raises(ResponsesFileError, match="holds a JSON dict; a responses file is"):
        read_responses(path)
    good = {"instruction": "i", "output": "o", "model_response": "r"}  # no input: fine
    bad = {"instruction": "i", "input": "", "output": "o"}
    path.write_text(json.dumps([good, good, bad]), encoding="utf-8")
    with pytest.raises(ResponsesFileError, match="responses.json: entry 2 has no 'model_response'"):
        read_responses(path)
    assert read_responses(path, response_key="output")[2].response == "o"
    path.write_text(json.dumps([good, {**good, "output": 3}]), encoding="utf-8")
    with pytest.raises(ResponsesFileError, match="entry 1: 'output' must be a string, got int"):
        read_responses(path)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"endpoint": "localhost:11434"}, "must be an http:// or https:// URL"),
        ({"endpoint": "http://localhost:port"}, "must be an http:// or https:// URL"),
        ({"model": " "}, "give the judge model's name"),
        ({"timeout": 0}, "timeout must be above 0"),
        ({"backoff": -1.0}, "backoff must be a number >= 0"),
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"concurrency": 0}, "concurrency must be an integer >= 1"),
        ({"max_tokens": 0}, "max_tokens must be an integer >= 1"),
    ],
)
def test_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        JudgeConfig(**{"endpoint": "http://localhost:11434", "model": "llama3", **settings})
