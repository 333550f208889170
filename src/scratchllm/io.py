"""Atomic file writes: nothing a user has is ever left half-written; and reading a user's
text file with one clear error for each way it can be wrong.

Every file scratchllm produces is written to a temporary file in the destination folder and
renamed into place only once complete, so an interrupted run leaves either the old file or the
new one, never a truncated mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing; it appears only if the ``with`` block succeeds."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        yield handle


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file name beside ``path``, for writers that take a name rather than a handle
    (``safetensors.torch.save_file`` writes a large file straight from the tensors, with no
    copy of it in memory); once the block succeeds the file is synced to disk and renamed
    to ``path``, otherwise removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        with open(tmp_name, "rb+") as handle:  # whatever wrote it has closed it
            os.fsync(handle.fileno())
        # mkstemp creates the file private (0600); give it the permissions a plain open() would
        os.chmod(tmp_name, 0o666 & ~_current_umask())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _current_umask() -> int:
    mask = os.umask(0)  # the only portable way to read the umask is to set it and restore it
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_user_text(path: Path, error: type[Exception], *, missing: str) -> str:
    """The UTF-8 text of a file a user named (a byte-order mark dropped), or one ``error`` line:
    no such file (with the hint ``missing``), unreadable, or not UTF-8 (with the line)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"no file at {path.absolute()}; {missing}") from None
    except OSError as problem:  # a folder, no permission, ...
        raise error(f"cannot read {path}: {problem.strerror or problem}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = data.count(b"\n", 0, problem.start) + 1
        raise error(
            f"{path} is not valid UTF-8: byte {data[problem.start]:#04x} on line {line} (byte "
            f"offset {problem.start}); save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def read_user_json(path: Path, error: type[Exception], *, missing: str) -> Any:
    """The JSON value of a file a user named, or one ``error`` line (``read_user_text``'s, or
    where the JSON breaks)."""
    text = read_user_text(path, error, missing=missing)
    try:
        return json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(
            f"{path} is not JSON (line {problem.lineno}, column {problem.colno}: {problem.msg})"
        ) from None
