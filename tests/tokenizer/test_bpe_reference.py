"""The textbook training loop, and our fast trainer held against it merge for merge."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.tokenizer import ENDOFTEXT, BPETokenizer
from scratchllm.tokenizer.bpe import count_chunks, iter_documents, learn_bpe
from scratchllm.tokenizer.bpe_reference import (
    get_stats,
    merge,
    split_into_chunks,
    train_reference,
)
from scratchllm.tokenizer.patterns import compile_pattern


def fast_merges(text, vocab_size: int, *, pattern: str = "gpt2", specials=(ENDOFTEXT,)):
    """learn_bpe's tokens and merges, sized like train_reference's."""
    specials = list(specials)
    counts = count_chunks(iter_documents(text), compile_pattern(pattern), specials)
    return learn_bpe(counts, vocab_size - len(specials))


def test_get_stats_and_merge_hand_derived() -> None:
    assert get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    counts = get_stats([1, 2], {(1, 2): 5})
    assert counts == {(1, 2): 6}
    assert merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge([7, 7, 7], (7, 7), 8) == [8, 7]
    assert merge([], (1, 2), 3) == []


def test_split_into_chunks_cuts_special_tokens_and_documents() -> None:
    chunks = split_into_chunks(["hi<|endoftext|>yo", "u"], "gpt2", [ENDOFTEXT])
    assert chunks == [list(b"hi"), list(b"yo"), list(b"u")]


def test_worked_example_of_the_docstring() -> None:
    tokens, merges = train_reference("hug hugs pug", 259)
    assert merges == [(ord("u"), ord("g"), 256), (ord("h"), 256, 257)]
    assert tokens[256:] == [b"ug", b"hug"]


def test_ties_go_to_the_lowest_pair() -> None:
    # (a, b) and (c, d) both occur twice: (97, 98) < (99, 100), so "ab" is merged first
    documents = ["cd", "ab", "cd", "ab"]
    _, reference = train_reference(documents, 257, special_tokens=[])
    _, fast = fast_merges(documents, 257, specials=[])
    assert reference == fast == [(97, 98, 256)]


@pytest.mark.parametrize(
    ("name", "vocab_size", "pattern"),
    [
        ("the-verdict.txt", 350, "gpt2"),
        ("the-verdict.txt", 330, "gpt4"),
        ("small-text-sample.txt", 400, "gpt2"),
    ],
)
def test_fast_training_learns_the_reference_merges(shared_data: Path, name, vocab_size, pattern):
    text = (shared_data / name).read_text(encoding="utf-8")
    expected_tokens, expected_merges = train_reference(text, vocab_size, pattern=pattern)
    tokens, merges = fast_merges(text, vocab_size, pattern=pattern)
    assert merges == expected_merges
    assert tokens == expected_tokens
    trained = BPETokenizer.train(text, vocab_size, pattern=pattern)
    assert dict(trained.mergeable_ranks) == {token: i for i, token in enumerate(expected_tokens)}


@settings(max_examples=100, deadline=None)
@given(
    documents=st.lists(
        st.lists(
            st.text(alphabet=st.sampled_from("aab  b\nc'sé1<|>"), max_size=12) | st.just(ENDOFTEXT),
            max_size=5,
        ).map("".join),
        max_size=5,
    ),
    extra=st.integers(0, 30),
)
def test_fast_training_matches_the_reference_on_random_texts(documents, extra) -> None:
    vocab_size = 256 + 1 + extra
    assert fast_merges(documents, vocab_size) == train_reference(documents, vocab_size)
