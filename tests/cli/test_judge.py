"""`scratchllm judge` against a fake OpenAI-compatible server, and `scratchllm score`, on the
walkthrough's responses file."""

from __future__ import annotations

import json

import pytest

from scratchllm.cli import main

KEY_VARIABLE = "SCRATCHLLM_TEST_JUDGE_KEY"


@pytest.fixture
def responses_file(shared_data, tmp_path):
    """The first six entries of the walkthrough's instruction-data-with-response.json."""
    entries = json.loads((shared_data / "instruction-data-with-response.json").read_text())
    path = tmp_path / "responses.json"
    path.write_text(json.dumps(entries[:6]), encoding="utf-8")
    return path


def test_judge_end_to_end(fake_judge, responses_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, "sk-test")
    fake_judge.api_key = "sk-test"
    fake_judge.script = [
        "85",
        (500, {}, b"try again"),  # retried
        "90",
        "I think 80 or 90",  # unusable: counted, listed, kept
        ("sleep", 0.5, "1"),  # past the timeout: retried
        "70",
        (429, {"Retry-After": "0"}, b"slow down"),
        "Score: 60",
        "100",
    ]
    output = tmp_path / "out" / "scores.json"
    command = ["judge", "--responses", str(responses_file), "--endpoint", fake_judge.url + "/v1"]
    settings = ["--model", "llama3", "--api-key-env", KEY_VARIABLE, "--timeout", "0.2"]
    status = main([*command, *settings, "--backoff", "0", "--no-progress", "-o", str(output)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    # 85, 90, 70, 60, 100 over the five usable of six
    assert "6 responses: 5 scored, 1 without a usable score (index 2)" in printed.out
    assert "average 81.00 over the 5 scored" in printed.out
    assert (
        "warning: entry 2: no usable score in the judge's reply 'I think 80 or 90'" in printed.err
    )
    assert len(fake_judge.requests) == 9
    first = fake_judge.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["Authorization"] == "Bearer sk-test"
    assert first["body"]["model"] == "llama3" and first["body"]["seed"] == 123
    assert first["body"]["temperature"] == 0
    assert first["body"]["messages"][0]["content"].startswith(
        "Given the input `Below is an instruction"
    )
    data = json.loads(output.read_text())
    assert data["judge"]["model"] == "llama3" and data["responses"] == str(responses_file)
    assert (data["count"], data["scored"], data["average"]) == (6, 5, 81.0)
    assert [item["score"] for item in data["items"]] == [85, 90, None, 70, 60, 100]
    assert data["unusable"] == [2] and data["items"][2]["reply"] == "I think 80 or 90"


def test_judge_refused_writes_nothing(fake_judge, responses_file, tmp_path, capsys):
    fake_judge.api_key = "sk-right"  # and the variable is not set
    output = tmp_path / "scores.json"
    command = ["judge", "--responses", str(responses_file), "--endpoint", fake_judge.url]
    status = main([*command, "--model", "llama3", "--api-key-env", KEY_VARIABLE, "-o", str(output)])
    error = capsys.readouterr().err.strip()
    assert status == 2 and error.count("\n") == 0
    assert error.startswith("error: entry 0: ") and "HTTP 401" in error
    assert f"${KEY_VARIABLE} (now not set)" in error
    assert not output.exists() and len(fake_judge.requests) == 1


def test_score_on_the_walkthrough_responses(shared_data, tmp_path, capsys):
    output = tmp_path / "text-scores.json"
    path = shared_data / "instruction-data-with-response.json"
    assert main(["score", "--responses", str(path), "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("110 responses: exact match 0.155, normalized match 0.155, ROUGE-L")
    data = json.loads(output.read_text())
    assert data["count"] == len(data["items"]) == 110
    assert 0 < data["exact_match"] < data["rouge_l_f1"] < 1
    assert data["items"][0]["rouge_l"]["f1"] == pytest.approx(0.8)  # see rouge_l's docstring
    # responses identical to the references score 1
    entries = json.loads(path.read_text())
    identical = tmp_path / "identical.json"
    identical.write_text(json.dumps([{**e, "model_response": e["output"]} for e in entries]))
    assert main(["score", "--responses", str(identical)]) == 0
    assert "exact match 1.000, normalized match 1.000, ROUGE-L F1 1.000" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["score", "judge"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no file at {path}"),
        ("[{]", "{path} is not JSON (line 1, column 3"),
        (
            json.dumps(
                [
                    {"instruction": "i", "output": "o", "model_response": "r"},
                    {"instruction": "i", "input": "", "output": "o"},
                ]
            ),  # fmt: skip
            "{path}: entry 1 has no 'model_response'",
        ),
    ],
)
def test_bad_responses_file(command, content, message, tmp_path, capsys):
    path = tmp_path / "responses.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    arguments = [command, "--responses", str(path)]
    if command == "judge":  # the file is read before the judge is asked anything
        arguments += ["--endpoint", "http://127.0.0.1:9", "--model", "llama3"]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: " + message.format(path=path)) and error.count("\n") == 1


def test_a_run_that_stops_keeps_what_was_judged(fake_judge, responses_file, tmp_path, capsys):
    bad = json.dumps({"error": {"message": "model unloaded"}}).encode()
    fake_judge.script = ["85", "90", (400, {}, bad)]  # the third request fails, not retried
    output = tmp_path / "scores.json"
    status = main(["judge", "--responses", str(responses_file), "--endpoint", fake_judge.url,
                   "--model", "llama3", "-o", str(output), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and "model unloaded" in err and "2 of 6 responses judged" in err
    data = json.loads(output.read_text())
    assert data["complete"] is False and "model unloaded" in data["stopped"]
    assert [item["score"] for item in data["items"]] == [85, 90]
