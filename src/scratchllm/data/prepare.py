"""Corpus -> tokenizer -> train/val token files: tokenize once, train many times.

``prepare(corpus, tokenizer, out_dir)`` tokenizes every document once and writes::

    out_dir/
      train.bin      the training tokens (shards.py format)
      val.bin        the held-out tokens (an empty token file when val_fraction is 0)
      tokenizer/     a copy of the tokenizer, so the ids can always be decoded
      meta.json      the PrepareReport: counts, split, tokenizer, timing

Each document is encoded with ``encode_ordinary`` (a literal ``<|endoftext|>`` in the text is
just text) and followed by the end-of-text id when the tokenizer has one, so the model sees
where one document stops and the next starts.

The validation set is the trailing documents whose tokens make up about ``val_fraction`` of
the total. When no document boundary lands near that share (one document, as for
the-verdict, or a few very unequal ones), the token stream is cut at
``round((1 - val_fraction) * tokens)`` instead. ``split="characters"`` reproduces the
walkthrough exactly: it cuts the *text* at ``int((1 - val_fraction) * characters)`` and
tokenizes the two sides separately. ``meta.json`` records which split was used.
``load_prepared(out_dir)`` reads it all back.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from scratchllm.corpora import Corpus
from scratchllm.data.shards import TokenFile, read_tokens, token_dtype, write_tokens
from scratchllm.errors import ConfigError, CorpusError, DataFormatError, ScratchLLMError
from scratchllm.io import atomic_write_text
from scratchllm.tokenizer import Tokenizer, load_tokenizer

TRAIN_FILE = "train.bin"
VAL_FILE = "val.bin"
TOKENIZER_DIR = "tokenizer"
META_FILE = "meta.json"
META_VERSION = 1

# A document-boundary split is used when its validation share is within this relative distance
# of the share asked for (0.1 accepts 7.5%..12.5% for val_fraction=0.1); further off, the
# held-out set would be much smaller or larger than asked, so the token stream is cut instead.
BOUNDARY_TOLERANCE = 0.25

SplitKind = Literal["documents", "tokens", "characters", "none"]


@dataclass(frozen=True)
class PrepareReport:
    """What ``prepare`` did; ``meta.json`` holds it (without ``directory``)."""

    corpus: str
    tokenizer: str  # the tokenizer's one-line description
    tokenizer_fingerprint: str
    vocab_size: int
    documents: int
    characters: int
    tokens: int  # end-of-text separators included
    train_tokens: int
    val_tokens: int
    # with a token split, the document cut in two counts in both
    train_documents: int
    val_documents: int
    val_fraction: float  # as asked; the actual share is val_tokens / tokens
    # "documents": at a boundary; "tokens": mid-document; "characters": the text cut at a
    # character share; "none": no val
    split: SplitKind
    elapsed_seconds: float
    directory: Path

    @property
    def train_path(self) -> Path:
        return self.directory / TRAIN_FILE

    @property
    def val_path(self) -> Path:
        return self.directory / VAL_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / TOKENIZER_DIR

    def summary(self) -> str:
        """A few lines for humans (what ``scratchllm prepare`` prints)."""
        share = self.val_tokens / self.tokens if self.tokens else 0.0
        where = {
            "documents": "at a document boundary",
            "tokens": "inside a document (no boundary near the asked share)",
            "characters": "at a share of the characters, each side tokenized on its own",
            "none": "none held out",
        }[self.split]
        return "\n".join(
            [
                f"{self.corpus}: {self.documents:,} documents, {self.characters:,} characters "
                f"-> {self.tokens:,} tokens in {self.elapsed_seconds:.1f} s",
                f"tokenizer: {self.tokenizer} (fingerprint {self.tokenizer_fingerprint})",
                f"train: {self.train_tokens:,} tokens, {self.train_documents:,} documents "
                f"-> {self.train_path}",
                f"val:   {self.val_tokens:,} tokens ({share:.1%}), {self.val_documents:,} "
                f"documents, split {where} -> {self.val_path}",
            ]
        )

    def to_json(self) -> str:
        fields = asdict(self)
        del fields["directory"]  # the folder can move; the file names below are relative to it
        files = {"train": TRAIN_FILE, "val": VAL_FILE, "tokenizer": TOKENIZER_DIR}
        return json.dumps({"format_version": META_VERSION, **fields, "files": files}, indent=1)

    @classmethod
    def from_json(cls, text: str, directory: Path) -> PrepareReport:
        data: dict[str, Any] = json.loads(text)
        if data.pop("format_version", None) != META_VERSION:
            raise ValueError(f"meta.json format version is not {META_VERSION}")
        data.pop("files", None)
        return cls(**data, directory=directory)


@dataclass(frozen=True)
class PreparedData:
    """A prepared directory read back: the token files, the tokenizer that made them, the report."""

    train: TokenFile
    val: TokenFile
    tokenizer: Tokenizer
    report: PrepareReport


def choose_split(document_tokens: list[int], val_fraction: float) -> tuple[int, SplitKind]:
    """Where the validation tokens start, and whether that is a document boundary.

    ``document_tokens`` are the token counts of the documents in order. The candidates are
    the boundaries that leave at least one document on each side; the one closest to
    ``val_fraction`` of the tokens wins if it is within ``BOUNDARY_TOLERANCE`` of it.

    >>> choose_split([30, 30, 30, 30, 30, 30, 30, 30, 30, 30], 0.1)  # the last document
    (270, 'documents')
    >>> choose_split([100], 0.1)  # one document: cut the stream
    (90, 'tokens')
    >>> choose_split([95, 5], 0.1)  # 5% is too far from 10%
    (90, 'tokens')
    >>> choose_split([50, 50], 0.0)
    (100, 'none')
    """
    total = sum(document_tokens)
    if val_fraction == 0:
        return total, "none"
    target = val_fraction * total
    best_start, best_distance = None, float("inf")
    val_tokens = 0
    for count in reversed(document_tokens[1:]):  # grow val from the end, keep >= 1 train doc
        val_tokens += count
        if abs(val_tokens - target) < best_distance:
            best_start, best_distance = total - val_tokens, abs(val_tokens - target)
    if best_start is not None and best_distance <= BOUNDARY_TOLERANCE * target:
        return best_start, "documents"
    return round((1 - val_fraction) * total), "tokens"


def prepare(
    corpus: Corpus,
    tokenizer: Tokenizer,
    out_dir: str | os.PathLike[str],
    *,
    val_fraction: float = 0.1,
    split: Literal["auto", "characters"] = "auto",
    show_progress: bool = True,
) -> PrepareReport:
    """Tokenize ``corpus`` with ``tokenizer`` and write the prepared directory ``out_dir``.

    ``val_fraction`` is the share of tokens held out for validation, ``0 <= val_fraction < 1``;
    0 writes an empty ``val.bin`` so the directory always has the same files. ``split`` is
    ``"auto"`` (a document boundary, else a token cut) or ``"characters"`` (see above).
    Raises ``CorpusError`` if the corpus has no documents or tokenizes to nothing.
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be at least 0 and below 1, got {val_fraction}")
    if split not in ("auto", "characters"):
        raise ConfigError(f"split must be 'auto' or 'characters', got {split!r}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    dtype = token_dtype(tokenizer.vocab_size)
    eot_id = tokenizer.eot_id

    pieces: list[np.ndarray] = []
    characters = 0
    content_tokens = 0  # tokens other than the separators we add
    stream_tokens = 0  # tokens in pieces so far
    character_cut = _character_cut(corpus, val_fraction) if split == "characters" else None
    cut_token = None  # where the character cut lands in the token stream
    progress = tqdm(
        corpus.documents(),
        total=len(corpus),
        desc=f"tokenizing {corpus.name}",
        unit="doc",
        disable=not show_progress,
    )
    for document in progress:
        offset = -1 if character_cut is None else character_cut - characters
        if 0 <= offset < len(document.text):  # the cut is in this document: two halves
            head = tokenizer.encode_ordinary(document.text[:offset])
            ids = head + tokenizer.encode_ordinary(document.text[offset:])
            cut_token = stream_tokens + len(head)
        else:
            ids = tokenizer.encode_ordinary(document.text)
        characters += len(document.text)
        content_tokens += len(ids)
        # stored compactly as we go: a Python list costs ~36 bytes per id, this 2 or 4
        piece = np.empty(len(ids) + (eot_id is not None), dtype=dtype)
        piece[: len(ids)] = ids
        if eot_id is not None:
            piece[-1] = eot_id
        pieces.append(piece)
        stream_tokens += len(piece)
    if not pieces:
        raise CorpusError(f"corpus {corpus.name} has no documents; add some text")
    if content_tokens == 0:
        raise CorpusError(
            f"corpus {corpus.name} tokenizes to nothing: its {len(pieces)} document(s) are "
            "empty; add some text"
        )

    tokens = np.concatenate(pieces)
    document_tokens = [len(piece) for piece in pieces]
    if cut_token is not None:
        val_start, split_kind = cut_token, "characters"
    else:
        val_start, split_kind = choose_split(document_tokens, val_fraction)
    train_documents, val_documents = _documents_on_each_side(document_tokens, val_start)

    fingerprint = tokenizer.fingerprint
    # meta.json goes last: a directory with it is complete (each file is itself atomic)
    tokenizer.save(out_dir / TOKENIZER_DIR)
    for name, part in ((TRAIN_FILE, tokens[:val_start]), (VAL_FILE, tokens[val_start:])):
        write_tokens(out_dir / name, part, vocab_size=tokenizer.vocab_size, fingerprint=fingerprint)
    report = PrepareReport(
        corpus=corpus.name,
        tokenizer=tokenizer.describe(),
        tokenizer_fingerprint=fingerprint,
        vocab_size=tokenizer.vocab_size,
        documents=len(pieces),
        characters=characters,
        tokens=len(tokens),
        train_tokens=val_start,
        val_tokens=len(tokens) - val_start,
        train_documents=train_documents,
        val_documents=val_documents,
        val_fraction=val_fraction,
        split=split_kind,
        elapsed_seconds=time.perf_counter() - started,
        directory=out_dir,
    )
    atomic_write_text(out_dir / META_FILE, report.to_json() + "\n")
    return report


def _character_cut(corpus: Corpus, val_fraction: float) -> int | None:
    """The character offset in the whole corpus where val starts (the walkthrough's
    ``int(train_ratio * len(text))``), or None when nothing is held out."""
    if val_fraction == 0:
        return None
    total = sum(len(document.text) for document in corpus.documents())
    return int((1 - val_fraction) * total)


def _documents_on_each_side(document_tokens: list[int], val_start: int) -> tuple[int, int]:
    """How many documents have tokens before ``val_start`` and how many at or after it.

    >>> _documents_on_each_side([3, 3, 3], 6), _documents_on_each_side([3, 3, 3], 4)
    ((2, 1), (2, 2))
    """
    train = val = 0
    end = 0
    for count in document_tokens:
        start, end = end, end + count
        train += start < val_start
        val += end > val_start
    return train, val


def load_prepared(out_dir: str | os.PathLike[str]) -> PreparedData:
    """Read a directory written by ``prepare``, checking the token files against its tokenizer."""
    out_dir = Path(out_dir)
    meta_path = out_dir / META_FILE
    if not meta_path.is_file():
        raise DataFormatError(
            f"{out_dir} is not a prepared data directory (no {META_FILE}); "
            f"run `scratchllm prepare` with -o {out_dir} first"
        )
    try:
        report = PrepareReport.from_json(meta_path.read_text(encoding="utf-8"), out_dir)
    except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise DataFormatError(
            f"{meta_path} is unreadable ({error}); re-run `scratchllm prepare`"
        ) from None
    try:
        tokenizer = load_tokenizer(out_dir / TOKENIZER_DIR)
    except ScratchLLMError as error:
        raise DataFormatError(
            f"{out_dir}: cannot load its tokenizer copy ({error}); re-run `scratchllm prepare`"
        ) from None
    fingerprint = tokenizer.fingerprint
    train = read_tokens(out_dir / TRAIN_FILE, expected_fingerprint=fingerprint)
    val = read_tokens(out_dir / VAL_FILE, expected_fingerprint=fingerprint)
    return PreparedData(train=train, val=val, tokenizer=tokenizer, report=report)
