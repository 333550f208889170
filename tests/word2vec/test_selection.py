"""Choosing the points of a map: word groups, top words, and a GPT's tokens."""

from __future__ import annotations

import pytest
import torch

from scratchllm.errors import ConfigError, UnknownWordError
from scratchllm.tokenizer import BPETokenizer, SimpleTokenizer
from scratchllm.word2vec.selection import (
    parse_word_groups,
    token_for_word,
    token_points,
    word_points,
)
from scratchllm.word2vec.vectors import WordVectors

TEXT = "the cat sat on the mat . the dog sat on the log , a cat and a dog ."


@pytest.fixture
def vectors() -> WordVectors:
    words = ["the", "cat", "dog", "mat", "log"]
    return WordVectors(words, torch.arange(15.0).view(5, 3))


def test_groups_keep_their_order_and_colours(vectors):
    points = word_points(vectors, groups=parse_word_groups(["cat,dog", "mat log"]))
    assert points.labels == ["cat", "dog", "mat", "log"]
    assert points.groups == [0, 0, 1, 1]
    assert torch.equal(points.vectors[0], vectors["cat"])


def test_without_words_the_first_top_words_are_drawn(vectors):
    points = word_points(vectors, top=3)
    assert points.labels == ["the", "cat", "dog"] and points.groups == [0, 0, 0]
    with pytest.raises(ConfigError, match="at least 2"):
        word_points(vectors, top=1)


def test_unknown_or_repeated_words_are_errors(vectors):
    with pytest.raises(UnknownWordError, match="'cow'"):
        word_points(vectors, groups=[["cat", "cow"]])
    with pytest.raises(ConfigError, match="twice"):
        word_points(vectors, groups=[["cat"], ["cat"]])


def test_token_points_rank_tokens_by_frequency_in_texts():
    tokenizer = SimpleTokenizer.train(TEXT)
    table = torch.randn(tokenizer.vocab_size, 4, generator=torch.Generator().manual_seed(0))
    points = token_points(table, tokenizer, texts=[TEXT, "the cat . . . ."], top=3)
    # the: 4 + 1, cat: 2 + 1, then the words seen twice in order of appearance: sat first;
    # '.' (6 times) is left out: it has no letter
    assert points.labels == ["the", "cat", "sat"]
    the = tokenizer.encode("the")[0]
    assert torch.equal(points.vectors[0], table[the])


def test_token_points_without_texts_take_the_first_word_tokens():
    tokenizer = SimpleTokenizer.train(TEXT)  # vocabulary: punctuation first, then sorted words
    table = torch.zeros(tokenizer.vocab_size, 4)
    points = token_points(table, tokenizer, top=3)
    assert points.labels == ["and", "cat", "dog"]  # 'a' and 'on' are shorter than 3 letters


def test_chosen_words_must_be_single_tokens_and_show_spaces():
    tokenizer = BPETokenizer.train(TEXT * 20, vocab_size=270)
    table = torch.zeros(tokenizer.vocab_size, 4)
    the = token_for_word(tokenizer, "the")
    assert tokenizer.decode([the]).strip() == "the"
    points = token_points(table, tokenizer, groups=[["the"], ["cat"]])
    assert all("\u00b7" in label or label.isalpha() for label in points.labels)
    with pytest.raises(UnknownWordError, match="not a single token"):
        token_for_word(tokenizer, "zebra")
