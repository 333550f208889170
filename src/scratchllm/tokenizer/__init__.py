"""Tokenizers: text <-> integer ids, all behind one interface (``Tokenizer``).

- ``SimpleTokenizer`` (simple.py): the walkthrough's word-level regex tokenizer, strict or with
  ``<|unk|>``; a teaching tool that shows why subword tokenizers exist.
- ``BPETokenizer`` (bpe.py): our byte-level byte-pair encoding: train, encode, decode, save,
  load, and GPT-2's own vocabulary loaded from its files. ``bpe_reference.py`` keeps the
  textbook training loop it is tested against.
- ``TiktokenTokenizer`` (gpt2.py): GPT-2's BPE through tiktoken, the production fast path.

``load_tokenizer(directory)`` reads any of them back from ``save(directory)``;
``get_tokenizer(spec)`` resolves a name (``"gpt2"``) or a saved directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from scratchllm.errors import TokenizerError
from scratchllm.tokenizer.base import ENDOFTEXT, TOKENIZER_FILE, UNK, Tokenizer
from scratchllm.tokenizer.bpe import BPETokenizer
from scratchllm.tokenizer.gpt2 import TiktokenTokenizer, load_gpt2_bpe, load_gpt2_tiktoken
from scratchllm.tokenizer.simple import SimpleTokenizer

__all__ = [
    "ENDOFTEXT",
    "UNK",
    "BPETokenizer",
    "SimpleTokenizer",
    "TiktokenTokenizer",
    "Tokenizer",
    "get_tokenizer",
    "load_gpt2_bpe",
    "load_gpt2_tiktoken",
    "load_tokenizer",
]

_TYPES: dict[str, type[Tokenizer]] = {
    cls.type_name: cls for cls in (SimpleTokenizer, BPETokenizer, TiktokenTokenizer)
}


def load_tokenizer(directory: str | os.PathLike[str]) -> Tokenizer:
    """Load a tokenizer saved with ``Tokenizer.save(directory)``."""
    directory = Path(directory)
    path = directory / TOKENIZER_FILE if directory.is_dir() else directory
    if not path.is_file():
        raise TokenizerError(
            f"no saved tokenizer at {directory}: expected a directory holding {TOKENIZER_FILE} "
            f"(make one with `scratchllm train-tokenizer -o {directory}`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenizerError(f"{path} is not a valid tokenizer file: {error}") from None
    type_name = data.get("type") if isinstance(data, dict) else None
    if type_name not in _TYPES:
        raise TokenizerError(
            f"{path} has tokenizer type {type_name!r}; known types are {sorted(_TYPES)}"
        )
    cls = _TYPES[type_name]
    version = data.get("format_version")
    if version != cls.format_version:
        raise TokenizerError(
            f"{path} uses {type_name} format version {version!r}, but this scratchllm reads "
            f"version {cls.format_version}; re-save it with a matching scratchllm"
        )
    return cls.from_dict(data, path.parent)


def get_tokenizer(spec: str, *, path: str | os.PathLike[str] | None = None) -> Tokenizer:
    """Resolve a tokenizer by name or location.

    - ``"gpt2"``: GPT-2's BPE through tiktoken. With ``path`` (a ``.tiktoken`` ranks file, or a
      directory holding ``encoder.json`` + ``vocab.bpe`` or ``gpt2.tiktoken``) it is read from
      there; otherwise from tiktoken's cache (``TIKTOKEN_CACHE_DIR``) or its download.
    - a directory (or its ``tokenizer.json``) written by ``Tokenizer.save``.
    """
    if spec == "gpt2":
        return TiktokenTokenizer.gpt2(path)
    if Path(spec).exists():
        return load_tokenizer(spec)
    raise TokenizerError(
        f"unknown tokenizer {spec!r}: use 'gpt2' or the directory of a saved tokenizer"
    )
