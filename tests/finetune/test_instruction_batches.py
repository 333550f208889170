"""Instruction batches: the walkthrough's collate, prompt masking, length grouping, packing.

Oracles: the walkthrough's printed toy batch and its own ``custom_collate_fn`` and
``format_input`` (package ``llms-from-scratch``, chapter 7), tiktoken, and the padded batch
itself for packing: a tiny random GPT must give the packed rows the same mean loss and the
same gradients.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import tiktoken
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.config import GPTConfig
from scratchllm.errors import ConfigError
from scratchllm.finetune.instruction_batches import (
    IGNORE_INDEX,
    EncodedInstruction,
    collate,
    encode_instruction,
    encode_instructions,
    first_fit_decreasing,
    length_grouped_order,
    pack,
    padding_fraction,
)
from scratchllm.finetune.instructions import read_instructions, split_instructions
from scratchllm.finetune.prompts import get_prompt_format
from scratchllm.model.gpt import GPT, document_positions
from scratchllm.tokenizer import get_tokenizer

EOT = 50256
ALPACA = get_prompt_format("alpaca")


def plain(*sequences: list[int]) -> list[EncodedInstruction]:
    return [EncodedInstruction(tuple(ids), prompt_length=0) for ids in sequences]


@pytest.fixture(scope="module")
def gpt2():
    return get_tokenizer("gpt2")


@pytest.fixture(scope="module")
def entries(shared_data: Path):
    return read_instructions(shared_data / "instruction-data.json")


@pytest.fixture(scope="module")
def walkthrough():
    """The walkthrough's chapter-7 module. It imports psutil for a check we never call (is an
    Ollama server running?), so a stand-in serves where psutil is not installed."""
    pytest.importorskip("llms_from_scratch", reason="the walkthrough's package (make test)")
    stand_in = None
    if "psutil" not in sys.modules:
        try:
            import psutil  # noqa: F401
        except ImportError:
            stand_in = sys.modules["psutil"] = types.ModuleType("psutil")
    try:
        from llms_from_scratch import ch07
    except ImportError as error:
        pytest.skip(f"the walkthrough's ch07 does not import here: {error}")
    finally:
        if stand_in is not None:
            del sys.modules["psutil"]
    return ch07


# --- the collate ---------------------------------------------------------------------------------


def test_the_walkthroughs_toy_batch() -> None:
    batch = collate(plain([0, 1, 2, 3, 4], [5, 6], [7, 8, 9]), pad_id=EOT)
    assert set(batch) == {"inputs", "targets"}
    assert batch["inputs"].dtype == batch["targets"].dtype == torch.long
    assert batch["inputs"].tolist() == [
        [0, 1, 2, 3, 4],
        [5, 6, EOT, EOT, EOT],
        [7, 8, 9, EOT, EOT],
    ]
    assert batch["targets"].tolist() == [
        [1, 2, 3, 4, EOT],
        [6, EOT, -100, -100, -100],
        [8, 9, EOT, -100, -100],
    ]
    cut = collate(plain([0, 1, 2, 3, 4], [5, 6], [7, 8, 9]), pad_id=EOT, max_length=3)
    assert cut["inputs"].tolist() == [[0, 1, 2], [5, 6, EOT], [7, 8, 9]]
    assert cut["targets"].tolist() == [[1, 2, 3], [6, EOT, -100], [8, 9, EOT]]


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    max_length=st.one_of(st.none(), st.integers(1, 14)),
    seed=st.integers(0, 2**16),
)
def test_collate_is_the_walkthroughs_custom_collate_fn(walkthrough, lengths, max_length, seed):
    generator = np.random.default_rng(seed)
    sequences = [generator.integers(0, EOT, length).tolist() for length in lengths]
    ours = collate(plain(*sequences), pad_id=EOT, max_length=max_length)
    inputs, targets = walkthrough.custom_collate_fn(
        [list(ids) for ids in sequences], allowed_max_length=max_length
    )
    assert torch.equal(ours["inputs"], inputs) and torch.equal(ours["targets"], targets)


def test_masking_the_prompt_ignores_the_targets_that_predict_prompt_tokens() -> None:
    examples = [EncodedInstruction((10, 11, 12, 13, 14), 3), EncodedInstruction((20, 21), 2)]
    batch = collate(examples, pad_id=EOT, mask_prompt=True)
    assert batch["targets"].tolist() == [[-100, -100, 13, 14, EOT], [-100, EOT, -100, -100, -100]]
    whole_prompt = collate([EncodedInstruction((1, 2, 3), 3)], pad_id=EOT, mask_prompt=True)
    assert whole_prompt["targets"].tolist() == [[-100, -100, EOT]]  # still learns to stop
    unmasked = collate(examples, pad_id=EOT)
    assert torch.equal(batch["inputs"], unmasked["inputs"])


def test_collate_rejects_an_empty_batch_or_example() -> None:
    with pytest.raises(ConfigError, match="at least one example"):
        collate([], pad_id=EOT)
    with pytest.raises(ConfigError, match="max_length must be a positive"):
        collate(plain([1]), pad_id=EOT, max_length=0)
    with pytest.raises(ConfigError, match="at least one token id"):
        EncodedInstruction((), 0)
    with pytest.raises(ConfigError, match="prompt_length must be between 0 and the 2 ids"):
        EncodedInstruction((1, 2), 3)


# --- encoding ------------------------------------------------------------------------------------


def test_encoding_is_the_walkthroughs_text_with_the_prompt_as_a_prefix(gpt2, entries) -> None:
    encoded = encode_instructions(entries, gpt2, ALPACA)
    encoding = tiktoken.get_encoding("gpt2")
    for entry, example in zip(entries, encoded, strict=True):
        # the walkthrough's InstructionDataset text (its format_input is our Alpaca prompt)
        prompt = ALPACA.prompt(entry["instruction"], entry["input"])
        assert list(example.ids) == encoding.encode(prompt + entry["output"])
        assert list(example.ids[: example.prompt_length]) == encoding.encode(prompt)
    assert max(len(example.ids) for example in encoded) == 91


def test_format_input_is_our_alpaca_prompt(walkthrough, entries) -> None:
    for entry in entries.entries[:100]:
        expected = walkthrough.format_input(entry) + "\n\n### Response:\n"
        assert ALPACA.prompt(entry["instruction"], entry["input"]) == expected


def test_a_merge_across_the_boundary_keeps_the_common_prefix(gpt2) -> None:
    # the prompt ends in "\n" and the output starts with "\n\n": GPT-2 encodes the three
    # newlines as "\n\n" + "\n", so the prompt's own last token is not in the whole text
    entry = {"instruction": "Print two lines.", "input": "", "output": "\n\nA\nB"}
    example = encode_instruction(entry, gpt2, ALPACA)
    prompt_ids = gpt2.encode_ordinary(ALPACA.prompt(entry["instruction"]))
    assert list(example.ids[: len(prompt_ids)]) != prompt_ids
    assert example.prompt_length == len(prompt_ids) - 1
    assert list(example.ids[: example.prompt_length]) == prompt_ids[:-1]


# --- length grouping ---------------------------------------------------------------------------


def test_length_grouped_order_is_a_reproducible_permutation() -> None:
    lengths = np.random.default_rng(0).integers(1, 300, 935)
    order = length_grouped_order(lengths, batch_size=8, seed=123, epoch=0)
    assert sorted(order.tolist()) == list(range(935))
    again = length_grouped_order(lengths, batch_size=8, seed=123, epoch=0)
    assert np.array_equal(order, again)
    assert not np.array_equal(order, length_grouped_order(lengths, batch_size=8, seed=123, epoch=1))
    assert not np.array_equal(order, length_grouped_order(lengths, batch_size=8, seed=1, epoch=0))
    # the final partial batch (935 = 116 x 8 + 7) stays last, so full batches stay aligned
    assert len(length_grouped_order([3] * 5, batch_size=2, seed=0, epoch=0)) == 5
    with pytest.raises(ConfigError, match="batch_size and group_batches must be positive"):
        length_grouped_order(lengths, batch_size=0, seed=0, epoch=0)


def test_length_grouping_pads_far_less_than_a_plain_shuffle(gpt2, entries) -> None:
    train = split_instructions(entries).train
    lengths = np.array([len(example.ids) for example in encode_instructions(train, gpt2, ALPACA)])

    def padding(order: np.ndarray) -> float:
        batches = lengths[order[: len(order) // 8 * 8]].reshape(-1, 8)
        return 1 - batches.sum() / (batches.max(axis=1).sum() * 8)

    shuffled = padding(np.random.default_rng([123, 0]).permutation(len(lengths)))
    grouped = padding(length_grouped_order(lengths, batch_size=8, seed=123, epoch=0))
    # measured: 19.6% of the positions are padding in the shuffled batches, 0.9% grouped
    assert shuffled > 0.15 and grouped < shuffled / 10, (shuffled, grouped)


# --- packing -------------------------------------------------------------------------------------

TINY = GPTConfig(vocab_size=97, context_length=32, n_embd=32, n_head=4, n_layer=2, dropout=0.0)
PAD = 96  # the tiny vocabulary's end-of-text


def random_examples(seed: int, count: int, max_tokens: int = 20) -> list[EncodedInstruction]:
    generator = np.random.default_rng(seed)
    examples = []
    for _ in range(count):
        length = int(generator.integers(1, max_tokens + 1))
        ids = tuple(generator.integers(0, PAD, length).tolist())
        examples.append(EncodedInstruction(ids, int(generator.integers(0, length + 1))))
    return examples


def mean_loss(model: GPT, batch) -> torch.Tensor:
    extra = {key: batch[key] for key in ("document_ids", "positions") if key in batch}
    logits = model(batch["inputs"], **extra)
    return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=-100)


def test_first_fit_decreasing_fills_rows_within_capacity() -> None:
    lengths = np.random.default_rng(1).integers(1, 30, 50).tolist()
    bins = first_fit_decreasing(lengths, capacity=32)
    assert sorted(index for row in bins for index in row) == list(range(50))
    assert all(sum(lengths[index] for index in row) <= 32 for row in bins)
    assert len(bins) <= sum(lengths) / 32 * 11 / 9 + 1


def test_packed_rows_hold_each_example_once_with_its_targets() -> None:
    examples = random_examples(seed=4, count=9, max_tokens=40)  # some longer than max_length
    packed = pack(examples, max_length=24, pad_id=PAD, mask_prompt=True)
    padded = collate(examples, pad_id=PAD, max_length=24, mask_prompt=True)
    assert packed["inputs"].shape[1] <= 24 and len(packed["inputs"]) < len(examples)
    assert torch.equal(packed["positions"], document_positions(packed["document_ids"]))
    found = []
    for row in range(len(packed["inputs"])):
        for document in packed["document_ids"][row].unique().tolist():
            where = packed["document_ids"][row] == document
            if document != -1:
                found.append((packed["inputs"][row][where], packed["targets"][row][where]))
            else:
                assert torch.all(packed["targets"][row][where] == IGNORE_INDEX)
    expected = []
    for row in range(len(examples)):
        length = min(len(examples[row].ids), 24)
        expected.append((padded["inputs"][row, :length], padded["targets"][row, :length]))

    def key(pair):
        return (pair[0].tolist(), pair[1].tolist())

    assert sorted(map(key, found)) == sorted(map(key, expected))
    assert padding_fraction(packed, pad_id=PAD) < padding_fraction(padded, pad_id=PAD)


@pytest.mark.parametrize(("mask_prompt", "max_length"), [(False, 32), (True, 32), (False, 12)])
def test_packed_loss_and_gradients_equal_the_padded_batchs(mask_prompt, max_length) -> None:
    examples = random_examples(seed=7, count=8)
    options = {"pad_id": PAD, "mask_prompt": mask_prompt}
    padded = collate(examples, max_length=max_length, **options)
    packed = pack(examples, max_length=max_length, **options)
    assert len(packed["inputs"]) <= len(padded["inputs"])
    losses, gradients = [], []
    for batch in (padded, packed):
        model = GPT(TINY, generator=torch.Generator().manual_seed(3))
        loss = mean_loss(model, batch)
        loss.backward()
        losses.append(loss.detach())
        gradients.append([parameter.grad for parameter in model.parameters()])
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=0)
    for packed_gradient, padded_gradient in zip(gradients[1], gradients[0], strict=True):
        torch.testing.assert_close(packed_gradient, padded_gradient, atol=1e-5, rtol=1e-4)


def test_pack_rejects_an_empty_batch_or_a_bad_length() -> None:
    with pytest.raises(ConfigError, match="at least one example"):
        pack([], max_length=8, pad_id=PAD)
    with pytest.raises(ConfigError, match="max_length must be a positive"):
        pack(plain([1]), max_length=0, pad_id=PAD)


def test_padding_fraction_of_the_toy_batch() -> None:
    batch = collate(plain([0, 1, 2, 3, 4], [5, 6], [7, 8, 9]), pad_id=EOT)
    assert padding_fraction(batch, pad_id=EOT) == 5 / 15
    assert json.dumps(batch["inputs"].tolist())  # plain tensors, nothing else
