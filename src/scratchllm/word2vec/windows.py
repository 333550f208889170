"""Context windows: which words train against which, built for a whole chunk of text at once.

word2vec's **dynamic window**: for each center word it draws a window size ``b`` uniformly
from 1..``window`` and uses the ``b`` words on each side (within the same sentence), so near
words are used more often than far ones (a word at distance ``d`` is used with probability
``(window - d + 1) / window``).

Everything here is vectorised numpy over a chunk of word ids: one row per center word, one
column per offset ``-window..-1, 1..window``, and a mask of the slots that are inside the
center's dynamic window and its sentence. The training loop consumes that padded layout
directly; ``skipgram_pairs`` flattens it into ``(center, context)`` pairs for reading and
testing.

>>> ids = np.array([10, 11, 12, 13])
>>> centers, contexts, mask = context_windows(ids, np.zeros(4), np.array([1, 2, 1, 1]), window=2)
>>> contexts.tolist()  # offsets -2, -1, +1, +2 of each center
[[10, 10, 11, 12], [10, 10, 12, 13], [10, 11, 13, 13], [11, 12, 13, 13]]
>>> mask.astype(int).tolist()
[[0, 0, 1, 0], [0, 1, 1, 1], [0, 1, 1, 0], [0, 1, 0, 0]]
"""

from __future__ import annotations

import numpy as np


def window_offsets(window: int) -> np.ndarray:
    """The offsets of the context slots, nearest last on the left and first on the right.

    >>> window_offsets(2).tolist()
    [-2, -1, 1, 2]
    """
    return np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])


def reduced_windows(count: int, window: int, rng: np.random.Generator) -> np.ndarray:
    """One dynamic window size per center word, uniform in ``1..window``."""
    return rng.integers(1, window + 1, size=count)


def context_windows(
    ids: np.ndarray, sentence_ids: np.ndarray, sizes: np.ndarray, *, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each center word, its context words in padded form.

    ``ids`` (n,) are word ids in text order, ``sentence_ids`` (n,) the sentence of each and
    ``sizes`` (n,) each center's dynamic window. Returns ``centers`` (m,), ``contexts`` (m, 2w)
    and ``mask`` (m, 2w): slot ``j`` of row ``i`` is a real context word when ``mask[i, j]``
    (padding slots repeat a neighbouring id and must be ignored). Centers without any context
    word (a one-word sentence) are left out, so ``m <= n``.
    """
    count = len(ids)
    offsets = window_offsets(window)
    positions = np.arange(count)[:, None] + offsets[None, :]  # (n, 2w)
    inside = (positions >= 0) & (positions < count)
    positions = np.clip(positions, 0, max(count - 1, 0))
    mask = inside & (np.abs(offsets)[None, :] <= np.asarray(sizes)[:, None])
    mask &= np.asarray(sentence_ids)[positions] == np.asarray(sentence_ids)[:, None]
    contexts = np.asarray(ids)[positions]
    has_context = mask.any(axis=1)
    return np.asarray(ids)[has_context], contexts[has_context], mask[has_context]


def skipgram_pairs(
    ids: np.ndarray, sentence_ids: np.ndarray, sizes: np.ndarray, *, window: int
) -> np.ndarray:
    """The ``(center, context)`` pairs of ``context_windows`` as an (n_pairs, 2) array.

    >>> skipgram_pairs(np.array([7, 8, 9]), np.array([0, 0, 1]), np.array([2, 2, 2]), window=2)
    array([[7, 8],
           [8, 7]])
    """
    centers, contexts, mask = context_windows(ids, sentence_ids, sizes, window=window)
    rows, columns = np.nonzero(mask)
    return np.stack([centers[rows], contexts[rows, columns]], axis=1)
