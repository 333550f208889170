"""What counts as a word for Word2Vec, and how a corpus becomes sentences of words.

A **word** is a maximal run of letters, digits and underscores (the regex ``\\w+``, Unicode
aware), lowercased by default. That one rule suits both corpora we train on: in prose it
drops punctuation (``"don't"`` gives ``don`` and ``t``, as most word2vec preprocessing does),
and in Python source a word is an identifier or a number, so a dotted name such as
``os.path.join`` gives its parts ``os``, ``path`` and ``join`` while ``snake_case`` names and
dunders (``__init__``) stay whole.

A **sentence** is the unit context windows never cross. We take each document as one stream
of words, cut into pieces of at most ``max_length`` words, like word2vec's C tool and gensim
(which both stop a sentence at 10,000 words).

>>> split_words("Use os.path.join(a, b) -- it's __init__-safe!")
['use', 'os', 'path', 'join', 'a', 'b', 'it', 's', '__init__', 'safe']
>>> list(sentences(["one two three four five"], max_length=2))
[['one', 'two'], ['three', 'four'], ['five']]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from scratchllm.errors import ConfigError

WORD = re.compile(r"\w+")
MAX_SENTENCE_LENGTH = 10_000  # word2vec's MAX_SENTENCE_LENGTH, also gensim's limit


def split_words(text: str, *, lowercase: bool = True) -> list[str]:
    """The words of ``text`` in order (see the module docstring for what a word is)."""
    if lowercase:
        text = text.lower()
    return WORD.findall(text)


def sentences(
    texts: Iterable[str], *, lowercase: bool = True, max_length: int = MAX_SENTENCE_LENGTH
) -> Iterator[list[str]]:
    """Each text's words, in pieces of at most ``max_length`` words (empty texts give none)."""
    if max_length < 1:
        raise ConfigError(f"max_length must be a positive integer, got {max_length!r}")
    for text in texts:
        words = split_words(text, lowercase=lowercase)
        for start in range(0, len(words), max_length):
            yield words[start : start + max_length]
