"""Atomic file writes: nothing a user has is ever left half-written.

Every file scratchllm produces is written to a temporary file in the destination folder and
renamed into place only once complete, so an interrupted run leaves either the old file or the
new one, never a truncated mix.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


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
