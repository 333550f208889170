"""A real ``scratchllm serve`` in a subprocess on a free 127.0.0.1 port, with a tiny
checkpoint; the tests talk to it over HTTP (the official ``openai`` client, and raw requests
for what a client library hides)."""

from __future__ import annotations

import json
import os
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
    """A tiny GPT (context 128) with a byte-level BPE and the Alpaca prompt format."""
    folder = tmp_path_factory.mktemp("served") / "tiny-chat"
    tokenizer = BPETokenizer.train(TEXT, 300)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, context_length=128, n_embd=32, n_head=4,
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
def client(server):
    openai = pytest.importorskip("openai", reason="the openai client is a test dependency")
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0,
                         timeout=60)  # fmt: skip
