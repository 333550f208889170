"""The one tokenizer interface that data, training, generation and serving rely on.

Every tokenizer in scratchllm (the word-level ``SimpleTokenizer``, our byte-level
``BPETokenizer`` and the tiktoken-backed ``TiktokenTokenizer``) subclasses ``Tokenizer`` and so
offers the same surface:

- ``encode(text, allowed_special=..., disallowed_special=...)`` with tiktoken's semantics: a
  special token such as ``<|endoftext|>`` that appears in the text raises
  ``DisallowedSpecialTokenError`` unless it is allowed, in which case it becomes its id;
- ``encode_ordinary(text)``: special tokens in the text are ordinary text;
- ``decode(ids)``, ``vocab_size``, ``special_tokens`` (name -> id), ``eot_id``;
- ``save(directory)`` and ``scratchllm.tokenizer.load_tokenizer(directory)``;
- ``fingerprint``: a short hash of everything that decides the ids, stored in token files so
  that a file is never read with a tokenizer other than the one that wrote it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Set
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import regex

from scratchllm.errors import DisallowedSpecialTokenError, TokenizerError
from scratchllm.io import atomic_write_text

ENDOFTEXT = "<|endoftext|>"
UNK = "<|unk|>"

#: the name of the file every saved tokenizer directory holds; its "type" field says which class
#: loads it and its "format_version" which layout it uses.
TOKENIZER_FILE = "tokenizer.json"


class Tokenizer(ABC):
    """Base class: subclasses implement ``encode_ordinary``, ``decode``, ``vocab_size``,
    ``special_tokens``, ``to_dict`` and ``from_dict``; ``encode``, ``save`` and ``fingerprint``
    are shared."""

    #: the "type" written to tokenizer.json
    type_name: ClassVar[str]
    #: bumped when the saved layout changes; ``from_dict`` checks it
    format_version: ClassVar[int] = 1

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special tokens included (ids are ``0 .. vocab_size - 1``)."""

    @property
    @abstractmethod
    def special_tokens(self) -> dict[str, int]:
        """Special token text -> id."""

    @abstractmethod
    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text``, treating special-token text as ordinary text."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Turn ids back into text."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer, JSON-serialisable."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any], directory: Path | None = None) -> Tokenizer:
        """Rebuild a tokenizer from ``to_dict``'s output (``directory`` holds any side files)."""

    # ---- shared behaviour -------------------------------------------------------------------

    @property
    def eot_id(self) -> int | None:
        """The id of ``<|endoftext|>``, the document separator, or None if there is none."""
        return self.special_tokens.get(ENDOFTEXT)

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Set[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Encode ``text``; special tokens follow tiktoken's rules.

        >>> from scratchllm.tokenizer import SimpleTokenizer
        >>> tok = SimpleTokenizer.train("a b")            # vocabulary: a, b, <|endoftext|>, <|unk|>
        >>> tok.encode("a <|endoftext|> b", allowed_special="all")
        [0, 2, 1]
        >>> tok.encode("a <|endoftext|> b")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        scratchllm.errors.DisallowedSpecialTokenError: the text contains the special token ...
        """
        specials = self.special_tokens
        allowed = set(specials) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(specials)
        if unknown:
            raise TokenizerError(
                f"allowed_special names {sorted(unknown)}, which this tokenizer does not have; "
                f"its special tokens are {sorted(specials)}"
            )
        disallowed = (
            set(specials) - allowed if disallowed_special == "all" else set(disallowed_special)
        )
        if disallowed:
            match = special_token_regex(frozenset(disallowed)).search(text)
            if match:
                raise DisallowedSpecialTokenError(
                    f"the text contains the special token {match.group()!r} at character "
                    f"{match.start()}; pass allowed_special={{{match.group()!r}}} to encode it as "
                    f"a special token, or use encode_ordinary() to encode it as plain text"
                )
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        start = 0
        for match in special_token_regex(frozenset(allowed)).finditer(text):
            ids.extend(self.encode_ordinary(text[start : match.start()]))
            ids.append(specials[match.group()])
            start = match.end()
        ids.extend(self.encode_ordinary(text[start:]))
        return ids

    @property
    def fingerprint(self) -> str:
        """A 16-hex-digit hash of what decides the ids: equal fingerprints mean equal ids."""
        return hashlib.sha256(self.fingerprint_source()).hexdigest()[:16]

    def fingerprint_source(self) -> bytes:
        """The bytes ``fingerprint`` hashes: by default the saved form (``to_dict``)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return canonical.encode("utf-8")

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``tokenizer.json`` (and any side files) into ``directory``; returns the file."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"type": self.type_name, "format_version": self.format_version}
        payload.update(self.to_dict())
        path = directory / TOKENIZER_FILE
        atomic_write_text(path, json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
        return path

    def describe(self) -> str:
        """One line for humans: type, vocabulary size, special tokens."""
        specials = ", ".join(self.special_tokens) or "none"
        return f"{self.type_name} tokenizer, vocab {self.vocab_size:,}, special tokens {specials}"


def ranks_fingerprint_source(
    pattern: str, ranks: Mapping[bytes, int], special_tokens: Mapping[str, int]
) -> bytes:
    """What decides a byte-level BPE's ids, as bytes: the pattern, the ranks, the specials.

    Shared by ``BPETokenizer`` and ``TiktokenTokenizer``, so the same vocabulary has the same
    fingerprint in both, and token files made with one read with the other.
    """
    parts = [pattern.encode("utf-8"), json.dumps(sorted(special_tokens.items())).encode("utf-8")]
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        parts.append(b"%d:%s" % (rank, base64.b64encode(token)))
    return b"\n".join(parts)


@lru_cache(maxsize=64)
def special_token_regex(tokens: frozenset[str]) -> regex.Pattern[str]:
    """One compiled alternation of ``tokens``, longest first so a prefix never shadows."""
    alternatives = sorted(tokens, key=len, reverse=True)
    return regex.compile("|".join(regex.escape(token) for token in alternatives))
