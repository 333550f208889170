"""A real ``scratchllm serve`` in a subprocess on a free 127.0.0.1 port, with a tiny
checkpoint; the tests talk to it over HTTP (the official ``openai`` client, and raw requests
for what a client library hides)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from scratchllm.config import GPTConfig
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import BPETokenizer
from scratchllm.weights.checkpoint import save_checkpoint

try:  # the page's tests need Playwright (its Python package only: the browser is Debian's)
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    expect = sync_playwright = None

SOURCE = Path(__file__).resolve().parents[2] / "src"
API_KEY = "test-key"
TEXT = (
    "The cat sat on the mat. A dog ran in the park. Café crème and naïve résumé. "
    "Below is an instruction that describes a task. ### Instruction: ### Response: "
) * 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny GPT (context 256) with a byte-level BPE and the Alpaca prompt format."""
    folder = tmp_path_factory.mktemp("served") / "tiny-chat"
    tokenizer = BPETokenizer.train(TEXT, 300)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, context_length=256, n_embd=32, n_head=4,
                       n_layer=2, dropout=0.0, qkv_bias=True, tie_weights=True)  # fmt: skip
    model = GPT(config, generator=torch.Generator().manual_seed(3))
    save_checkpoint(folder, model, tokenizer, prompt_format="alpaca")
    return folder


class Server:
    """A running ``scratchllm serve``: its URL, raw HTTP helpers, and its output."""

    def __init__(self, checkpoint: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = f"{SOURCE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
        env = {**os.environ, "PYTHONPATH": path, "NO_PROXY": "127.0.0.1,localhost"}
        env.pop("SCRATCHLLM_API_KEY", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scratchllm", "serve", "--checkpoint", str(checkpoint),
             "--port", str(self.port), "--device", "cpu", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.process.stdout.read()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server did not answer /health within 60 s")

    def request(self, method: str, path: str, body=None, *, key: str | None = None,
                raw: bytes | None = None, timeout: float = 30):  # fmt: skip
        """``(status, parsed JSON or text)``."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def metrics(self) -> dict[str, float]:
        _, text = self.request("GET", "/metrics", key=API_KEY)
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def server(tiny_checkpoint):
    running = Server(tiny_checkpoint, "--api-key", API_KEY, "--max-body-bytes", "20000")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def slow_server(tmp_path_factory):
    """A model large enough (8 layers of width 256, window 512) that a reply takes a few
    seconds on a CPU, so the page can be watched while it streams and stopped midway."""
    folder = tmp_path_factory.mktemp("page") / "page-model"
    tokenizer = BPETokenizer.train(TEXT, 300)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, context_length=512, n_embd=256,
                       n_head=4, n_layer=8, dropout=0.0, qkv_bias=True,
                       tie_weights=True)  # fmt: skip
    save_checkpoint(folder, GPT(config, generator=torch.Generator().manual_seed(5)), tokenizer,
                    prompt_format="alpaca")  # fmt: skip
    server = Server(folder)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(server):
    openai = pytest.importorskip("openai", reason="the openai client is a test dependency")
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0,
                         timeout=60)  # fmt: skip


# ---- the chat page in Debian's Chromium (tests/serve/test_chat_page*.py) ----------------------

WAIT_MS = 15_000  # the longest a page test waits for the page


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        message = "Chromium not found on PATH: install Debian's package (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if sync_playwright is None:
        pytest.skip("the page's tests need the playwright package (a dev dependency)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


class ChatPage:
    """The page in one browser tab, with the steps the tests take, and what its console said."""

    def __init__(self, page, url: str) -> None:
        self.page = page
        self.url = url
        self.console_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.console_errors.append(f"page error: {error}"))

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def open(self) -> ChatPage:
        self.page.goto(self.url + "/")
        expect(self.page.locator("#model-name")).not_to_have_text("…")
        return self

    def send(self, text: str) -> None:
        self.page.get_by_label("Message").fill(text)
        self.page.get_by_label("Message").press("Enter")

    def replies(self):
        return self.page.locator(".message.assistant")

    def last_reply_text(self) -> str:
        return self.replies().last.locator(".content").text_content()

    def wait_until_done(self) -> None:
        expect(self.page.locator(".message.streaming")).to_have_count(0, timeout=WAIT_MS)
        expect(self.page.get_by_role("button", name="Send")).to_be_enabled()

    def assert_no_console_errors(self, *, expected: str | None = None) -> None:
        """No errors in the console, except those matching the regular expression ``expected``
        (Chromium logs every failed request, such as a 400 the test asked for)."""
        unexpected = [e for e in self.console_errors if not (expected and re.search(expected, e))]
        assert unexpected == []


@pytest.fixture
def open_chat(browser):
    """``open_chat(url)``: the chat page of the server at ``url``, opened in a fresh browser
    context (an empty localStorage), closed after the test."""
    contexts = []

    def open_page(url: str) -> ChatPage:
        context = browser.new_context(viewport={"width": 900, "height": 640})
        contexts.append(context)
        return ChatPage(context.new_page(), url).open()

    yield open_page
    for context in contexts:
        context.close()
