"""Vocabulary, subsampling and noise distribution against hand-derived values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratchllm.errors import ConfigError, DataLengthError
from scratchllm.word2vec.vocab import Vocabulary, keep_probabilities, noise_distribution


def test_build_keeps_min_count_orders_by_count_then_first_appearance():
    sentences = [["z", "y", "x", "y"], ["x", "w", "z", "v"]]
    vocabulary = Vocabulary.build(sentences, min_count=2)
    assert vocabulary.words == ("z", "y", "x")  # all count 2: first-appearance order
    assert vocabulary.counts == (2, 2, 2)
    assert vocabulary.total == 6


def test_encode_drops_unknown_words_and_numbers_sentences():
    vocabulary = Vocabulary(("a", "b"), (5, 3))
    ids, sentence_ids = vocabulary.encode([["b", "q", "a"], [], ["q"], ["a"]])
    assert ids.tolist() == [1, 0, 0]
    assert sentence_ids.tolist() == [0, 0, 3]


@pytest.mark.parametrize("sentences", [[], [["once", "only"]], [["same", "same", "same"]]], ids=str)
def test_too_small_a_text_is_a_clear_error(sentences):
    with pytest.raises(DataLengthError, match="min_count=2"):
        Vocabulary.build(sentences, min_count=2)


def test_min_count_must_be_positive():
    with pytest.raises(ConfigError, match="min_count"):
        Vocabulary.build([["a"]], min_count=0)


def test_keep_probabilities_follow_the_word2vec_formula():
    counts = [5000, 400, 20, 1]
    sample = 1e-3
    threshold = sample * sum(counts)  # 5.421
    expected = [min(1.0, (math.sqrt(c / threshold) + 1) * threshold / c) for c in counts]
    np.testing.assert_allclose(keep_probabilities(counts, sample), expected, rtol=1e-12)
    # hand-computed: (sqrt(5000/5.421) + 1) * 5.421/5000 = 0.03401
    assert keep_probabilities(counts, sample)[0] == pytest.approx(0.03401, abs=1e-5)
    assert keep_probabilities(counts, sample)[-1] == 1.0  # rare words are always kept
    assert keep_probabilities(counts, 0.0).tolist() == [1.0] * 4
    with pytest.raises(ConfigError, match="sample"):
        keep_probabilities(counts, -1.0)


def test_noise_distribution_is_the_unigram_to_the_three_quarters():
    probabilities = noise_distribution([81, 16, 1])
    # 81^0.75 = 27, 16^0.75 = 8, 1^0.75 = 1
    np.testing.assert_allclose(probabilities, [27 / 36, 8 / 36, 1 / 36])
    assert noise_distribution([81, 16, 1], exponent=1.0).tolist() == pytest.approx(
        [81 / 98, 16 / 98, 1 / 98]
    )
