"""Dynamic context windows against a naive loop over positions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.word2vec.windows import context_windows, reduced_windows, skipgram_pairs


def naive_pairs(ids, sentence_ids, sizes):
    """The textbook double loop: each center, each word within its window and sentence."""
    pairs = []
    for center in range(len(ids)):
        for other in range(center - sizes[center], center + sizes[center] + 1):
            inside = 0 <= other < len(ids) and other != center
            if inside and sentence_ids[other] == sentence_ids[center]:
                pairs.append((ids[center], ids[other]))
    return sorted(pairs)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda window: st.tuples(
            st.just(window),
            st.lists(st.tuples(st.integers(0, 9), st.integers(0, 2), st.integers(1, window)),
                     min_size=1, max_size=30),
        )
    )
)  # fmt: skip
def test_pairs_equal_the_naive_loop(case):
    window, rows = case
    ids = np.array([row[0] for row in rows])
    sentence_ids = np.cumsum([row[1] == 0 for row in rows])  # a 0 starts a new sentence
    sizes = np.array([row[2] for row in rows])
    pairs = skipgram_pairs(ids, sentence_ids, sizes, window=window)
    assert sorted(map(tuple, pairs.tolist())) == naive_pairs(ids, sentence_ids, sizes)


def test_centers_without_context_are_left_out():
    centers, contexts, mask = context_windows(
        np.array([5, 6, 7]), np.array([0, 1, 1]), np.array([3, 3, 3]), window=3
    )
    assert centers.tolist() == [6, 7]  # 5 is alone in its sentence
    assert contexts.shape == mask.shape == (2, 6)
    assert mask.sum(axis=1).tolist() == [1, 1]


def test_reduced_windows_are_uniform_over_one_to_window():
    sizes = reduced_windows(50_000, 5, np.random.default_rng(0))
    assert sizes.min() == 1 and sizes.max() == 5
    shares = np.bincount(sizes, minlength=6)[1:] / len(sizes)
    np.testing.assert_allclose(shares, 0.2, atol=0.01)
