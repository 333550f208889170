"""What a word is: prose and Python identifiers, and sentences cut at a maximum length."""

from __future__ import annotations

import pytest

from scratchllm.errors import ConfigError
from scratchllm.word2vec.words import sentences, split_words


def test_identifiers_split_at_dots_and_keep_underscores():
    assert split_words("os.path.join(self.__dict__, my_name2)") == [
        "os", "path", "join", "self", "__dict__", "my_name2",
    ]  # fmt: skip


def test_prose_drops_punctuation_and_lowercases_unless_asked():
    assert split_words("The Cat, the cat!") == ["the", "cat", "the", "cat"]
    assert split_words("The Cat", lowercase=False) == ["The", "Cat"]
    assert split_words("Ünïcode wörds") == ["ünïcode", "wörds"]


def test_sentences_never_exceed_max_length_and_skip_empty_texts():
    texts = ["a b c d e f g", "", "...", "h"]
    pieces = list(sentences(texts, max_length=3))
    assert pieces == [["a", "b", "c"], ["d", "e", "f"], ["g"], ["h"]]
    with pytest.raises(ConfigError, match="max_length"):
        list(sentences(texts, max_length=0))
