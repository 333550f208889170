"""Token files: a 64-byte header followed by the raw token ids, read back through ``numpy.memmap``.

A prepared corpus is a long stream of token ids. Storing it as raw little-endian integers lets
training read any window straight from disk (the operating system pages it in on demand), so a
corpus larger than memory costs nothing until it is used. The header says what the bytes are:

======  =====  ============================================================================
offset  size   field
======  =====  ============================================================================
0       8      magic ``b"SCRLLMTK"``: "this is a scratchllm token file"
8       4      format version (``FORMAT_VERSION``)
12      4      dtype code: 1 = uint16 (vocab_size <= 65,536), 2 = uint32
16      8      token count
24      8      vocabulary size of the tokenizer that wrote the file
32      16     that tokenizer's fingerprint, 16 ASCII hex digits
48      16     zero padding, room for later fields
======  =====  ============================================================================

All integers are little-endian. The tokens start at byte 64, so a ``uint32`` array is aligned.
The fingerprint is why a file is never read with a tokenizer other than the one that wrote it:
the ids would still be valid integers, but they would mean different text.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchllm.errors import DataFormatError
from scratchllm.io import atomic_writer

MAGIC = b"SCRLLMTK"
FORMAT_VERSION = 1
HEADER_SIZE = 64

# magic, version, dtype code, token count, vocab size, fingerprint, padding up to 64 bytes
_HEADER_STRUCT = struct.Struct("<8sIIQQ16s16x")
assert _HEADER_STRUCT.size == HEADER_SIZE

# the on-disk dtype codes; little-endian explicitly so files move between machines
_DTYPES: dict[int, np.dtype] = {1: np.dtype("<u2"), 2: np.dtype("<u4")}
_DTYPE_CODES = {dtype: code for code, dtype in _DTYPES.items()}

_FINGERPRINT_LENGTH = 16
_HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class TokenFileHeader:
    """What the 64-byte header of a token file says."""

    version: int
    dtype: np.dtype
    count: int
    vocab_size: int
    fingerprint: str


@dataclass(frozen=True)
class TokenFile:
    """A token file opened for reading: its header and its ids as a read-only memmap.

    ``tokens`` is a ``numpy.memmap`` (a plain empty array when the file holds no tokens, since
    an empty range cannot be mapped); slicing it reads only the pages the slice touches.
    """

    path: Path
    header: TokenFileHeader
    tokens: np.ndarray

    def __len__(self) -> int:
        return self.header.count


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id below ``vocab_size``.

    >>> token_dtype(50_257)
    dtype('uint16')
    >>> token_dtype(65_537)
    dtype('uint32')
    """
    if not 1 <= vocab_size <= 2**32:
        raise ValueError(f"vocab_size must be between 1 and 2**32, got {vocab_size}")
    # ids run from 0 to vocab_size - 1, so a vocabulary of exactly 65,536 still fits in uint16
    return _DTYPES[1] if vocab_size <= 2**16 else _DTYPES[2]


def write_tokens(
    path: str | os.PathLike[str],
    tokens: Sequence[int] | np.ndarray,
    *,
    vocab_size: int,
    fingerprint: str,
) -> TokenFileHeader:
    """Write ``tokens`` to ``path`` atomically, with a header; returns the header written.

    Raises ``ValueError`` if an id is negative or not below ``vocab_size`` (the tokens do not
    belong to that tokenizer) or if ``fingerprint`` is not 16 lowercase hex digits.
    """
    dtype = token_dtype(vocab_size)
    if len(fingerprint) != _FINGERPRINT_LENGTH or not set(fingerprint) <= _HEX_DIGITS:
        raise ValueError(f"fingerprint must be 16 lowercase hex digits, got {fingerprint!r}")
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise ValueError(f"tokens must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        array = array.astype(dtype)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"tokens must be integers, got dtype {array.dtype}")
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"token id {bad} is outside the vocabulary 0..{vocab_size - 1}; "
                "the tokens were not made by this tokenizer"
            )
    header = TokenFileHeader(
        version=FORMAT_VERSION,
        dtype=dtype,
        count=int(array.size),
        vocab_size=vocab_size,
        fingerprint=fingerprint,
    )
    packed = _HEADER_STRUCT.pack(
        MAGIC, FORMAT_VERSION, _DTYPE_CODES[dtype], header.count, vocab_size, fingerprint.encode()
    )
    with atomic_writer(path) as handle:
        handle.write(packed)
        # the range check above makes this cast lossless; memoryview avoids a bytes copy
        handle.write(memoryview(np.ascontiguousarray(array, dtype=dtype)))
    return header


def read_header(path: str | os.PathLike[str]) -> TokenFileHeader:
    """Read and check the header of the token file at ``path`` (magic, version, size)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(
            f"no token file at {path}; run `scratchllm prepare` to make one, or check the path"
        )
    size = path.stat().st_size
    with path.open("rb") as handle:
        raw = handle.read(HEADER_SIZE)
    if len(raw) < len(MAGIC) or raw[: len(MAGIC)] != MAGIC:
        raise DataFormatError(
            f"{path} is not a scratchllm token file (it does not start with {MAGIC!r}); "
            "make token files with `scratchllm prepare`"
        )
    if len(raw) < HEADER_SIZE:
        raise DataFormatError(
            f"{path} is truncated: {size} bytes, shorter than the {HEADER_SIZE}-byte header; "
            "re-run `scratchllm prepare`"
        )
    _, version, dtype_code, count, vocab_size, fingerprint = _HEADER_STRUCT.unpack(raw)
    if version != FORMAT_VERSION:
        raise DataFormatError(
            f"{path} uses token-file format version {version}, but this scratchllm reads version "
            f"{FORMAT_VERSION}; re-run `scratchllm prepare` with this version"
        )
    if dtype_code not in _DTYPES:
        raise DataFormatError(
            f"{path} has an unknown dtype code {dtype_code} (expected one of {sorted(_DTYPES)}); "
            "the file is corrupt, re-run `scratchllm prepare`"
        )
    dtype = _DTYPES[dtype_code]
    expected = HEADER_SIZE + count * dtype.itemsize
    if size != expected:
        raise DataFormatError(
            f"{path} is truncated or corrupt: its header promises {count:,} tokens "
            f"({expected:,} bytes) but the file has {size:,} bytes; re-run `scratchllm prepare`"
        )
    return TokenFileHeader(
        version=version,
        dtype=dtype,
        count=count,
        vocab_size=vocab_size,
        fingerprint=fingerprint.decode("ascii", errors="replace"),
    )


def read_tokens(
    path: str | os.PathLike[str], *, expected_fingerprint: str | None = None
) -> TokenFile:
    """Open the token file at ``path`` as a read-only memmap after checking its header.

    With ``expected_fingerprint`` (``tokenizer.fingerprint``), a file written by another
    tokenizer is refused instead of silently yielding ids that mean different text.
    """
    path = Path(path)
    header = read_header(path)
    if expected_fingerprint is not None and header.fingerprint != expected_fingerprint:
        raise DataFormatError(
            f"{path} was made with tokenizer {header.fingerprint}, you passed tokenizer "
            f"{expected_fingerprint}; re-run `scratchllm prepare` with this tokenizer"
        )
    if header.count == 0:
        tokens: np.ndarray = np.empty(0, dtype=header.dtype)
    else:
        tokens = np.memmap(
            path, dtype=header.dtype, mode="r", offset=HEADER_SIZE, shape=(header.count,)
        )
    return TokenFile(path=path, header=header, tokens=tokens)
