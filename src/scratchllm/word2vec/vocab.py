"""The Word2Vec vocabulary and its two distributions: which words to keep, which to draw as noise.

Three pure pieces, each from Mikolov et al. (2013), "Distributed Representations of Words and
Phrases and their Compositionality", as the word2vec C tool implements them:

- ``Vocabulary.build``: count words, keep those seen at least ``min_count`` times, order them
  by falling count (ties by first appearance), so id 0 is the most frequent word;
- ``keep_probabilities``: **subsampling** of frequent words. Each occurrence of a word with
  count ``f`` is kept with probability ``(sqrt(f / (s*T)) + 1) * (s*T) / f`` (at most 1), where
  ``T`` is the number of word occurrences in the vocabulary and ``s`` the ``sample`` threshold;
  very frequent words ("the", "self") are mostly dropped, rare ones always kept;
- ``noise_distribution``: negatives are drawn from the unigram distribution raised to 3/4,
  which gives rare words more weight than their raw frequency.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from scratchllm.errors import ConfigError, DataLengthError

NOISE_EXPONENT = 0.75  # Mikolov et al. 2013: "the unigram distribution raised to the 3/4rd power"


@dataclass(frozen=True)
class Vocabulary:
    """The kept words, most frequent first, with their counts in the training text."""

    words: tuple[str, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        assert len(self.words) == len(self.counts)

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], *, min_count: int) -> Vocabulary:
        """Count the words of ``sentences`` and keep those seen at least ``min_count`` times.

        >>> vocabulary = Vocabulary.build([["b", "a", "b"], ["c", "a", "b"]], min_count=2)
        >>> vocabulary.words, vocabulary.counts
        (('b', 'a'), (3, 2))
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ConfigError(f"min_count must be a positive integer, got {min_count!r}")
        counter: Counter[str] = Counter()
        for sentence in sentences:
            counter.update(sentence)
        # sorted() is stable and a Counter keeps first-appearance order: ties stay in that order
        kept = sorted(
            ((word, count) for word, count in counter.items() if count >= min_count),
            key=lambda item: -item[1],
        )
        if len(kept) < 2:
            total = sum(counter.values())
            if counter:
                top, top_count = counter.most_common(1)[0]
                seen = (
                    f"{total:,} words, {len(counter):,} distinct; the most frequent, {top!r}, "
                    f"occurs {top_count:,} times"
                )
            else:
                seen = "no words at all"
            raise DataLengthError(
                f"only {len(kept)} word(s) occur at least min_count={min_count} times "
                f"(the text has {seen}); Word2Vec needs at least 2: lower min_count or train "
                "on a larger corpus"
            )
        words, counts = zip(*kept, strict=True)
        return cls(tuple(words), tuple(counts))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def total(self) -> int:
        """Occurrences of vocabulary words in the training text (``T``)."""
        return sum(self.counts)

    def encode(self, sentences: Iterable[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """All sentences as one array of word ids, with the sentence number of each position.

        Words outside the vocabulary are dropped first, as word2vec does, so windows reach
        over them.

        >>> Vocabulary(("b", "a"), (3, 2)).encode([["b", "x", "a"], ["a"]])
        (array([0, 1, 1], dtype=int32), array([0, 0, 1], dtype=int32))
        """
        index = {word: position for position, word in enumerate(self.words)}
        ids: list[int] = []
        sentence_of: list[int] = []
        for number, sentence in enumerate(sentences):
            kept = [index[word] for word in sentence if word in index]
            ids.extend(kept)
            sentence_of.extend([number] * len(kept))
        return np.array(ids, dtype=np.int32), np.array(sentence_of, dtype=np.int32)


def keep_probabilities(counts: Sequence[int], sample: float) -> np.ndarray:
    """The chance that one occurrence of each word survives subsampling (1.0 when sample=0).

    Hand check with counts 1000 and 10 and sample 1e-3: ``s*T = 1.01``, so the frequent word
    keeps ``(sqrt(1000/1.01) + 1) * 1.01/1000 = 0.0328`` of its occurrences and the rare one
    ``(sqrt(10/1.01) + 1) * 1.01/10 = 0.4188``.

    >>> keep_probabilities([1000, 10], 1e-3).round(4).tolist()
    [0.0328, 0.4188]
    >>> keep_probabilities([1000, 10], 0.0).tolist()
    [1.0, 1.0]
    """
    if not (isinstance(sample, int | float) and math.isfinite(sample) and sample >= 0):
        raise ConfigError(f"sample must be a non-negative number, got {sample!r}")
    frequencies = np.asarray(counts, dtype=np.float64)
    if sample == 0:
        return np.ones_like(frequencies)
    threshold = sample * frequencies.sum()
    keep = (np.sqrt(frequencies / threshold) + 1.0) * threshold / frequencies
    return np.minimum(keep, 1.0)


def noise_distribution(counts: Sequence[int], exponent: float = NOISE_EXPONENT) -> np.ndarray:
    """Probabilities proportional to ``count ** exponent``: the distribution negatives come from.

    With counts 16 and 1, ``16 ** 0.75 = 8``, so the frequent word is drawn 8 times as often
    (raw frequency would say 16 times):

    >>> noise_distribution([16, 1]).tolist() == [8 / 9, 1 / 9]
    True
    """
    weights = np.asarray(counts, dtype=np.float64) ** exponent
    return weights / weights.sum()
