"""Tests for scratchllm.corpora: embedded, downloaded (from a local server) and local corpora.

Oracles: the interpreter's own ``pydoc_data`` topics and stdlib files, the published SHA-256 and
length of "The Verdict", and hand-made files with known bytes. No test touches the network: the
downloads come from an ``http.server`` on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import socket
import sysconfig
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm import corpora
from scratchllm.corpora import DEFAULT_CORPUS, Document, cache_dir, list_corpora, load_corpus
from scratchllm.errors import CorpusError, DownloadError

VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"


# --- embedded corpora --------------------------------------------------------------------------


def test_python_docs_is_every_pydoc_topic_in_sorted_order() -> None:
    from pydoc_data.topics import topics

    corpus = load_corpus("python-docs")
    documents = list(corpus.documents())
    assert DEFAULT_CORPUS == "python-docs"
    assert len(corpus) == len(documents) == len(topics)
    assert [document.name for document in documents] == sorted(topics)
    assert all(document.text == topics[document.name] for document in documents)
    # Re-iterable and deterministic: a second pass and a second load give the same text.
    assert (
        corpus.text()
        == load_corpus("python-docs").text()
        == "\n\n".join(topics[k] for k in sorted(topics))
    )
    assert len(corpus.text()) > 200_000


def test_python_stdlib_is_sorted_sources_without_tests() -> None:
    root = Path(sysconfig.get_paths()["stdlib"])
    corpus = load_corpus("python-stdlib")
    names = corpus.document_names
    assert list(names) == sorted(names)
    assert all(name.endswith(".py") for name in names)
    for name in names:
        parts = name.split("/")
        assert not {"test", "tests", "idle_test", "site-packages", "__pycache__"} & set(parts[:-1])
        assert not parts[-1].startswith("test_")
    assert {"os.py", "json/decoder.py"} <= set(names)
    if (root / "unittest" / "test").is_dir():  # a test package that lives inside a module
        assert not any(name.startswith("unittest/test/") for name in names)
    # One pass reads everything: the size, and one document checked against the file on disk.
    total_characters = 0
    for document in corpus.documents():
        total_characters += len(document.text)
        if document.name == "json/decoder.py":
            assert document.text == (root / "json" / "decoder.py").read_text(encoding="utf-8")
    assert total_characters > 1_000_000


def test_list_corpora_names_and_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCRATCHLLM_CACHE_DIR", str(tmp_path))
    infos = {info.name: info for info in list_corpora()}
    assert list(infos) == ["python-docs", "python-stdlib", "the-verdict"]
    assert infos["python-docs"].source == "embedded" and infos["python-docs"].url is None
    verdict = infos["the-verdict"]
    assert (verdict.source, verdict.sha256, verdict.cached) == ("download", VERDICT_SHA256, False)
    assert verdict.url.endswith("/ch02/01_main-chapter-code/the-verdict.txt")


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SCRATCHLLM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "scratchllm"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec wants absolute paths
    assert cache_dir() == tmp_path / "home" / ".cache" / "scratchllm"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "scratchllm"
    monkeypatch.setenv("SCRATCHLLM_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


# --- downloads, from a local HTTP server -------------------------------------------------------


@dataclasses.dataclass
class Route:
    body: bytes
    status: int = 200
    declared_length: int | None = None  # a Content-Length larger than the body cuts it off


@dataclasses.dataclass
class LocalServer:
    base_url: str
    routes: dict[str, Route]
    requests: list[str]

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture
def server() -> Iterator[LocalServer]:
    routes: dict[str, Route] = {}
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            route = routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            self.send_response(route.status)
            self.send_header("Content-Length", str(route.declared_length or len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)  # HTTP/1.0: the connection closes after this

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval so that shutdown() returns quickly at teardown.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield LocalServer(f"http://127.0.0.1:{httpd.server_address[1]}", routes, requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def verdict_bytes(shared_data: Path) -> bytes:
    return (shared_data / "the-verdict.txt").read_bytes()


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("SCRATCHLLM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def serve_the_verdict_from(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    remote = dataclasses.replace(corpora.DOWNLOADS["the-verdict"], url=url)
    monkeypatch.setitem(corpora.DOWNLOADS, "the-verdict", remote)


def cache_contents(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*")) if cache.exists() else []


def test_the_verdict_downloads_verifies_and_caches(
    server: LocalServer, cache: Path, verdict_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/verdict"] = Route(verdict_bytes)
    serve_the_verdict_from(monkeypatch, server.url("/verdict"))

    corpus = load_corpus("the-verdict")
    assert server.requests == ["/verdict"]
    assert cache_contents(cache) == [cache / "the-verdict.txt"]
    assert hashlib.sha256((cache / "the-verdict.txt").read_bytes()).hexdigest() == VERDICT_SHA256
    (document,) = corpus.documents()
    assert document.name == "the-verdict.txt"
    assert len(document.text) == 20_479  # the published length
    assert document.text.startswith("I HAD always thought Jack Gisburn")
    assert {info.name: info.cached for info in list_corpora()}["the-verdict"] is True

    again = load_corpus("the-verdict")
    assert again.text() == corpus.text()
    assert server.requests == ["/verdict"], "the second load must come from the cache"


def test_a_tampered_cached_file_is_downloaded_again(
    server: LocalServer, cache: Path, verdict_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/verdict"] = Route(verdict_bytes)
    serve_the_verdict_from(monkeypatch, server.url("/verdict"))
    cache.mkdir()
    (cache / "the-verdict.txt").write_bytes(verdict_bytes[:100])
    assert len(load_corpus("the-verdict").text()) == 20_479
    assert server.requests == ["/verdict"]
    assert (cache / "the-verdict.txt").read_bytes() == verdict_bytes


def test_checksum_mismatch_raises_and_leaves_nothing(
    server: LocalServer, cache: Path, verdict_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    altered = verdict_bytes.replace(b"Gisburn", b"Gisbern", 1)
    server.routes["/verdict"] = Route(altered)
    serve_the_verdict_from(monkeypatch, server.url("/verdict"))
    with pytest.raises(DownloadError) as raised:
        load_corpus("the-verdict")
    message = str(raised.value)
    assert VERDICT_SHA256 in message
    assert hashlib.sha256(altered).hexdigest() in message
    assert server.url("/verdict") in message
    assert cache_contents(cache) == []


def test_cut_off_download_raises_and_leaves_nothing(
    server: LocalServer, cache: Path, verdict_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/verdict"] = Route(verdict_bytes[:5000], declared_length=len(verdict_bytes))
    serve_the_verdict_from(monkeypatch, server.url("/verdict"))
    with pytest.raises(DownloadError, match=r"cut off: 5,000 of 20,479 bytes"):
        load_corpus("the-verdict")
    assert cache_contents(cache) == []


def test_http_404_raises_download_error(
    server: LocalServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_the_verdict_from(monkeypatch, server.url("/missing"))
    with pytest.raises(DownloadError, match="404") as raised:
        load_corpus("the-verdict")
    assert server.url("/missing") in str(raised.value)
    assert "yourself" in str(raised.value)  # the hint on what to do instead
    assert cache_contents(cache) == []


def test_refused_connection_raises_download_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/verdict"
    with pytest.raises(DownloadError, match="cannot download") as raised:
        corpora.download(url, tmp_path / "out.txt", sha256=VERDICT_SHA256, show_progress=False)
    assert url in str(raised.value)
    assert list(tmp_path.iterdir()) == []


# --- local files ------------------------------------------------------------------------------


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """A directory with text files, a nested one, and files a corpus must skip."""
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "b.md").write_text("# Bee\n", encoding="utf-8")
    (root / "a.txt").write_text("Ay.", encoding="utf-8")
    (root / "sub" / "c.TXT").write_text("Sea ✓", encoding="utf-8")
    (root / "data.csv").write_text("x,y\n", encoding="utf-8")
    (root / ".hidden" / "secret.txt").write_text("no", encoding="utf-8")
    return root


def test_local_file(notes: Path) -> None:
    corpus = load_corpus(notes / "a.txt")  # a PathLike works as well as a str
    assert list(corpus.documents()) == [Document(str(notes / "a.txt"), "Ay.")]
    assert corpus.name == str(notes / "a.txt")


def test_local_directory_is_recursive_sorted_and_text_only(notes: Path) -> None:
    corpus = load_corpus(str(notes))
    assert corpus.document_names == ("a.txt", "b.md", "sub/c.TXT")
    assert corpus.text() == "Ay.\n\n# Bee\n\n\nSea ✓"
    assert corpus.text(separator="|") == "Ay.|# Bee\n|Sea ✓"


def test_local_glob_takes_the_matches(notes: Path) -> None:
    corpus = load_corpus(str(notes / "*.md"))
    assert list(corpus.documents()) == [Document(str(notes / "b.md"), "# Bee\n")]
    recursive = load_corpus(str(notes / "**" / "*.[tT][xX][tT]"))
    assert [Path(name).name for name in recursive.document_names] == ["a.txt", "c.TXT"]


def test_invalid_utf8_names_the_file_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait".encode("latin-1"))  # é is the single byte 0xe9 at offset 3
    with pytest.raises(CorpusError) as raised:
        load_corpus(path).text()
    assert "latin1.txt" in str(raised.value)
    assert "byte offset 3" in str(raised.value)
    assert load_corpus(path, errors="replace").text() == "caf\ufffd au lait"


@settings(max_examples=30, deadline=None)
@given(text=st.text(min_size=1))
def test_local_file_round_trips_any_text(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("round_trip") / "any.txt"
    path.write_bytes(text.encode("utf-8"))
    assert load_corpus(path).text() == text  # bytes as they are: no newline or BOM changes


def test_missing_path_and_unknown_name_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no file or directory"):
        load_corpus(tmp_path / "nowhere.txt")
    with pytest.raises(CorpusError) as raised:
        load_corpus("the-verdikt")
    assert "'the-verdikt'" in str(raised.value)
    for info in list_corpora():
        assert info.name in str(raised.value)


def test_empty_directory_glob_or_files_raise(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="holds no .txt or .md files"):
        load_corpus(tmp_path / "empty")
    with pytest.raises(CorpusError, match="matches no files"):
        load_corpus(str(tmp_path / "empty" / "*.md"))
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "one.txt").write_text("")
    with pytest.raises(CorpusError, match="empty"):
        load_corpus(tmp_path / "blank")


def test_errors_must_be_strict_or_replace(notes: Path) -> None:
    with pytest.raises(CorpusError, match="'ignore'"):
        load_corpus(notes, errors="ignore")  # type: ignore[arg-type]


# --- datasets: a checksummed file inside a zip, from a local server ----------------------------

SMS_SPAM_SHA256 = "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def sms_bytes(shared_data: Path) -> bytes:
    return (shared_data / "SMSSpamCollection").read_bytes()


def serve_sms_spam_from(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    remote = dataclasses.replace(corpora.DATASETS["sms-spam"], url=url)
    monkeypatch.setitem(corpora.DATASETS, "sms-spam", remote)


def test_sms_spam_is_extracted_from_its_zip_verified_and_cached(
    server: LocalServer, cache: Path, sms_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the UCI archive holds the data and a readme
    server.routes["/sms.zip"] = Route(zip_of({"SMSSpamCollection": sms_bytes, "readme": b"hi"}))
    serve_sms_spam_from(monkeypatch, server.url("/sms.zip"))
    assert {info.name: info.cached for info in corpora.list_datasets()}["sms-spam"] is False

    path = corpora.dataset_path("sms-spam")
    assert path == cache / "SMSSpamCollection"
    assert cache_contents(cache) == [path], "only the member stays; the zip is gone"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SMS_SPAM_SHA256
    assert {info.name: info.cached for info in corpora.list_datasets()}["sms-spam"] is True

    assert corpora.dataset_path("sms-spam") == path
    assert server.requests == ["/sms.zip"], "the second call must come from the cache"
    path.write_bytes(sms_bytes[:1000])  # an edited copy is fetched again
    assert corpora.dataset_path("sms-spam").read_bytes() == sms_bytes
    assert server.requests == ["/sms.zip", "/sms.zip"]


def test_sms_spam_registry_entry_is_the_uci_archive() -> None:
    remote = corpora.DATASETS["sms-spam"]
    assert remote.url == "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
    assert (remote.member, remote.sha256) == ("SMSSpamCollection", SMS_SPAM_SHA256)


def test_zip_member_with_a_wrong_checksum_raises_and_leaves_nothing(
    server: LocalServer, cache: Path, sms_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    altered = sms_bytes.replace(b"jurong", b"jurung", 1)
    server.routes["/sms.zip"] = Route(zip_of({"SMSSpamCollection": altered}))
    serve_sms_spam_from(monkeypatch, server.url("/sms.zip"))
    with pytest.raises(DownloadError) as raised:
        corpora.dataset_path("sms-spam")
    message = str(raised.value)
    assert SMS_SPAM_SHA256 in message and hashlib.sha256(altered).hexdigest() in message
    assert "'SMSSpamCollection'" in message and server.url("/sms.zip") in message
    assert cache_contents(cache) == []


def test_cut_off_zip_raises_and_leaves_nothing(
    server: LocalServer, cache: Path, sms_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = zip_of({"SMSSpamCollection": sms_bytes})
    server.routes["/sms.zip"] = Route(archive[:4000], declared_length=len(archive))
    serve_sms_spam_from(monkeypatch, server.url("/sms.zip"))
    with pytest.raises(DownloadError, match=f"cut off: 4,000 of {len(archive):,} bytes"):
        corpora.dataset_path("sms-spam")
    assert cache_contents(cache) == []


def test_zip_without_the_member_or_not_a_zip_raises_and_leaves_nothing(
    server: LocalServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/other.zip"] = Route(zip_of({"readme": b"moved", "data/spam.csv": b"x"}))
    serve_sms_spam_from(monkeypatch, server.url("/other.zip"))
    with pytest.raises(DownloadError, match="has no file 'SMSSpamCollection'") as raised:
        corpora.dataset_path("sms-spam")
    assert "'readme', 'data/spam.csv'" in str(raised.value)  # what the archive holds instead
    assert "yourself" in str(raised.value)
    assert cache_contents(cache) == []

    server.routes["/page.zip"] = Route(b"<html>moved</html>")  # an error page served as 200
    serve_sms_spam_from(monkeypatch, server.url("/page.zip"))
    with pytest.raises(DownloadError, match="did not give a readable zip archive"):
        corpora.dataset_path("sms-spam")
    assert cache_contents(cache) == []


def test_unknown_dataset_names_the_known_ones() -> None:
    with pytest.raises(CorpusError, match="no dataset named 'sms'; named datasets are sms-spam"):
        corpora.dataset_path("sms")


# --- datasets: plain checksummed files (the instruction data) ----------------------------------

INSTRUCTION_FILES = {
    "instruction-data": (
        "instruction-data.json",
        "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
        "ch07/01_main-chapter-code/instruction-data.json",
    ),
    "instruction-preference": (
        "instruction-data-with-preference.json",
        "305315abf14f65fa42c01a0877572f832606571c2a7d49f152ac1d758b16756e",
        "ch07/04_preference-tuning-with-dpo/instruction-data-with-preference.json",
    ),
}


def test_instruction_registry_entries_are_the_walkthroughs_files() -> None:
    for name, (filename, sha256, path) in INSTRUCTION_FILES.items():
        remote = corpora.DATASETS[name]
        assert isinstance(remote, corpora.RemoteText)  # a plain file, not a zip member
        assert (
            remote.url == f"https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/{path}"
        )
        assert (remote.filename, remote.sha256) == (filename, sha256)


@pytest.mark.parametrize("name", list(INSTRUCTION_FILES))
def test_instruction_datasets_download_verify_and_cache(
    name: str,
    server: LocalServer,
    cache: Path,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    filename, sha256, _ = INSTRUCTION_FILES[name]
    data = (shared_data / filename).read_bytes()
    server.routes["/data.json"] = Route(data)
    monkeypatch.setitem(
        corpora.DATASETS, name, dataclasses.replace(corpora.DATASETS[name], url=server.url("/d"))
    )
    with pytest.raises(DownloadError, match="HTTP 404"):  # a wrong URL: one clear line
        corpora.dataset_path(name)
    assert cache_contents(cache) == []
    monkeypatch.setitem(
        corpora.DATASETS,
        name,
        dataclasses.replace(corpora.DATASETS[name], url=server.url("/data.json")),
    )
    assert {info.name: info.cached for info in corpora.list_datasets()}[name] is False
    path = corpora.dataset_path(name)
    assert path == cache / filename and hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    assert cache_contents(cache) == [path]
    assert {info.name: info.cached for info in corpora.list_datasets()}[name] is True
    assert corpora.dataset_path(name) == path
    assert server.requests == ["/d", "/data.json"], "the second call must come from the cache"

    path.write_bytes(data[:100])  # a truncated copy is fetched again
    assert corpora.dataset_path(name).read_bytes() == data
    server.routes["/data.json"] = Route(data.replace(b"instruction", b"Instruction", 1))
    path.unlink()
    with pytest.raises(DownloadError, match=f"expected sha256 {sha256}"):
        corpora.dataset_path(name)
    assert cache_contents(cache) == []
