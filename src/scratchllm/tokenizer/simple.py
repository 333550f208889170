"""The walkthrough's first tokenizer: split text into words and punctuation, map each to an id.

This is a teaching tokenizer. It shows the three steps every tokenizer performs (split the
text, build a vocabulary, map tokens to ids and back), and, through its unknown-word problem,
why GPT models use byte-pair encoding instead (``bpe.py``).

>>> tokenizer = SimpleTokenizer.train("Hello, world. Is this-- a test?")
>>> tokenizer.encode("Hello, world.")
[4, 0, 9, 2]
>>> tokenizer.decode([4, 0, 9, 2])
'Hello, world.'
>>> tokenizer.encode("Hello, Mars.")          # unknown word -> <|unk|>
[4, 0, 11, 2]

Its vocabulary is the sorted set of tokens in a training text, with special tokens appended in
the order given. On "The Verdict" that is 1,130 words and punctuation marks (1,132 with
``<|endoftext|>`` and ``<|unk|>``), and the story is 4,690 tokens long — the published figures.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from scratchllm.errors import TokenizerError, UnknownTokenError
from scratchllm.tokenizer.base import ENDOFTEXT, UNK, Tokenizer

#: optional special tokens from the walkthrough's list: beginning and end of sequence, padding
BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"

# Split on whitespace and on the punctuation , . : ; ? _ ! " ( ) ' and the double dash "--".
# The capturing group keeps the punctuation as tokens; whitespace is dropped afterwards.
_SPLIT = re.compile(r'([,.:;?_!"()\']|--|\s)')
# Decoding joins tokens with spaces, then removes the space before punctuation.
_SPACE_BEFORE_PUNCTUATION = re.compile(r'\s+([,.:;?!"()\'])')


def split_words(text: str) -> list[str]:
    """Split ``text`` into words and punctuation marks, dropping whitespace.

    >>> split_words("Hello, world. Is this-- a test?")
    ['Hello', ',', 'world', '.', 'Is', 'this', '--', 'a', 'test', '?']
    """
    return [piece for piece in (part.strip() for part in _SPLIT.split(text)) if piece]


def join_words(tokens: Iterable[str]) -> str:
    """Join tokens with natural spacing: no space before punctuation.

    >>> join_words(['Hello', ',', 'world', '.'])
    'Hello, world.'
    """
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(tokens))


class SimpleTokenizer(Tokenizer):
    """A word-level tokenizer with a fixed vocabulary.

    ``unknown="strict"`` raises ``UnknownTokenError`` for a word outside the vocabulary;
    ``unknown="unk"`` maps it to ``<|unk|>`` (which must then be a special token).
    """

    type_name = "simple"

    def __init__(
        self,
        words: Sequence[str],
        *,
        special_tokens: Sequence[str] = (),
        unknown: Literal["strict", "unk"] = "strict",
    ) -> None:
        if unknown not in ("strict", "unk"):
            raise TokenizerError(f"unknown must be 'strict' or 'unk', not {unknown!r}")
        if unknown == "unk" and UNK not in special_tokens:
            raise TokenizerError(f"unknown='unk' needs {UNK!r} among the special tokens")
        overlap = set(words) & set(special_tokens)
        if (
            overlap
            or len(set(words)) != len(words)
            or len(set(special_tokens)) != len(special_tokens)
        ):
            raise TokenizerError(
                "vocabulary words and special tokens must be unique and disjoint"
                + (f"; both contain {sorted(overlap)}" if overlap else "")
            )
        self.words = list(words)
        self.unknown = unknown
        self._word_to_id = {word: index for index, word in enumerate(self.words)}
        self._special_to_id = {
            token: len(self.words) + offset for offset, token in enumerate(special_tokens)
        }
        self._id_to_token = self.words + list(special_tokens)

    @classmethod
    def train(
        cls,
        text_or_documents: str | Iterable[str],
        *,
        special_tokens: Sequence[str] = (ENDOFTEXT, UNK),
        unknown: Literal["strict", "unk"] | None = None,
    ) -> SimpleTokenizer:
        """Build the vocabulary: the sorted unique tokens of the text, then ``special_tokens``.

        ``unknown`` defaults to ``"unk"`` when ``<|unk|>`` is a special token, else ``"strict"``.
        Special-token text inside the training text is not a vocabulary word.
        """
        documents = [text_or_documents] if isinstance(text_or_documents, str) else text_or_documents
        vocabulary: set[str] = set()
        for document in documents:
            vocabulary.update(split_words(document))
        vocabulary.difference_update(special_tokens)
        if unknown is None:
            unknown = "unk" if UNK in special_tokens else "strict"
        return cls(sorted(vocabulary), special_tokens=special_tokens, unknown=unknown)

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_token)

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._special_to_id)

    def encode_ordinary(self, text: str) -> list[int]:
        ids = []
        for word in split_words(text):
            index = self._word_to_id.get(word)
            if index is None:
                index = self._unknown_id(word)
            ids.append(index)
        return ids

    def _unknown_id(self, word: str) -> int:
        if self.unknown == "unk":
            return self._special_to_id[UNK]
        close = difflib.get_close_matches(word, self.words, n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise UnknownTokenError(
            f"the word {word!r} is not in the vocabulary of {len(self.words):,} words{hint}; "
            f"train the tokenizer on text that contains it, or build it with "
            f"unknown='unk' to map unknown words to {UNK}"
        )

    def decode(self, ids: Iterable[int]) -> str:
        tokens = []
        for index in ids:
            if not 0 <= index < len(self._id_to_token):
                raise TokenizerError(
                    f"id {index} is outside the vocabulary (0..{len(self._id_to_token) - 1})"
                )
            tokens.append(self._id_to_token[index])
        return join_words(tokens)

    def id_to_token(self, index: int) -> str:
        """The vocabulary entry with id ``index``."""
        return self._id_to_token[index]

    def to_dict(self) -> dict[str, Any]:
        return {
            "unknown": self.unknown,
            "special_tokens": list(self._special_to_id),
            "words": self.words,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path | None = None) -> SimpleTokenizer:
        try:
            words, specials, unknown = data["words"], data["special_tokens"], data["unknown"]
        except KeyError as error:
            raise TokenizerError(f"the saved simple tokenizer lacks the field {error}") from None
        return cls(words, special_tokens=specials, unknown=unknown)
