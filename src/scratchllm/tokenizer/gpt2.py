"""GPT-2's vocabulary in its two file formats, and the tiktoken-backed production tokenizer.

GPT-2's byte-level BPE ships in two equivalent forms, both read here (and checked against
each other by the tests):

- **tiktoken's ranks file** (``gpt2.tiktoken`` / ``r50k_base.tiktoken``): one line per token,
  ``base64(token bytes) rank``; 50,256 lines.
- **OpenAI's original pair** ``encoder.json`` (token spelled in GPT-2's printable byte alphabet
  -> id) and ``vocab.bpe`` (the 50,000 merges in rank order, one ``"left right"`` per line).

Both give the same ranks; ``<|endoftext|>`` is id 50256 and the pre-tokenisation is GPT-2's
pattern. ``load_gpt2_tiktoken`` / ``load_gpt2_bpe`` return our own ``BPETokenizer`` (useful to
read and to test); ``TiktokenTokenizer.gpt2()`` returns the same tokenizer running in tiktoken's
Rust core, the fast path for real data::

    tok = TiktokenTokenizer.gpt2()
    tok.encode("Hello, world")          # [15496, 11, 995]
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tiktoken

from scratchllm.errors import TokenizerError
from scratchllm.io import atomic_write_bytes
from scratchllm.tokenizer.base import ENDOFTEXT, Tokenizer, ranks_fingerprint_source
from scratchllm.tokenizer.bpe import BPETokenizer
from scratchllm.tokenizer.patterns import GPT2_PATTERN, unspell_bytes

GPT2_SPECIAL_TOKENS = {ENDOFTEXT: 50256}

#: the file names GPT-2's vocabulary goes by, for a directory passed as ``path``
TIKTOKEN_FILE = "gpt2.tiktoken"
ENCODER_FILE = "encoder.json"
MERGES_FILE = "vocab.bpe"


# ---- reading and writing the files ------------------------------------------------------------


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise TokenizerError(
            f"cannot read GPT-2 vocabulary file {path}: {error.strerror or error}"
        ) from None


def read_tiktoken_ranks(path: str | os.PathLike[str]) -> dict[bytes, int]:
    """Read a tiktoken ranks file: ``base64(token) rank`` per line."""
    return _parse_tiktoken_ranks(_read(path), path)


def _parse_tiktoken_ranks(content: bytes, path: str | os.PathLike[str]) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            encoded, rank = line.split()
            ranks[base64.b64decode(encoded, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise TokenizerError(
                f"{path} line {number} is not 'base64-token rank': {line[:60]!r}; "
                f"is this a .tiktoken ranks file?"
            ) from None
    if not ranks:
        raise TokenizerError(f"{path} holds no tokens; expected a .tiktoken ranks file")
    return ranks


def write_tiktoken_ranks(path: str | os.PathLike[str], ranks: Mapping[bytes, int]) -> None:
    """Write ``ranks`` as a tiktoken ranks file (atomically)."""
    atomic_write_bytes(path, _tiktoken_file_bytes(ranks))


def _tiktoken_file_bytes(ranks: Mapping[bytes, int]) -> bytes:
    lines = (
        base64.b64encode(token) + b" " + str(rank).encode()
        for token, rank in sorted(ranks.items(), key=lambda item: item[1])
    )
    return b"".join(line + b"\n" for line in lines)


def read_gpt2_bpe_ranks(
    encoder_json: str | os.PathLike[str], vocab_bpe: str | os.PathLike[str]
) -> dict[bytes, int]:
    """Read OpenAI's ``encoder.json`` + ``vocab.bpe`` and check that they agree."""
    try:
        encoder = json.loads(_read(encoder_json))
        if not isinstance(encoder, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as error:
        raise TokenizerError(f"{encoder_json} is not GPT-2's encoder.json: {error}") from None
    ranks: dict[bytes, int] = {}
    for spelled, id_ in encoder.items():
        if spelled in GPT2_SPECIAL_TOKENS:
            if id_ != GPT2_SPECIAL_TOKENS[spelled]:
                raise TokenizerError(f"{encoder_json} gives {spelled} the id {id_}, not 50256")
            continue
        try:
            ranks[unspell_bytes(spelled)] = id_
        except KeyError:
            raise TokenizerError(
                f"{encoder_json} holds {spelled!r}, which is not spelled in GPT-2's byte alphabet"
            ) from None

    try:
        lines = _read(vocab_bpe).decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise TokenizerError(f"{vocab_bpe} is not UTF-8 text: {error}") from None
    # the first line is a "#version: 0.2" header ("# #" further down is a real merge)
    start = 1 if lines and lines[0].startswith("#version") else 0
    merges = [(n, line) for n, line in enumerate(lines[start:], start + 1) if line]
    for rank, (number, line) in enumerate(merges, start=256):
        parts = line.split(" ")
        try:
            token = b"".join(unspell_bytes(part) for part in parts)
        except KeyError:
            token = b""
        if len(parts) != 2 or not token:
            raise TokenizerError(f"{vocab_bpe} line {number} is not a merge 'A B': {line!r}")
        # tiktoken ranks by merge order, so the i-th merge must make the token of id 256 + i
        if ranks.get(token) != rank:
            raise TokenizerError(
                f"{vocab_bpe} line {number} makes {line!r} the token of rank {rank}, but "
                f"{encoder_json} gives it id {ranks.get(token)}; the two files do not match"
            )
    if len(merges) + 256 != len(ranks):
        raise TokenizerError(
            f"{encoder_json} has {len(ranks)} tokens but {vocab_bpe} has {len(merges)} merges "
            f"(expected {len(ranks) - 256}); the two files do not match"
        )
    return ranks


def read_gpt2_ranks(path: str | os.PathLike[str]) -> dict[bytes, int]:
    """GPT-2's ranks from a ``.tiktoken`` file or a directory holding either form."""
    path = Path(path)
    if path.is_dir():
        if (path / ENCODER_FILE).is_file() and (path / MERGES_FILE).is_file():
            return read_gpt2_bpe_ranks(path / ENCODER_FILE, path / MERGES_FILE)
        if (path / TIKTOKEN_FILE).is_file():
            return read_tiktoken_ranks(path / TIKTOKEN_FILE)
        raise TokenizerError(
            f"{path} holds neither {ENCODER_FILE} + {MERGES_FILE} nor {TIKTOKEN_FILE}"
        )
    return read_tiktoken_ranks(path)


def load_gpt2_tiktoken(path: str | os.PathLike[str]) -> BPETokenizer:
    """GPT-2's tokenizer as our ``BPETokenizer``, from a ``gpt2.tiktoken`` ranks file."""
    return _gpt2_bpe(read_tiktoken_ranks(path), path)


def load_gpt2_bpe(
    encoder_json: str | os.PathLike[str], vocab_bpe: str | os.PathLike[str]
) -> BPETokenizer:
    """GPT-2's tokenizer as our ``BPETokenizer``, from ``encoder.json`` and ``vocab.bpe``."""
    return _gpt2_bpe(read_gpt2_bpe_ranks(encoder_json, vocab_bpe), encoder_json)


def _gpt2_bpe(ranks: dict[bytes, int], source: str | os.PathLike[str]) -> BPETokenizer:
    try:
        return BPETokenizer(ranks, pattern=GPT2_PATTERN, special_tokens=GPT2_SPECIAL_TOKENS)
    except TokenizerError as error:
        raise TokenizerError(f"{source} is not a GPT-2 vocabulary: {error}") from None


# ---- the tiktoken fast path ---------------------------------------------------------------------


class TiktokenTokenizer(Tokenizer):
    """A ``tiktoken.Encoding`` behind our ``Tokenizer`` interface (GPT-2's, usually).

    ``encode`` is the base class's (same special-token errors as every tokenizer here); the
    ordinary encoding and decoding run in tiktoken. ``save`` writes the ranks next to
    ``tokenizer.json`` as ``ranks.tiktoken`` so that a saved directory loads with no network.
    """

    type_name = "tiktoken"
    format_version = 1
    RANKS_FILE = "ranks.tiktoken"

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.encoding = encoding
        self._specials = {
            name: encoding.encode_single_token(name) for name in encoding.special_tokens_set
        }
        self._ranks_file: bytes | None = None  # built on first save / fingerprint

    @classmethod
    def gpt2(cls, path: str | os.PathLike[str] | None = None) -> TiktokenTokenizer:
        """GPT-2's tokenizer, found offline first.

        1. ``path``: a ``.tiktoken`` ranks file, or a directory holding ``encoder.json`` +
           ``vocab.bpe`` or ``gpt2.tiktoken``;
        2. otherwise tiktoken's own cache (the folder ``TIKTOKEN_CACHE_DIR`` names), which
           tiktoken fills by downloading the files the first time.
        """
        if path is not None:
            encoding = tiktoken.Encoding(
                "gpt2",
                pat_str=GPT2_PATTERN,
                mergeable_ranks=read_gpt2_ranks(path),
                special_tokens=GPT2_SPECIAL_TOKENS,
            )
            return cls(encoding)
        try:
            return cls(tiktoken.get_encoding("gpt2"))
        except Exception as error:  # tiktoken's download raises whatever its HTTP client raises
            cache = os.environ.get("TIKTOKEN_CACHE_DIR", "<unset>")
            raise TokenizerError(
                f"GPT-2's vocabulary is not in tiktoken's cache (TIKTOKEN_CACHE_DIR={cache}) and "
                f"could not be downloaded ({type(error).__name__}: {error}). Pass the path of "
                f"gpt2.tiktoken or of a folder with encoder.json + vocab.bpe, or set "
                f"TIKTOKEN_CACHE_DIR to a folder holding tiktoken's cached copies"
            ) from error

    @property
    def vocab_size(self) -> int:
        return self.encoding.n_vocab

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._specials)

    def encode_ordinary(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def token_bytes(self, id_: int) -> bytes:
        """The bytes of one token."""
        return self.decode_bytes([id_])

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids`` joined."""
        ids = list(ids)
        try:
            return self.encoding.decode_bytes(ids)
        except (KeyError, OverflowError, TypeError):
            bad = next(
                (i for i in ids if not isinstance(i, int) or not 0 <= i < self.vocab_size), ids
            )
            raise TokenizerError(
                f"token id {bad!r} is not in this tokenizer (ids are 0..{self.vocab_size - 1})"
            ) from None

    def decode(self, ids: Iterable[int], *, errors: str = "replace") -> str:
        """Decode ``ids``; invalid UTF-8 follows ``errors`` ("replace" gives U+FFFD)."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    # ---- saving --------------------------------------------------------------------------------

    def _mergeable_ranks(self) -> dict[bytes, int]:
        special_ids = set(self._specials.values())
        return {
            self.encoding.decode_single_token_bytes(id_): id_
            for id_ in range(self.encoding.max_token_value + 1)
            if id_ not in special_ids
        }

    def _ranks_file_bytes(self) -> bytes:
        if self._ranks_file is None:
            self._ranks_file = _tiktoken_file_bytes(self._mergeable_ranks())
        return self._ranks_file

    def fingerprint_source(self) -> bytes:
        # tiktoken has no public accessor for the pattern; _pat_str is what it pickles
        pattern = self.encoding._pat_str
        return ranks_fingerprint_source(pattern, self._mergeable_ranks(), self._specials)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.encoding.name,
            # tiktoken has no public accessor for the pattern; _pat_str is what it pickles
            "pattern": self.encoding._pat_str,
            "special_tokens": dict(sorted(self._specials.items(), key=lambda item: item[1])),
            "ranks_file": self.RANKS_FILE,
            "ranks_sha256": hashlib.sha256(self._ranks_file_bytes()).hexdigest(),
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        atomic_write_bytes(Path(directory) / self.RANKS_FILE, self._ranks_file_bytes())
        return super().save(directory)

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path | None = None) -> TiktokenTokenizer:
        if directory is None:
            raise TokenizerError("a saved tiktoken tokenizer needs its directory (ranks file)")
        try:
            name, pattern, specials = data["name"], data["pattern"], data["special_tokens"]
            ranks_path = directory / data["ranks_file"]
            expected = data["ranks_sha256"]
        except (KeyError, TypeError) as error:
            raise TokenizerError(f"the saved tokenizer in {directory} lacks {error}") from None
        content = _read(ranks_path)
        if hashlib.sha256(content).hexdigest() != expected:
            raise TokenizerError(
                f"{ranks_path} does not match the checksum in tokenizer.json; the directory "
                f"was modified or mixed with another tokenizer's files"
            )
        ranks = _parse_tiktoken_ranks(content, ranks_path)
        try:
            encoding = tiktoken.Encoding(
                name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials
            )
        except (ValueError, TypeError) as error:
            raise TokenizerError(
                f"the saved tokenizer in {directory} is invalid: {error}"
            ) from None
        return cls(encoding)
