"""Fixtures shared by the whole test suite.

The test data (GPT-2 vocabulary files, "The Verdict", tiktoken's cache) lives outside the
repository in ``../shared/data`` relative to the repository root; tests read it from there and
never touch the network.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPOSITORY_ROOT.parent / "shared" / "data"

# tiktoken downloads its vocabularies unless they are in its cache; point it at the shared copy
# (set at import so that it also holds for modules that build an encoding at collection time).
os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED_DATA / "tiktoken-cache")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared test-data folder; skips the test (fails it on CI) if the folder is missing."""
    if not SHARED_DATA.is_dir():
        message = f"shared test data not found at {SHARED_DATA} (expected next to the repository)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


# ---- a fake OpenAI-compatible judge, for tests/test_judge.py and tests/cli/test_judge.py -------


class FakeJudge:
    """A chat-completions server on 127.0.0.1 that plays a script, one action per request:

    - ``"85"`` (a string): a 200 with that reply text;
    - ``(status, headers, body)``: that HTTP status, headers and raw body;
    - ``("sleep", seconds, action)``: wait, then play the action (the client may have gone).

    With the script empty it plays ``default``, or ``default(body)`` if that is a function of
    the request's JSON body. ``requests`` records each request's path,
    headers and JSON body; with ``api_key`` set, a request without ``Bearer api_key`` gets 401.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        self.script: list = []
        self.default = "50"
        self.api_key: str | None = None
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        judge = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with judge._lock:
                    judge.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    action = judge.script.pop(0) if judge.script else judge.default
                if callable(action):
                    action = action(body)
                if judge.api_key and self.headers.get("Authorization") != f"Bearer {judge.api_key}":
                    given = self.headers.get("Authorization", "")
                    message = f"Incorrect API key provided: {given.removeprefix('Bearer ')}"
                    action = (401, {}, json.dumps({"error": {"message": message}}).encode())
                self.play(action)

            def play(self, action) -> None:
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                    action = action[2]
                if isinstance(action, str):
                    reply = {"choices": [{"index": 0, "message": {"role": "assistant",
                                                                  "content": action}}]}  # fmt: skip
                    action = (200, {}, json.dumps(reply).encode())
                status, headers, body = action
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client timed out and closed the connection
                    pass

            def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_judge(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy"):  # urllib honours them: not here
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    judge = FakeJudge()
    yield judge
    judge.close()
