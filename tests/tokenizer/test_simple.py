"""The word-level tokenizer against the walkthrough's published figures and hand-derived cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchllm.errors import DisallowedSpecialTokenError, UnknownTokenError
from scratchllm.tokenizer import ENDOFTEXT, UNK, SimpleTokenizer, load_tokenizer
from scratchllm.tokenizer.simple import BOS, EOS, PAD, join_words, split_words


@pytest.fixture(scope="module")
def verdict(shared_data) -> str:
    return (shared_data / "the-verdict.txt").read_text(encoding="utf-8")


def test_published_figures_on_the_verdict(verdict):
    # Published: 4,690 tokens; vocabulary 1,130; 1,132 with <|endoftext|> and <|unk|> appended.
    assert len(split_words(verdict)) == 4690
    assert SimpleTokenizer.train(verdict, special_tokens=()).vocab_size == 1130
    tokenizer = SimpleTokenizer.train(verdict)
    assert tokenizer.vocab_size == 1132
    assert tokenizer.special_tokens == {ENDOFTEXT: 1130, UNK: 1131}
    assert tokenizer.eot_id == 1130


def test_the_walkthroughs_unknown_word_example(verdict):
    tokenizer = SimpleTokenizer.train(verdict)
    text = f"Hello, do you like tea? {ENDOFTEXT} In the sunlit terraces of the palace."
    ids = tokenizer.encode(text, allowed_special="all")
    # "Hello" and "palace" are not in the story: both become <|unk|>; the separator is its id.
    assert ids.count(tokenizer.special_tokens[UNK]) == 2
    assert ids[0] == ids[-2] == 1131
    assert 1130 in ids
    expected = text.replace("Hello", UNK).replace("palace", UNK)
    assert tokenizer.decode(ids) == expected


def test_vocabulary_is_sorted_unique_words_then_specials():
    tokenizer = SimpleTokenizer.train("b a, c a.", special_tokens=(ENDOFTEXT, UNK, PAD))
    assert tokenizer.words == [",", ".", "a", "b", "c"]
    assert tokenizer.special_tokens == {ENDOFTEXT: 5, UNK: 6, PAD: 7}
    assert [tokenizer.id_to_token(i) for i in range(tokenizer.vocab_size)][-3:] == [
        ENDOFTEXT,
        UNK,
        PAD,
    ]


def test_split_follows_the_walkthrough_regex():
    text = 'He said-- "Yes!" (twice); it_was: done? I\'m'
    assert split_words(text) == [
        "He", "said", "--", '"', "Yes", "!", '"', "(", "twice", ")", ";",
        "it", "_", "was", ":", "done", "?", "I", "'", "m",
    ]  # fmt: skip


def test_round_trip_restores_natural_spacing(verdict):
    tokenizer = SimpleTokenizer.train(verdict)
    passage = verdict[:2000]
    decoded = tokenizer.decode(tokenizer.encode(passage))
    assert decoded == join_words(split_words(passage))
    # Same tokens back; only spacing differs (newlines become spaces; like the walkthrough's
    # decoder it keeps spaces around "--" and after an opening quote).
    assert split_words(decoded) == split_words(passage)
    assert decoded.startswith("I HAD always thought Jack Gisburn rather a cheap genius -- though")


def test_strict_mode_names_the_unknown_word():
    tokenizer = SimpleTokenizer.train("the cat sat on the mat", special_tokens=(ENDOFTEXT,))
    assert tokenizer.unknown == "strict"
    with pytest.raises(UnknownTokenError, match="'hat'.*close: (cat|mat|sat)"):
        tokenizer.encode("the hat")
    assert not isinstance(UnknownTokenError("x"), KeyError)


def test_unk_mode_maps_unknown_words():
    tokenizer = SimpleTokenizer.train("the cat", special_tokens=(UNK,))
    assert tokenizer.encode("the dog") == [1, 2]


def test_special_tokens_follow_tiktoken_rules():
    tokenizer = SimpleTokenizer.train("a b", special_tokens=(BOS, EOS, ENDOFTEXT, UNK))
    text = f"{BOS} a {ENDOFTEXT} b {EOS}"
    with pytest.raises(DisallowedSpecialTokenError, match="allowed_special"):
        tokenizer.encode(text)
    assert tokenizer.encode(text, allowed_special="all") == [2, 0, 4, 1, 3]
    # encode_ordinary treats the markers as plain (here unknown) words
    assert tokenizer.encode_ordinary(f"a {ENDOFTEXT}") == [0, 5]


def test_save_load_round_trip(tmp_path, verdict):
    tokenizer = SimpleTokenizer.train(verdict)
    tokenizer.save(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert isinstance(loaded, SimpleTokenizer)
    assert loaded.fingerprint == tokenizer.fingerprint
    sample = verdict[:500] + " Zanzibar"
    assert loaded.encode(sample) == tokenizer.encode(sample)


words = st.sampled_from(["the", "cat", "sat", ",", ".", "--", "?", "(", ")", "mat", "a"])


@given(st.lists(words, max_size=30))
def test_encode_decode_is_identity_on_normalised_text(tokens):
    tokenizer = SimpleTokenizer.train(" ".join(["the cat sat , . -- ? ( ) mat a"]))
    text = join_words(tokens)
    assert tokenizer.decode(tokenizer.encode(text)) == join_words(split_words(text))
