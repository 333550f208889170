"""Fixtures for the weights tests: tiny random Hugging Face GPT-2 models and a local fake Hub.

``FakeHub`` plays the Hugging Face Hub on 127.0.0.1 with just enough of its resolve API for
``huggingface_hub.hf_hub_download`` (read from its ``file_download.py``): ``HEAD`` and ``GET``
of ``/{repo}/resolve/{revision}/{filename}`` answered with the headers it needs --
``X-Repo-Commit`` (the commit), ``ETag`` (here the file's SHA-256, as the Hub gives for LFS
files), ``Content-Length`` -- ``Range`` requests for resumed transfers, and 404s with the
``X-Error-Code`` it turns into its error types. A file can be cut off mid-transfer once (the
client tries again) or every time.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import torch


def hf_gpt2(
    vocab_size: int,
    *,
    tie: bool = True,
    seed: int = 0,
    n_embd: int = 32,
    n_layer: int = 2,
    n_head: int = 4,
    context_length: int = 64,
    weight_std: float = 0.3,
):
    """A random ``GPT2LMHeadModel`` whose logits are spread out (weights drawn with
    ``weight_std``, biases too), so greedy picks are never near-ties."""
    transformers = pytest.importorskip("transformers")  # here: the other weights tests run without
    transformers.logging.set_verbosity_error()  # tiny vocabularies make it warn about bos/eos ids
    transformers.logging.disable_progress_bar()  # its "Loading weights" bar, on every load
    config = transformers.GPT2Config(
        vocab_size=vocab_size,
        n_positions=context_length,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=tie,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
    )
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".ln_" not in name and "ln_f" not in name:
                parameter.normal_(0.0, weight_std if name.endswith("weight") else 0.1)
    return model


@pytest.fixture(scope="session")
def make_hf_gpt2():
    """``hf_gpt2`` for the tests (test modules cannot import conftest under importlib)."""
    return hf_gpt2


# ---- the fake Hub ------------------------------------------------------------------------------

_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)")


@dataclass
class FakeHub:
    url: str
    repos: dict[str, tuple[str, dict[str, bytes]]] = field(default_factory=dict)
    # filename -> "once" (the first GET is cut off) or "always"
    cut: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def add(self, repo: str, revision: str, files: dict[str, bytes]) -> None:
        self.repos[repo] = (revision, dict(files))

    def gets(self, filename: str) -> list[str | None]:
        """The Range header of every GET of ``filename`` (None: the whole file)."""
        return [
            rng
            for method, path, rng in self.requests
            if method == "GET" and path.endswith(filename)
        ]


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the Hub; a cut transfer closes

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, *, body: bool) -> None:
            path = unquote(urlparse(self.path).path)
            hub.requests.append((self.command, path, self.headers.get("Range")))
            match = _RESOLVE.fullmatch(path)
            if match is None or match["repo"] not in hub.repos:
                return self._not_found("RepoNotFound")
            revision, files = hub.repos[match["repo"]]
            if match["revision"] != revision:
                return self._not_found("RevisionNotFound")
            data = files.get(match["filename"])
            if data is None:
                return self._not_found("EntryNotFound", commit=revision)
            start = 0
            ranged = self.headers.get("Range")
            if ranged:  # the only form huggingface_hub sends: "bytes=N-"
                start = int(re.fullmatch(r"bytes=(\d+)-", ranged).group(1))
            self.send_response(206 if ranged else 200)
            self.send_header("X-Repo-Commit", revision)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(data) - start))
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if not body:
                return
            mode = hub.cut.get(match["filename"])
            if mode == "always" or (mode == "once" and len(hub.gets(match["filename"])) == 1):
                # announce the whole file, send half of it, hang up
                self.wfile.write(data[start : start + (len(data) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data[start:])

        def _not_found(self, code: str, *, commit: str | None = None) -> None:
            message = b"not found"
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", code)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(message)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    return Handler


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A fake Hub at HF_ENDPOINT, Hugging Face's cache and ours under tmp_path."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    hub = FakeHub(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = _make_handler(hub)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("SCRATCHLLM_CACHE_DIR", str(tmp_path / "scratchllm-cache"))
    try:
        yield hub
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
