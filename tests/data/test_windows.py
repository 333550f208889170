"""The sliding-window dataset against the walkthrough's figures and its list-of-tensors version."""

from __future__ import annotations

import numpy as np
import pytest
import tiktoken
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scratchllm.data.shards import read_tokens, write_tokens
from scratchllm.data.windows import (
    SlidingWindowDataset,
    create_dataloader,
    create_dataloader_from_text,
    window_count,
)
from scratchllm.errors import ConfigError, DataLengthError
from scratchllm.tokenizer import SimpleTokenizer, get_tokenizer

# The walkthrough's first batch at batch_size=8, max_length=4, stride=4 on "The Verdict":
# derived with tiktoken's GPT-2 encoding (ids[0:32] and ids[1:33] in rows of 4); its first two
# rows are the published figures [40, 367, 2885, 1464] and [1807, 3619, 402, 271].
BOOK_FIRST_BATCH_INPUTS = [
    [40, 367, 2885, 1464],
    [1807, 3619, 402, 271],
    [10899, 2138, 257, 7026],
    [15632, 438, 2016, 257],
    [922, 5891, 1576, 438],
    [568, 340, 373, 645],
    [1049, 5975, 284, 502],
    [284, 3285, 326, 11],
]
BOOK_FIRST_BATCH_TARGETS = [
    [367, 2885, 1464, 1807],
    [3619, 402, 271, 10899],
    [2138, 257, 7026, 15632],
    [438, 2016, 257, 922],
    [5891, 1576, 438, 568],
    [340, 373, 645, 1049],
    [5975, 284, 502, 284],
    [3285, 326, 11, 287],
]


class BookDataset(torch.utils.data.Dataset):
    """The walkthrough's GPTDatasetV1, written out here as the naive reference: one input
    tensor and one target tensor per window, built up front."""

    def __init__(self, token_ids, max_length, stride):
        self.input_ids = []
        self.target_ids = []
        for i in range(0, len(token_ids) - max_length, stride):
            self.input_ids.append(torch.tensor(token_ids[i : i + max_length]))
            self.target_ids.append(torch.tensor(token_ids[i + 1 : i + max_length + 1]))

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, index):
        return self.input_ids[index], self.target_ids[index]


@pytest.fixture(scope="module")
def verdict_text(shared_data) -> str:
    return (shared_data / "the-verdict.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def verdict_ids(verdict_text) -> list[int]:
    ids = tiktoken.get_encoding("gpt2").encode(verdict_text, allowed_special={"<|endoftext|>"})
    assert len(ids) == 5145  # the published token count
    return ids


# ---- the published figures ------------------------------------------------------------------


def test_published_batches_at_stride_one(verdict_text):
    loader = create_dataloader_from_text(
        verdict_text, get_tokenizer("gpt2"), batch_size=1, max_length=4, stride=1, shuffle=False
    )
    batches = iter(loader)
    inputs, targets = next(batches)
    assert inputs.tolist() == [[40, 367, 2885, 1464]]
    assert targets.tolist() == [[367, 2885, 1464, 1807]]
    inputs, targets = next(batches)
    assert inputs.tolist() == [[367, 2885, 1464, 1807]]
    assert targets.tolist() == [[2885, 1464, 1807, 3619]]


def test_published_batch_of_eight_at_stride_four(verdict_text, verdict_ids):
    loader = create_dataloader_from_text(
        verdict_text, get_tokenizer("gpt2"), batch_size=8, max_length=4, stride=4, shuffle=False
    )
    inputs, targets = next(iter(loader))
    assert inputs.dtype == targets.dtype == torch.int64
    assert inputs.tolist() == BOOK_FIRST_BATCH_INPUTS
    assert targets.tolist() == BOOK_FIRST_BATCH_TARGETS
    # and independently of the pinned numbers: rows are consecutive slices of the token array
    ids = np.asarray(verdict_ids)
    np.testing.assert_array_equal(inputs.numpy(), ids[0:32].reshape(8, 4))
    np.testing.assert_array_equal(targets.numpy(), ids[1:33].reshape(8, 4))


def test_text_is_taken_as_the_walkthrough_takes_it(verdict_text):
    # create_dataloader_v1(txt, batch_size=8, max_length=4, stride=4, shuffle=False)
    loader = create_dataloader(verdict_text, batch_size=8, max_length=4, stride=4, shuffle=False)
    inputs, targets = next(iter(loader))
    assert inputs[0].tolist() == [40, 367, 2885, 1464]  # the published figure
    assert inputs.tolist() == BOOK_FIRST_BATCH_INPUTS
    assert targets.tolist() == BOOK_FIRST_BATCH_TARGETS
    simple = SimpleTokenizer.train(verdict_text)
    loader = create_dataloader(verdict_text, tokenizer=simple, batch_size=1, max_length=3)
    assert len(loader.dataset) == window_count(4690, max_length=3, stride=128)  # 4,690 words


def test_a_tokenizer_with_token_ids_is_an_error():
    with pytest.raises(ConfigError, match="these are token ids already"):
        create_dataloader([1, 2, 3, 4, 5], tokenizer=SimpleTokenizer(["a"]), max_length=2)


def test_every_window_of_the_verdict_matches_the_book(verdict_ids):
    for max_length, stride in [(4, 1), (256, 128), (256, 256)]:
        ours = SlidingWindowDataset(verdict_ids, max_length=max_length, stride=stride)
        book = BookDataset(verdict_ids, max_length, stride)
        assert len(ours) == len(book)
        for index in (0, 1, len(book) // 2, len(book) - 1):
            assert torch.equal(ours[index][0], book[index][0])
            assert torch.equal(ours[index][1], book[index][1])


# ---- against the naive reference and the count formula -----------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    tokens=arrays(np.int64, st.integers(2, 120), elements=st.integers(0, 50_256)),
    max_length=st.integers(1, 40),
    stride=st.integers(1, 40),
)
def test_same_windows_as_the_book_dataset(tokens, max_length, stride):
    book = BookDataset(tokens.tolist(), max_length, stride)
    if len(tokens) <= max_length:
        with pytest.raises(DataLengthError):
            SlidingWindowDataset(tokens, max_length=max_length, stride=stride)
        return
    ours = SlidingWindowDataset(tokens, max_length=max_length, stride=stride)
    assert len(ours) == len(book)
    for (our_input, our_target), (book_input, book_target) in zip(ours, book, strict=False):
        assert our_input.dtype == our_target.dtype == torch.int64
        assert torch.equal(our_input, book_input)
        assert torch.equal(our_target, book_target)


@given(
    token_count=st.integers(0, 10_000),
    max_length=st.integers(1, 1_000),
    stride=st.integers(1, 1_000),
)
def test_window_count_is_the_length_of_the_books_range(token_count, max_length, stride):
    expected = len(range(0, token_count - max_length, stride))
    assert window_count(token_count, max_length=max_length, stride=stride) == expected


def test_window_count_hand_derived():
    # 10 tokens, max_length 4: starts 0..5 at stride 1 (start 5 uses tokens 5..9 with target)
    assert window_count(10, max_length=4, stride=1) == 6
    # stride 4: starts 0 and 4; start 8 would need tokens up to index 12
    assert window_count(10, max_length=4, stride=4) == 2
    assert window_count(5, max_length=4, stride=100) == 1
    assert window_count(4, max_length=4, stride=1) == 0


# ---- zero-copy sources and dtypes --------------------------------------------------------------


def test_memmap_backed_dataset_reads_a_token_file(tmp_path, verdict_ids):
    path = tmp_path / "verdict.bin"
    write_tokens(path, verdict_ids, vocab_size=50257, fingerprint="0123456789abcdef")
    token_file = read_tokens(path)
    dataset = SlidingWindowDataset(token_file, max_length=4, stride=4)
    assert isinstance(dataset.tokens, np.memmap)  # the file, not a copy of it
    assert dataset.tokens.dtype == np.uint16
    inputs, targets = dataset[1]
    assert inputs.dtype == targets.dtype == torch.int64
    assert inputs.tolist() == verdict_ids[4:8]
    assert targets.tolist() == verdict_ids[5:9]
    loader = create_dataloader(
        token_file.tokens, batch_size=8, max_length=4, stride=4, shuffle=False
    )
    assert next(iter(loader))[0].tolist() == BOOK_FIRST_BATCH_INPUTS


def test_uint16_ids_above_32767_come_out_as_int64():
    tokens = np.array([65535, 40000, 50256, 1, 2], dtype=np.uint16)
    inputs, targets = SlidingWindowDataset(tokens, max_length=3, stride=1)[0]
    assert inputs.dtype == torch.int64
    assert inputs.tolist() == [65535, 40000, 50256]  # no wrap-around to negative values
    assert targets.tolist() == [40000, 50256, 1]


def test_tensor_and_array_sources_are_not_copied():
    tensor = torch.arange(100)
    assert np.shares_memory(SlidingWindowDataset(tensor, max_length=8, stride=8).tokens, tensor)
    array = np.arange(100, dtype=np.uint32)
    assert SlidingWindowDataset(array, max_length=8, stride=8).tokens is array


def test_dataset_holds_no_per_window_tensors():
    dataset = SlidingWindowDataset(np.arange(10_000), max_length=16, stride=1)
    tensors = [value for value in vars(dataset).values() if isinstance(value, torch.Tensor | list)]
    assert tensors == []
    assert len(dataset) == 10_000 - 16


def test_negative_and_out_of_range_indices():
    dataset = SlidingWindowDataset(list(range(10)), max_length=4, stride=4)
    assert dataset[-1][0].tolist() == [4, 5, 6, 7]
    with pytest.raises(IndexError, match="window 2 out of range for 2 windows"):
        dataset[2]
    with pytest.raises(IndexError):
        dataset[-3]


# ---- errors ------------------------------------------------------------------------------------


def test_text_shorter_than_one_window_is_a_clear_error():
    with pytest.raises(DataLengthError) as caught:
        SlidingWindowDataset(list(range(256)), max_length=256, stride=128)
    message = str(caught.value)
    assert "256 tokens" in message and "max_length 256 needs 257" in message
    assert "smaller max_length or more text" in message


@pytest.mark.parametrize(("max_length", "stride"), [(0, 1), (4, 0), (-1, 1), (True, 1), (4, 1.5)])
def test_invalid_window_options(max_length, stride):
    with pytest.raises(ValueError, match="must be a positive integer"):
        SlidingWindowDataset(list(range(100)), max_length=max_length, stride=stride)


@pytest.mark.parametrize(
    "tokens", [np.zeros((4, 4), dtype=np.int64), np.linspace(0, 1, 10), torch.ones(3, 3)]
)
def test_tokens_must_be_one_dimensional_integers(tokens):
    with pytest.raises(ValueError, match="one-dimensional|integer ids"):
        SlidingWindowDataset(tokens, max_length=2, stride=1)


def test_a_loader_that_would_be_empty_is_refused():
    # 20 tokens -> 2 windows of 8 at stride 8; batch_size 4 with drop_last drops both
    with pytest.raises(DataLengthError, match="2 window.*fewer than batch_size 4"):
        create_dataloader(np.arange(20), batch_size=4, max_length=8, stride=8)
    loader = create_dataloader(np.arange(20), batch_size=4, max_length=8, stride=8, drop_last=False)
    assert [inputs.shape[0] for inputs, _ in loader] == [2]


# ---- shuffling ---------------------------------------------------------------------------------


def _first_column(loader) -> list[int]:
    return [value for inputs, _ in loader for value in inputs[:, 0].tolist()]


def test_seeded_shuffle_is_reproducible_and_seed_dependent():
    tokens = np.arange(1_001)
    options = {"batch_size": 5, "max_length": 10, "stride": 10}
    first = _first_column(create_dataloader(tokens, seed=1, **options))
    again = _first_column(create_dataloader(tokens, seed=1, **options))
    other = _first_column(create_dataloader(tokens, seed=2, **options))
    in_order = _first_column(create_dataloader(tokens, shuffle=False, **options))
    assert first == again
    assert first != other
    assert in_order == list(range(0, 1_000, 10))
    assert sorted(first) == sorted(other) == in_order  # a permutation: every window once


def test_shuffle_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    loader = create_dataloader(np.arange(1_001), batch_size=5, max_length=10, stride=10, seed=3)
    _first_column(loader)
    assert torch.equal(torch.rand(1), expected)


def test_workers_give_the_same_batches(verdict_ids):
    options = {"batch_size": 4, "max_length": 32, "stride": 32, "seed": 7}
    single = [inputs for inputs, _ in create_dataloader(verdict_ids, **options)]
    workers = [inputs for inputs, _ in create_dataloader(verdict_ids, num_workers=2, **options)]
    assert len(single) == len(workers) == window_count(5145, max_length=32, stride=32) // 4
    assert all(torch.equal(a, b) for a, b in zip(single, workers, strict=True))


def test_text_loader_encodes_the_end_of_text_token():
    text = "Hello<|endoftext|> world, again and again."
    expected = tiktoken.get_encoding("gpt2").encode(text, allowed_special={"<|endoftext|>"})
    assert expected[1] == 50256
    loader = create_dataloader_from_text(
        text, get_tokenizer("gpt2"), batch_size=1, max_length=3, stride=3, shuffle=False
    )
    inputs, targets = next(iter(loader))
    assert inputs.tolist() == [expected[0:3]]
    assert targets.tolist() == [expected[1:4]]
