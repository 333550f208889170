"""Word vectors: look-ups (nearest words, similarity, analogies) and two file formats.

``WordVectors`` holds words in a fixed order (most frequent first when they come from
training) and one row per word. Similarities are cosines.

Formats:

- **ours** — a folder with ``vectors.safetensors`` (one float32 tensor ``vectors``, words x
  dim) and ``vocab.json`` (format name and version, the words, their counts, and how they were
  trained); loading never unpickles anything. ``vocab.json`` is written last, so a folder that
  has it is complete. ``save`` also writes ``vectors.txt`` beside them:
- **word2vec text** — the format of the original C tool, which gensim
  (``KeyedVectors.load_word2vec_format``) and most other tools read: a header line
  ``<words> <dim>``, then one line per word, ``word v1 v2 ... vdim``, separated by single
  spaces. ``load`` also reads files without the header line (GloVe's text files).

>>> vectors = WordVectors(["cat", "dog", "car"], torch.tensor([[1.0, 0.1], [0.9, 0.2], [0.0, 1.0]]))
>>> [word for word, _ in vectors.most_similar("cat", k=2)]
['dog', 'car']
>>> round(vectors.similarity("cat", "car"), 4)
0.0995
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from scratchllm.errors import ConfigError, UnknownWordError, VectorsFormatError
from scratchllm.io import atomic_write_bytes, atomic_write_text

FORMAT_NAME = "scratchllm-word-vectors"
FORMAT_VERSION = 1
TENSORS_FILE = "vectors.safetensors"
VOCAB_FILE = "vocab.json"
TEXT_FILE = "vectors.txt"


class WordVectors:
    """Words and their vectors, with nearest-neighbour queries by cosine similarity."""

    def __init__(
        self,
        words: Sequence[str],
        vectors: torch.Tensor,
        *,
        counts: Sequence[int] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if vectors.dim() != 2 or vectors.shape[0] != len(words):
            raise ConfigError(
                f"need one vector row per word: {len(words)} words, vectors {tuple(vectors.shape)}"
            )
        if len(set(words)) != len(words):
            raise ConfigError("the words of WordVectors must be unique")
        if counts is not None and len(counts) != len(words):
            raise ConfigError(f"{len(counts)} counts for {len(words)} words")
        self.words = list(words)
        self.vectors = vectors.detach().to("cpu", torch.float32).contiguous()
        self.counts = None if counts is None else [int(count) for count in counts]
        self.metadata = dict(metadata or {})
        self._index = {word: position for position, word in enumerate(self.words)}
        self._unit: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __getitem__(self, word: str) -> torch.Tensor:
        return self.vectors[self.index(word)]

    def __repr__(self) -> str:
        return f"WordVectors({len(self):,} words, dim {self.dim})"

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def index(self, word: str) -> int:
        """The row of ``word``; an unknown word is an ``UnknownWordError`` with close matches."""
        position = self._index.get(word)
        if position is None:
            close = difflib.get_close_matches(word, self.words, n=3)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise UnknownWordError(
                f"the word {word!r} is not among the {len(self):,} words of these vectors{hint} "
                "(words are lowercased identifiers and words of the training text that reached "
                "min_count)"
            )
        return position

    def unit_vectors(self) -> torch.Tensor:
        """Every vector scaled to length 1 (a zero vector stays zero)."""
        if self._unit is None:
            norms = self.vectors.norm(dim=1, keepdim=True)
            self._unit = self.vectors / norms.clamp(min=1e-12)
        return self._unit

    def similarity(self, first: str, second: str) -> float:
        """The cosine similarity of two words' vectors, in [-1, 1]."""
        unit = self.unit_vectors()
        return float(unit[self.index(first)] @ unit[self.index(second)])

    def nearest(
        self, vector: torch.Tensor, *, k: int = 10, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``k`` words most cosine-similar to ``vector``, best first, without ``exclude``."""
        if k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        scores = self.unit_vectors() @ (vector / vector.norm().clamp(min=1e-12))
        excluded = [self._index[word] for word in exclude if word in self._index]
        scores[excluded] = -math.inf
        count = min(k, len(self) - len(set(excluded)))
        values, rows = torch.topk(scores, count)
        return [(self.words[row], float(value)) for row, value in zip(rows, values, strict=True)]

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest other words to ``word``, with their cosine similarities."""
        return self.nearest(self.unit_vectors()[self.index(word)], k=k, exclude=[word])

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        """Words nearest to ``a - b + c`` ("king - man + woman" ~ "queen"), a, b, c left out.

        Uses unit vectors, as Mikolov et al. and gensim do (3CosAdd).
        """
        unit = self.unit_vectors()
        query = unit[self.index(a)] - unit[self.index(b)] + unit[self.index(c)]
        return self.nearest(query, k=k, exclude=[a, b, c])

    # ---- files -------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write our format and the word2vec text file into ``directory``; returns it."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"{directory} is a file; give a folder to save the vectors into")
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(directory / TENSORS_FILE, save_safetensors({"vectors": self.vectors}))
        self.save_text(directory / TEXT_FILE)
        vocab = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "dim": self.dim,
            "words": self.words,
            "counts": self.counts,
            "metadata": self.metadata,
        }
        atomic_write_text(directory / VOCAB_FILE, json.dumps(vocab, ensure_ascii=False) + "\n")
        return directory

    def save_text(self, path: str | os.PathLike[str]) -> Path:
        """Write the word2vec text format (header ``<words> <dim>``, then a line per word)."""
        bad = next((word for word in self.words if not word or len(word.split()) != 1), None)
        if bad is not None:
            raise ConfigError(f"the word {bad!r} cannot be written in word2vec text format")
        lines = [f"{len(self)} {self.dim}"]
        for word, row in zip(self.words, self.vectors.tolist(), strict=True):
            lines.append(word + " " + " ".join(f"{value:.6g}" for value in row))
        atomic_write_text(path, "\n".join(lines) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WordVectors:
        """Read a folder ``save`` wrote, or a word2vec (or GloVe) text file."""
        path = Path(path)
        if path.is_dir():
            if (path / VOCAB_FILE).is_file():
                return cls._load_ours(path)
            if (path / TEXT_FILE).is_file():
                return cls.load_text(path / TEXT_FILE)
            raise VectorsFormatError(
                f"{path} holds no word vectors (no {VOCAB_FILE} or {TEXT_FILE}); train some "
                "with `scratchllm word2vec train ... -o DIR`"
            )
        if not path.is_file():
            raise VectorsFormatError(
                f"no such vectors folder or file: {path}; train vectors with "
                "`scratchllm word2vec train ... -o DIR`"
            )
        return cls.load_text(path)

    @classmethod
    def _load_ours(cls, directory: Path) -> WordVectors:
        where = directory / VOCAB_FILE
        try:
            vocab = json.loads(where.read_text(encoding="utf-8"))
            words, dim = vocab["words"], vocab["dim"]
            if vocab.get("format") != FORMAT_NAME:
                raise VectorsFormatError(f"{where} is not a {FORMAT_NAME} file")
            if vocab.get("format_version") != FORMAT_VERSION:
                raise VectorsFormatError(
                    f"{where} has format version {vocab.get('format_version')!r}; this "
                    f"scratchllm reads version {FORMAT_VERSION}"
                )
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise VectorsFormatError(f"{where} is not a valid vocabulary file ({error})") from None
        try:
            tensors = load_safetensors((directory / TENSORS_FILE).read_bytes())
            vectors = tensors["vectors"]
        except FileNotFoundError:
            raise VectorsFormatError(f"{directory} lacks {TENSORS_FILE}") from None
        except (SafetensorError, KeyError) as error:
            raise VectorsFormatError(
                f"{directory / TENSORS_FILE} is corrupt or not ours ({error})"
            ) from None
        if tuple(vectors.shape) != (len(words), dim):
            raise VectorsFormatError(
                f"{directory}: {VOCAB_FILE} lists {len(words)} words of dim {dim}, but "
                f"{TENSORS_FILE} holds {tuple(vectors.shape)}"
            )
        return cls(words, vectors, counts=vocab.get("counts"), metadata=vocab.get("metadata"))

    @classmethod
    def load_text(cls, path: str | os.PathLike[str]) -> WordVectors:
        """Read the word2vec text format (or GloVe's, which has no header line)."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise VectorsFormatError(
                f"{path} is not UTF-8 text; binary word2vec files are not supported: save the "
                "vectors in the text format (binary=False) and load that"
            ) from None
        except OSError as error:
            raise VectorsFormatError(f"cannot read {path}: {error.strerror or error}") from None
        header = lines[0].split() if lines else []
        has_header = len(header) == 2 and all(field.isdigit() for field in header)
        body = lines[1:] if has_header else lines
        expected_dim = int(header[1]) if has_header else None
        words, rows = [], []
        for number, line in enumerate(body, start=2 if has_header else 1):
            fields = line.rstrip().split(" ")
            if expected_dim is None:
                expected_dim = len(fields) - 1
            if len(fields) != expected_dim + 1 or not fields[0]:
                raise VectorsFormatError(
                    f"{path}, line {number}: expected a word and {expected_dim} numbers, got "
                    f"{len(fields)} fields"
                )
            try:
                rows.append([float(value) for value in fields[1:]])
            except ValueError:
                raise VectorsFormatError(
                    f"{path}, line {number}: a value is not a number"
                ) from None
            words.append(fields[0])
        if has_header and len(words) != int(header[0]):
            raise VectorsFormatError(
                f"{path}: the header announces {header[0]} words but the file holds {len(words)}"
            )
        if not words or not expected_dim:
            raise VectorsFormatError(f"{path} holds no word vectors")
        if len(set(words)) != len(words):
            raise VectorsFormatError(f"{path} lists a word twice")
        return cls(words, torch.tensor(rows, dtype=torch.float32))
