"""Corpora: the text we train tokenizers and models on, as a sequence of named documents.

``load_corpus(spec)`` resolves ``spec`` to a ``Corpus``:

- an **embedded** corpus, taken from the running interpreter, so it works offline everywhere:
  ``python-docs`` (the prose of Python's documentation topics, the default) and
  ``python-stdlib`` (the standard library's ``.py`` sources, tests excluded, about 12 MB);
- a **downloaded** corpus (``the-verdict``): fetched once from its public URL, checked against
  its pinned SHA-256 and kept in ``cache_dir()``;
- a **local** text file, a directory (its ``.txt`` and ``.md`` files, recursively, hidden ones
  skipped) or a glob (``"notes/*.md"``, taken as matched), one document per file.

Named **datasets** (``DATASETS``) are files rather than text, each read by the task that uses
it: ``sms-spam``, the labelled messages of classification finetuning (``finetune/labelled.py``),
and ``instruction-data`` / ``instruction-preference``, the walkthrough's 1,100 Alpaca-format
instructions without and with preferred and rejected answers (``finetune/instructions.py``).
``dataset_path(name)`` downloads one the same way as a corpus (a plain file, or a file inside
a zip: the zip is fetched, the member extracted and checked against its pinned SHA-256) and
returns its path in the cache.

Documents come in a fixed order (sorted names), so the same spec always gives the same text.
Local files must be UTF-8 unless ``errors="replace"``; their bytes are decoded as they are
(no newline translation, no BOM stripping), so a document is exactly its file.

Example::

    >>> corpus = load_corpus("python-docs")
    >>> len(corpus) > 50, next(corpus.documents()).name
    (True, 'assert')
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import os
import sys
import sysconfig
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from tqdm import tqdm

from scratchllm.config import DEFAULT_CORPUS as DEFAULT_CORPUS
from scratchllm.errors import CorpusError, DownloadError
from scratchllm.io import atomic_writer

TEXT_SUFFIXES = (".txt", ".md")  # what a directory contributes; a file or a glob is taken as given
# Directories of the standard library that hold tests or third-party code, not the library itself.
_STDLIB_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})
_DOWNLOAD_TIMEOUT_S = 30
_CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Document:
    """One unit of text: a documentation topic, a source file, a text file."""

    name: str  # topic key, relative path, or file path
    text: str


@dataclass(frozen=True)
class Corpus:
    """Named documents in a fixed order, read lazily: ``documents()`` starts over on each call."""

    name: str  # the corpus name ("python-docs") or the path the user gave
    description: str
    document_names: tuple[str, ...]
    read_document: Callable[[str], str] = field(repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.document_names)

    def documents(self) -> Iterator[Document]:
        for name in self.document_names:
            yield Document(name, self.read_document(name))

    def text(self, separator: str = "\n\n") -> str:
        """All documents joined by ``separator``."""
        return separator.join(document.text for document in self.documents())


@dataclass(frozen=True)
class RemoteText:
    """A text file published at a URL, pinned by its SHA-256 and cached under ``filename``."""

    description: str
    url: str
    sha256: str
    filename: str


@dataclass(frozen=True)
class RemoteZipMember:
    """A file inside a zip archive published at a URL. The archive itself is not pinned (its
    publisher may re-pack it); the member is, by its SHA-256. Cached under ``filename``."""

    description: str
    url: str  # of the zip archive
    member: str  # the file's name inside the archive
    sha256: str  # of the extracted member
    filename: str


@dataclass(frozen=True)
class CorpusInfo:
    """What ``list_corpora`` says about one named corpus."""

    name: str
    description: str
    source: Literal["embedded", "download"]
    url: str | None = None  # downloads only, like the two fields below
    sha256: str | None = None
    cached: bool | None = None  # whether the file is in the cache directory now


# Downloadable corpora by name. Tests point a URL at a local server by replacing an entry.
DOWNLOADS: dict[str, RemoteText] = {
    "the-verdict": RemoteText(
        description=(
            "Edith Wharton's short story 'The Verdict' (1908, public domain; 20,479 characters), "
            "the text the classic from-scratch walkthrough trains on; downloaded once, cached"
        ),
        url=(
            "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
            "ch02/01_main-chapter-code/the-verdict.txt"
        ),
        sha256="b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
        filename="the-verdict.txt",
    ),
}


# Downloadable datasets by name: files a task reads in its own format (finetune/labelled.py,
# finetune/instructions.py), not text corpora. Tests point a URL at a local server by replacing
# an entry.
DATASETS: dict[str, RemoteText | RemoteZipMember] = {
    "sms-spam": RemoteZipMember(
        description=(
            "the SMS Spam Collection (Almeida & Hidalgo, UCI, CC BY 4.0): 5,574 text messages "
            "labelled ham or spam, the walkthrough's classification data; downloaded once, cached"
        ),
        url="https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
        member="SMSSpamCollection",
        sha256="7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
        filename="SMSSpamCollection",
    ),
    "instruction-data": RemoteText(
        description=(
            "1,100 instruction/input/output examples in the Alpaca format, the walkthrough's "
            "instruction-finetuning data (chapter 7); downloaded once, cached"
        ),
        url=(
            "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
            "ch07/01_main-chapter-code/instruction-data.json"
        ),
        sha256="7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
        filename="instruction-data.json",
    ),
    "instruction-preference": RemoteText(
        description=(
            "the same 1,100 instructions, each with a 'chosen' and a 'rejected' answer, the "
            "walkthrough's preference-tuning (DPO) data; downloaded once, cached"
        ),
        url=(
            "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
            "ch07/04_preference-tuning-with-dpo/instruction-data-with-preference.json"
        ),
        sha256="305315abf14f65fa42c01a0877572f832606571c2a7d49f152ac1d758b16756e",
        filename="instruction-data-with-preference.json",
    ),
}


def cache_dir() -> Path:
    """Where downloads are kept (not created here).

    ``$SCRATCHLLM_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/scratchllm`` (when that is an
    absolute path, as the XDG spec requires), else ``~/.cache/scratchllm``.
    """
    if override := os.environ.get("SCRATCHLLM_CACHE_DIR"):
        return Path(override).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg_cache) if os.path.isabs(xdg_cache) else Path.home() / ".cache"
    return base / "scratchllm"


def download(url: str, destination: Path, *, sha256: str, show_progress: bool = True) -> Path:
    """Fetch ``url`` into ``destination``, which appears only once complete and verified.

    The bytes stream into a temporary file next to ``destination``; a cut-off transfer or a
    checksum mismatch raises ``DownloadError`` and leaves no file behind (old or partial).
    """
    destination = Path(destination)
    hint = (
        f"download {url} yourself and save it as {destination}, or pass the path of your copy "
        "instead of the name"
    )
    _create_parent(destination)
    # atomic_writer deletes its temporary file when anything below raises.
    with _download_errors(url, hint), atomic_writer(destination) as handle:
        digest = _fetch(url, handle, hint=hint, label=destination.name, progress=show_progress)
        _check_sha256(url, expected=sha256, actual=digest, hint=hint)
    return destination


def download_zip_member(
    url: str, member: str, destination: Path, *, sha256: str, show_progress: bool = True
) -> Path:
    """Fetch the zip archive at ``url`` and save its file ``member`` as ``destination``.

    The member, not the archive, is checked against ``sha256``. The archive lives only in an
    anonymous temporary file, and ``destination`` appears only once extracted and verified: a
    cut-off transfer, a file that is not a zip, an archive without ``member`` or a checksum
    mismatch raises ``DownloadError`` and leaves nothing behind.
    """
    destination = Path(destination)
    hint = f"download {url} yourself, extract its file {member!r} and save that as {destination}"
    _create_parent(destination)
    with (
        _download_errors(url, hint),
        tempfile.TemporaryFile(dir=destination.parent, prefix=f".{destination.name}.") as archive,
    ):
        _fetch(url, archive, hint=hint, label=f"{destination.name} (zip)", progress=show_progress)
        archive.seek(0)
        try:
            with zipfile.ZipFile(archive) as zip_file:
                try:
                    info = zip_file.getinfo(member)
                except KeyError:
                    names = ", ".join(repr(name) for name in zip_file.namelist()[:10]) or "nothing"
                    raise DownloadError(
                        f"the zip archive at {url} has no file {member!r} (it holds {names}); "
                        f"the archive may have changed upstream, so {hint} after checking it"
                    ) from None
                with atomic_writer(destination) as handle, zip_file.open(info) as source:
                    digest = hashlib.sha256()
                    while chunk := source.read(_CHUNK_BYTES):
                        handle.write(chunk)
                        digest.update(chunk)
                    what = f"the file {member!r} in {url}"
                    _check_sha256(what, expected=sha256, actual=digest.hexdigest(), hint=hint)
        except (zipfile.BadZipFile, NotImplementedError, EOFError, zlib.error) as error:
            raise DownloadError(
                f"{url} did not give a readable zip archive ({error}); try again, or {hint}"
            ) from None
    return destination


def _create_parent(destination: Path) -> None:
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(
            f"cannot create the cache directory {destination.parent} ({error}); "
            "set SCRATCHLLM_CACHE_DIR to a writable folder"
        ) from None


@contextlib.contextmanager
def _download_errors(url: str, hint: str) -> Iterator[None]:
    """Turn what a transfer can raise (HTTP errors, refused connections, timeouts, resets, a
    full disk) into one ``DownloadError`` naming ``url`` and what to do instead."""
    try:
        yield
    except urllib.error.HTTPError as error:
        raise DownloadError(
            f"cannot download {url}: HTTP {error.code} {error.reason}; {hint}"
        ) from None
    except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets
        reason = getattr(error, "reason", None) or error
        raise DownloadError(f"cannot download {url}: {reason}; {hint}") from None


def _fetch(url: str, handle: BinaryIO, *, hint: str, label: str, progress: bool) -> str:
    """Stream ``url`` into ``handle``; returns the SHA-256 of what arrived. A transfer shorter
    than its announced ``Content-Length`` raises ``DownloadError``."""
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        expected_bytes = _content_length(response.headers.get("Content-Length"))
        digest = hashlib.sha256()
        received = 0
        with tqdm(
            total=expected_bytes,
            unit="B",
            unit_scale=True,
            desc=label,
            disable=not (progress and sys.stderr.isatty()),
        ) as progress_bar:
            while chunk := response.read(_CHUNK_BYTES):
                handle.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                progress_bar.update(len(chunk))
    if expected_bytes is not None and received != expected_bytes:
        raise DownloadError(
            f"download of {url} was cut off: {received:,} of {expected_bytes:,} bytes "
            f"arrived; try again, or {hint}"
        )
    return digest.hexdigest()


def _check_sha256(what: str, *, expected: str, actual: str, hint: str) -> None:
    if actual != expected:
        raise DownloadError(
            f"{what} does not match its checksum: expected sha256 {expected}, "
            f"got {actual}; the file may have changed upstream, so {hint} "
            "after checking it"
        )


def _content_length(header: str | None) -> int | None:
    """The announced size, or None when absent or unreadable.

    >>> _content_length("20479"), _content_length(None), _content_length("lots")
    (20479, None, None)
    """
    try:
        return int(header) if header is not None else None
    except ValueError:
        return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _read_text(path: Path, errors: Literal["strict", "replace"]) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorpusError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"{path} is not valid UTF-8: byte {data[error.start]:#04x} at byte offset "
            f"{error.start}; convert the file to UTF-8, or load it with errors='replace' to "
            "turn undecodable bytes into U+FFFD"
        ) from None


def _files_corpus(
    name: str, description: str, files: dict[str, Path], errors: Literal["strict", "replace"]
) -> Corpus:
    """A corpus of one document per file, named by the keys of ``files`` in their order."""
    return Corpus(name, description, tuple(files), lambda key: _read_text(files[key], errors))


def _python_docs() -> Corpus:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise CorpusError(
            "this Python has no pydoc_data module, so the python-docs corpus is unavailable; "
            "use another corpus (see `scratchllm corpora`) or pass a text file"
        ) from None
    description = f"the prose of Python {sys.version.split()[0]}'s documentation topics"
    return Corpus("python-docs", description, tuple(sorted(topics)), topics.__getitem__)


def _python_stdlib() -> Corpus:
    root = Path(sysconfig.get_paths()["stdlib"])
    files: dict[str, Path] = {}
    for directory, subdirectories, filenames in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d not in _STDLIB_EXCLUDED_DIRS]
        for filename in filenames:
            if filename.endswith(".py") and not filename.startswith("test_"):
                path = Path(directory, filename)
                files[path.relative_to(root).as_posix()] = path
    if not files:
        raise CorpusError(
            f"found no standard-library sources under {root} (this Python ships them zipped or "
            "not at all); use python-docs or pass a text file"
        )
    # Stdlib sources are UTF-8 (PEP 3120); should one not be, a U+FFFD in its place is harmless
    # for training and keeps the document list fixed, so the corpus never fails halfway.
    description = f"the standard-library sources of Python {sys.version.split()[0]} at {root}"
    return _files_corpus("python-stdlib", description, dict(sorted(files.items())), "replace")


_EMBEDDED: dict[str, tuple[str, Callable[[], Corpus]]] = {
    "python-docs": (
        "the prose of the running Python's documentation topics, one document per topic; offline",
        _python_docs,
    ),
    "python-stdlib": (
        "the running Python's standard-library .py sources, tests excluded (about 12 MB); offline",
        _python_stdlib,
    ),
}


def list_corpora() -> list[CorpusInfo]:
    """The named corpora ``load_corpus`` accepts, embedded ones first."""
    infos = [CorpusInfo(name, text, "embedded") for name, (text, _) in _EMBEDDED.items()]
    for name, remote in DOWNLOADS.items():
        cached = (cache_dir() / remote.filename).is_file()
        infos.append(
            CorpusInfo(name, remote.description, "download", remote.url, remote.sha256, cached)
        )
    return infos


def _downloaded_corpus(name: str, remote: RemoteText) -> Corpus:
    path = cache_dir() / remote.filename
    # Re-hashing is cheap next to a download and catches a cached file edited or replaced since.
    if not (path.is_file() and _file_sha256(path) == remote.sha256):
        download(remote.url, path, sha256=remote.sha256)
    return _files_corpus(name, remote.description, {remote.filename: path}, "strict")


def list_datasets() -> list[CorpusInfo]:
    """The named datasets ``dataset_path`` accepts (``DATASETS``)."""
    return [
        CorpusInfo(
            name,
            remote.description,
            "download",
            remote.url,
            remote.sha256,
            (cache_dir() / remote.filename).is_file(),
        )
        for name, remote in DATASETS.items()
    ]


def dataset_path(name: str) -> Path:
    """The cached file of the named dataset, downloaded and checked first if it is missing or
    does not match its SHA-256 (an edited or truncated copy is fetched again)."""
    try:
        remote = DATASETS[name]
    except KeyError:
        raise CorpusError(
            f"no dataset named {name!r}; named datasets are {', '.join(DATASETS)}"
        ) from None
    path = cache_dir() / remote.filename
    if not (path.is_file() and _file_sha256(path) == remote.sha256):
        if isinstance(remote, RemoteZipMember):
            download_zip_member(remote.url, remote.member, path, sha256=remote.sha256)
        else:
            download(remote.url, path, sha256=remote.sha256)
    return path


def _local_files(spec: str) -> dict[str, Path]:
    """The files ``spec`` names, keyed by document name, in sorted order."""
    path = Path(spec).expanduser()
    if path.is_file():
        return {spec: path}
    if path.is_dir():
        found = {}
        for candidate in path.rglob("*"):
            relative = candidate.relative_to(path)
            hidden = any(part.startswith(".") for part in relative.parts)  # .git, .venv, ...
            if candidate.suffix.lower() in TEXT_SUFFIXES and not hidden and candidate.is_file():
                found[relative.as_posix()] = candidate
        if not found:
            raise CorpusError(
                f"directory {spec} holds no {' or '.join(TEXT_SUFFIXES)} files; add some, or pass "
                "a file or a glob such as 'notes/*.rst'"
            )
        return dict(sorted(found.items()))
    if glob.has_magic(spec):
        matches = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
        found = {match: Path(match) for match in matches if Path(match).is_file()}
        if not found:
            raise CorpusError(f"glob {spec!r} matches no files; check the pattern and folder")
        return found
    named = ", ".join(info.name for info in list_corpora())
    raise CorpusError(
        f"no corpus named {spec!r} and no file or directory at {path.absolute()}; named corpora "
        f"are {named}; or pass a text file, a directory of .txt/.md files, or a glob"
    )


def load_corpus(
    spec: str | os.PathLike[str], *, errors: Literal["strict", "replace"] = "strict"
) -> Corpus:
    """Resolve a corpus name, file, directory or glob (see the module docstring).

    A string that is a corpus name wins over a same-named path; write ``./the-verdict`` (or
    pass a ``Path``) for the path. ``errors`` applies to local files only.
    """
    if errors not in ("strict", "replace"):
        raise CorpusError(f"errors must be 'strict' or 'replace', not {errors!r}")
    if isinstance(spec, str) and spec in _EMBEDDED:
        return _EMBEDDED[spec][1]()
    if isinstance(spec, str) and spec in DOWNLOADS:
        return _downloaded_corpus(spec, DOWNLOADS[spec])
    text_spec = os.fspath(spec)
    files = _local_files(text_spec)
    if sum(path.stat().st_size for path in files.values()) == 0:
        raise CorpusError(f"{text_spec}: all {len(files)} file(s) are empty; add some text")
    count = f"{len(files)} file" + ("s" if len(files) != 1 else "")
    return _files_corpus(text_spec, f"{count} from {text_spec}", files, errors)
