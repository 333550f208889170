"""``scratchllm chat``: the REPL through piped stdin with a tiny checkpoint (greedy answers
equal to ``generate_text`` on the rendered conversation, the commands, the chat file, a full
window), Ctrl-C during an answer, and ``--remote`` against a fake streaming server."""

from __future__ import annotations

import http.server
import io
import json
import re
import threading
import time

import pytest
import torch

from scratchllm.chat.remote import RemoteChat
from scratchllm.chat.repl import ChatRepl
from scratchllm.cli import main
from scratchllm.config import GPTConfig, SamplingConfig
from scratchllm.finetune.prompts import render_chat
from scratchllm.generate import generate_text
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import BPETokenizer
from scratchllm.weights.checkpoint import read_checkpoint, save_checkpoint

STATS = re.compile(r"^\[\d+ tokens?, first after \d+\.\d\d s(, [\d.]+ tokens/s)?\]$", re.M)
QUESTIONS = ["Name a colour.", "Another one?"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny GPTs with a BPE trained on Alpaca-like text: ``alpaca`` (context 256, the alpaca
    format) and ``base`` (context 40, no format, for a window that fills)."""
    folder = tmp_path_factory.mktemp("chat")
    text = (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request. ### Instruction: Name a colour. ### Response: Red. User: "
        "Assistant: System: grass is green, the sky is blue, snow is white. "
    )
    tokenizer = BPETokenizer.train(text * 20, 300)
    for name, context_length, prompt_format in (("alpaca", 256, "alpaca"), ("base", 40, None)):
        config = GPTConfig(
            vocab_size=tokenizer.vocab_size, context_length=context_length, n_embd=32,
            n_head=4, n_layer=2, dropout=0.0, qkv_bias=True,
        )  # fmt: skip
        model = GPT(config, generator=torch.Generator().manual_seed(3))
        save_checkpoint(folder / name, model, tokenizer, prompt_format=prompt_format)
    return folder


def chat(monkeypatch, capsys, lines, *arguments):
    """Run ``scratchllm chat ARGUMENTS`` with ``lines`` piped in; (status, stdout, stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    status = main(["chat", *arguments])
    printed = capsys.readouterr()
    return status, printed.out, printed.err


def greedy_answer(checkpoint, messages, max_new_tokens=8) -> str:
    """What the model answers, by the project's decoder on the rendered conversation."""
    prompt = render_chat(messages, checkpoint.prompt_format)
    pieces = generate_text(
        checkpoint.model, checkpoint.tokenizer, prompt.text,
        max_new_tokens=max_new_tokens, stop_strings=prompt.stop,
    )  # fmt: skip
    return "".join(pieces)


def test_two_messages_get_the_greedy_answers_of_the_rendered_conversation(
    checkpoints, monkeypatch, capsys
):
    folder = checkpoints / "alpaca"
    status, out, err = chat(
        monkeypatch, capsys, QUESTIONS, "--checkpoint", str(folder), "--max-new-tokens", "8"
    )
    assert status == 0
    checkpoint = read_checkpoint(folder)
    first = greedy_answer(checkpoint, [{"role": "user", "content": QUESTIONS[0]}])
    second = greedy_answer(
        checkpoint,
        [
            {"role": "user", "content": QUESTIONS[0]},
            {"role": "assistant", "content": first.strip()},
            {"role": "user", "content": QUESTIONS[1]},
        ],
    )
    assert first.strip() and second.strip()
    # piped: only the answers on stdout, no prompt; a stats line per answer on stderr
    assert out == first.lstrip() + "\n" + second.lstrip() + "\n"
    assert ">>>" not in out + err
    assert len(STATS.findall(err)) == 2, err


def test_the_commands_change_the_chat_and_a_chat_file_restores_it(
    checkpoints, monkeypatch, capsys, tmp_path
):
    folder = checkpoints / "alpaca"
    one, two, three = (tmp_path / f"{n}.json" for n in ("one", "two", "three"))
    script = [
        "/set top_p 2",  # refused: the chat goes on
        "/set colour 3",
        "/set max_tokens 6",
        "/set temperature 0",
        QUESTIONS[0],
        QUESTIONS[1],
        "/undo",  # forgets the second exchange
        f"/save {one}",
        "/retry",  # the first answer again (greedy: the same)
        "/set max_tokens 3",
        "/reset",
        f"/save {two}",
        f"/load {one}",
        f"/save {three}",
        "/set",
        "/frobnicate",
        "/exit",
        "never read",
    ]
    status, out, err = chat(monkeypatch, capsys, script, "--checkpoint", str(folder))
    assert status == 0
    assert "error: top_p must be in (0, 1]" in err
    assert "error: unknown setting 'colour'; the settings: temperature, top_k" in err
    assert "error: unknown command /frobnicate; /help lists the commands" in err
    checkpoint = read_checkpoint(folder)
    first = greedy_answer(checkpoint, [{"role": "user", "content": QUESTIONS[0]}], 6).strip()
    saved = json.loads(one.read_text())
    assert saved["messages"] == [
        {"role": "user", "content": QUESTIONS[0]},
        {"role": "assistant", "content": first},
    ]
    assert saved["settings"] == {
        "temperature": 0.0, "top_k": None, "top_p": None, "max_tokens": 6, "seed": None,
    }  # fmt: skip
    assert json.loads(two.read_text())["messages"] == []
    assert json.loads(three.read_text()) == saved  # /load restored messages and settings
    assert out.count(first + "\n") == 2  # answered, then retried
    assert "temperature=0.0 top_k=none top_p=none max_tokens=6 seed=none" in out
    assert "never read" not in out + err


def test_multi_line_messages_and_a_system_message(checkpoints, monkeypatch, capsys, tmp_path):
    saved = tmp_path / "chat.json"
    script = ["first \\", "second", '"""', "a", "", "b", '"""', f"/save {saved}"]
    arguments = ["--checkpoint", str(checkpoints / "alpaca"), "--max-new-tokens", "2"]
    status, _, _ = chat(monkeypatch, capsys, script, *arguments, "--system", "Be brief.")
    assert status == 0
    messages = json.loads(saved.read_text())["messages"]
    assert [m["content"] for m in messages if m["role"] != "assistant"] == [
        "Be brief.", "first \nsecond", "a\n\nb",
    ]  # fmt: skip


def test_bad_chat_files_are_one_line_errors(checkpoints, monkeypatch, capsys, tmp_path):
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    (tmp_path / "role.json").write_text('{"messages": [{"role": "robot", "content": "x"}]}')
    (tmp_path / "setting.json").write_text('{"messages": [], "settings": {"top_k": 0}}')
    script = [f"/load {tmp_path / name}" for name in
              ("missing.json", "bad.json", "list.json", "role.json", "setting.json")]  # fmt: skip
    script += ["/load", f"/save {tmp_path}"]
    status, _, err = chat(monkeypatch, capsys, script, "--checkpoint", str(checkpoints / "alpaca"))
    assert status == 0
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == len(script)
    assert "no file at" in errors[0] and "is not JSON (line 1" in errors[1]
    assert "not a chat file" in errors[2] and "message 0 must be an object" in errors[3]
    assert "top_k must be at least 1" in errors[4] and "/load needs a file name" in errors[5]


def test_a_full_window_drops_the_oldest_turns_with_a_notice(checkpoints, monkeypatch, capsys):
    questions = ["grass is green and the sky is blue", "snow is white", "Name a colour."]
    arguments = ["--checkpoint", str(checkpoints / "base"), "--max-new-tokens", "4"]
    status, out, err = chat(monkeypatch, capsys, questions, *arguments)
    assert status == 0
    assert re.search(
        r"\(the context window is full: the (\d+ )?oldest turns? (was|were) dropped\)", err
    )
    assert "warning: the prompt has" not in err  # it was fitted, not cropped
    assert len(STATS.findall(err)) == 3 and len(out.splitlines()) >= 3


class ScriptedModel:
    """A chat model whose replies are scripted: text pieces, or an exception to raise."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.seen: list[list[dict]] = []

    def describe(self):
        return "a script"

    def fit(self, messages, settings):
        return list(messages), 0

    def reply(self, messages, settings):
        self.seen.append([dict(m) for m in messages])
        return ScriptedReply(self.replies.pop(0))


class ScriptedReply:
    def __init__(self, pieces):
        self.pieces, self.tokens, self.closed = pieces, None, False

    def __iter__(self):
        self.tokens = 0
        for piece in self.pieces:
            if isinstance(piece, BaseException):
                raise piece
            self.tokens += 1
            yield piece

    def close(self):
        self.closed = True


def test_ctrl_c_stops_the_answer_keeps_what_was_written_and_the_chat_goes_on():
    model = ScriptedModel([" Hel", "lo", KeyboardInterrupt()], [KeyboardInterrupt()], ["Fine."])
    stdout, stderr = io.StringIO(), io.StringIO()
    repl = ChatRepl(
        model, settings=SamplingConfig(), stdin=io.StringIO("Hi\nAnd?\nHow are you?\n"),
        stdout=stdout, stderr=stderr,
    )  # fmt: skip
    assert repl.run() == 0
    assert stdout.getvalue() == "Hello\n\nFine.\n"
    assert "[2 tokens, first after" in stderr.getvalue() and "; stopped]" in stderr.getvalue()
    assert "(stopped before the answer began; the message is not kept)" in stderr.getvalue()
    # the partial answer is in the conversation; the message stopped before any answer is not
    assert model.seen[-1] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "How are you?"},
    ]


# ---- --remote: a fake OpenAI-compatible server that streams ------------------------------------


class FakeServer:
    """Chat completions on 127.0.0.1: each POST plays the next of ``script`` (a list of
    content pieces, streamed as chat.completion.chunk events then [DONE], a dict being an
    event as it is; or ``(status, body)``); GET /v1/models lists one model. ``requests``
    records each POST's headers and body; ``hang`` streams one piece and then writes until
    the client goes (``gone``)."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[dict] = []
        self.tokenize_requests = 0
        self.gone = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's name
                self.send(200, {"object": "list", "data": [{"id": "tiny", "object": "model"}]})

            def do_POST(self):  # noqa: N802
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                if self.path == "/tokenize":  # as OpenAI's: none (the chat then sends all)
                    server.tokenize_requests += 1
                    self.send(404, {"error": {"message": "no route", "code": "not_found"}})
                    return
                server.requests.append({"headers": dict(self.headers), "body": body})
                action = server.script.pop(0)
                if isinstance(action, tuple):
                    self.send(*action)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                if action == "hang":
                    self.hang()
                    return
                for piece in action:
                    if isinstance(piece, dict):  # an event as it is, such as an error
                        self.wfile.write(f"data: {json.dumps(piece)}\n\n".encode())
                        continue
                    self.event({"choices": [{"index": 0, "delta": {"content": piece}}]})
                self.event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

            def event(self, chunk):
                chunk = {"object": "chat.completion.chunk", "model": "tiny", **chunk}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

            def hang(self):  # one piece, then more until the client has gone
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    try:
                        self.event({"choices": [{"index": 0, "delta": {"content": "."}}]})
                    except OSError:
                        server.gone.set()
                        return
                    time.sleep(0.01)

            def send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):  # noqa: A002 - quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy"):  # urllib honours them: not here
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_remote_streams_answers_with_the_history_and_survives_an_error(
    no_proxy, monkeypatch, capsys
):
    error = {"error": {"message": "temperature is too high", "type": "invalid_request_error"}}
    server = FakeServer([["Re", "d."], (400, error), ["Bl", "ue", "."]])
    monkeypatch.setenv("SCRATCHLLM_TEST_KEY", "sk-test")
    try:
        status, out, err = chat(
            monkeypatch, capsys, [QUESTIONS[0], "Too hot?", QUESTIONS[1]],
            "--remote", server.url, "--api-key-env", "SCRATCHLLM_TEST_KEY",
            "--temperature", "0.7", "--max-new-tokens", "20", "--seed", "5",
        )  # fmt: skip
    finally:
        server.close()
    assert status == 0
    assert out == "Red.\nBlue.\n"
    assert "error: http://127.0.0.1" in err and "HTTP 400 temperature is too high" in err
    assert len(STATS.findall(err)) == 2
    first, _, third = (request["body"] for request in server.requests)
    assert first == {
        "model": "tiny",  # the model the server lists, without --model
        "messages": [{"role": "user", "content": QUESTIONS[0]}],
        "stream": True, "temperature": 0.7, "max_tokens": 20, "seed": 5,
    }  # fmt: skip
    # the failed message is not in the history
    assert third["messages"] == [
        {"role": "user", "content": QUESTIONS[0]},
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": QUESTIONS[1]},
    ]
    assert all(r["headers"]["Authorization"] == "Bearer sk-test" for r in server.requests)
    assert server.tokenize_requests == 1  # asked once; without /tokenize the chat sends all


def test_an_error_event_in_the_stream_is_one_line_and_the_chat_goes_on(
    no_proxy, monkeypatch, capsys
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # no key: no Authorization header
    error = {"error": {"message": "the engine stopped", "type": "server_error"}}
    server = FakeServer([["Hel", error], ["Ok."]])
    try:
        status, out, err = chat(
            monkeypatch, capsys, ["Hi", "Again"], "--remote", server.url + "/v1", "--model", "m"
        )
    finally:
        server.close()
    assert status == 0 and out == "Hel\nOk.\n"
    assert "error: the server stopped: the engine stopped" in err
    assert server.requests[1]["body"]["messages"] == [{"role": "user", "content": "Again"}]
    assert server.requests[1]["body"]["model"] == "m"
    assert "Authorization" not in server.requests[0]["headers"]


def test_closing_a_remote_answer_closes_the_connection(no_proxy):
    server = FakeServer(["hang"])
    try:
        reply = RemoteChat(server.url, model="tiny").reply(
            [{"role": "user", "content": "Hi"}], SamplingConfig()
        )
        pieces = iter(reply)
        assert next(pieces) == "."
        reply.close()  # what Ctrl-C does
        assert server.gone.wait(5)
    finally:
        server.close()


def test_an_unreachable_server_is_one_line(no_proxy, monkeypatch, capsys):
    server = FakeServer([])
    url = server.url
    server.close()  # nothing listens there now
    status, out, err = chat(monkeypatch, capsys, ["Hi"], "--remote", url, "--model", "tiny")
    assert status == 0 and out == ""
    assert err.startswith(f"error: cannot reach {url}/v1/chat/completions")
