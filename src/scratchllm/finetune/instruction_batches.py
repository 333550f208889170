"""Instruction batches: tokenized entries, the walkthrough's padding collate, length grouping
and packing.

The data step after ``instructions.py``. Each entry becomes one **sequence**: the prompt
(``PromptFormat.prompt(instruction, input)``, ending in ``### Response:\\n`` for Alpaca) followed
by the output, as the walkthrough's chapter 7 writes ``format_input(entry) +
f"\\n\\n### Response:\\n{entry['output']}"``. ``encode_instructions`` tokenizes it once and
records how many leading tokens are the prompt (``EncodedInstruction.prompt_length``).

**The collate** (``collate``) is the walkthrough's ``custom_collate_fn``: every sequence gets one
end-of-text token (``pad_id``, GPT-2's ``<|endoftext|>`` 50256), is padded with ``pad_id`` to the
batch's longest sequence plus one, and split into ``inputs = padded[:-1]`` and ``targets =
padded[1:]``; every target after that first end-of-text is ``ignore_index`` (-100, what
``cross_entropy`` skips), so the model learns to stop but not to pad; ``max_length`` then cuts
both to their first ``max_length`` positions. The toy batch of the walkthrough::

    inputs  [[0, 1, 2, 3, 4],              targets [[1, 2, 3, 4, 50256],
             [5, 6, 50256, 50256, 50256],           [6, 50256, -100, -100, -100],
             [7, 8, 9, 50256, 50256]]               [8, 9, 50256, -100, -100]]

One difference, on purpose: the walkthrough finds the padding by *value* (every target equal
to ``pad_id`` after the first), so a sequence that itself held ``pad_id`` would lose its own
targets; we mark it by *position* (everything after the appended end-of-text). The two agree
whenever the sequences hold no ``pad_id``, as text encoded with ``encode_ordinary`` never does.

**Masking the prompt** (``mask_prompt=True``, the walkthrough's exercise 7.2): targets that
predict a prompt token (positions below ``prompt_length - 1``) are ``ignore_index`` too, so the
loss covers only the response and its end-of-text.

**Length grouping** (``length_grouped_order``): a random order in which neighbouring examples
have similar lengths, so a batch of ``batch_size`` consecutive examples pads little.

**Packing** (``pack``): the examples of a batch side by side in as few rows of at most
``max_length`` tokens as first-fit-decreasing finds, each example keeping exactly its inputs
and targets from ``collate``; ``document_ids`` (the example's number in its row, ``-1`` for the
padding after the last) and ``positions`` (restarting at 0 for each example) make
``GPT.forward`` attend only within each example, so every real target gets the logits it gets
in the padded batch, and the mean loss over the real targets is the same.

Shapes: ``B`` rows, ``T`` tokens per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import torch

from scratchllm.errors import ConfigError
from scratchllm.finetune.prompts import PromptFormat
from scratchllm.model.gpt import document_positions
from scratchllm.tokenizer import Tokenizer

IGNORE_INDEX = -100  # what torch's cross_entropy skips by default (HF's and the walkthrough's)
PAD_DOCUMENT = -1  # the document id of a packed row's padding tail


@dataclass(frozen=True)
class EncodedInstruction:
    """One entry's token ids (prompt, then output) and how many of them are the prompt."""

    ids: tuple[int, ...]
    prompt_length: int  # ids[:prompt_length] is the prompt

    def __post_init__(self) -> None:
        if not self.ids:
            raise ConfigError("an encoded instruction needs at least one token id")
        if not 0 <= self.prompt_length <= len(self.ids):
            raise ConfigError(
                f"prompt_length must be between 0 and the {len(self.ids)} ids, "
                f"got {self.prompt_length}"
            )


class InstructionBatch(TypedDict, total=False):
    """One batch, as a dict so that the training step's ``to_device`` moves it whole.

    ``document_ids`` and ``positions`` come only with packed rows: pass them to
    ``GPT.forward(inputs, document_ids=..., positions=...)``.
    """

    inputs: torch.Tensor  # (B, T) token ids
    targets: torch.Tensor  # (B, T) the next token, or ignore_index where nothing is learnt
    document_ids: torch.Tensor  # (B, T) the example's number in its row; -1 for padding
    positions: torch.Tensor  # (B, T) the position within the example


# ---- encoding ---------------------------------------------------------------------------------


def encode_instruction(
    entry: dict[str, Any], tokenizer: Tokenizer, prompt_format: PromptFormat
) -> EncodedInstruction:
    """The ids of ``prompt + output``, encoded as one text, and the prompt's share of them.

    The prompt's own encoding is nearly always a prefix of the whole text's (the Alpaca prompt
    ends in a newline, where GPT-2's pre-tokenizer splits). Should BPE merge across the
    boundary (an output starting with a newline, say), ``prompt_length`` is the longest common
    prefix of the two encodings: the tokens that are wholly prompt.

    Text is encoded with ``encode_ordinary``: an ``<|endoftext|>`` written in an entry is text,
    not the end-of-text token (the walkthrough's ``tokenizer.encode`` would refuse it).
    """
    prompt = prompt_format.prompt(entry["instruction"], entry["input"])
    ids = tokenizer.encode_ordinary(prompt + entry["output"])
    prompt_ids = tokenizer.encode_ordinary(prompt)
    return EncodedInstruction(tuple(ids), common_prefix_length(prompt_ids, ids))


def encode_instructions(
    entries: Sequence[dict[str, Any]], tokenizer: Tokenizer, prompt_format: PromptFormat
) -> list[EncodedInstruction]:
    """``encode_instruction`` for each entry, in order (an ``InstructionSet`` works too)."""
    return [encode_instruction(entry, tokenizer, prompt_format) for entry in entries]


def common_prefix_length(first: Sequence[int], second: Sequence[int]) -> int:
    """How many leading ids the two sequences share.

    >>> common_prefix_length([5, 6, 7], [5, 6, 7, 8]), common_prefix_length([5, 9], [5, 6, 7])
    (3, 1)
    """
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length


# ---- one example's inputs and targets ---------------------------------------------------------


def example_inputs_targets(
    example: EncodedInstruction,
    *,
    pad_id: int,
    ignore_index: int = IGNORE_INDEX,
    max_length: int | None = None,
    mask_prompt: bool = False,
) -> tuple[list[int], list[int]]:
    """One example's unpadded ``(inputs, targets)``: its ids, and the ids shifted by one with
    the end-of-text ``pad_id`` appended; both cut to ``max_length``.

    >>> example_inputs_targets(EncodedInstruction((7, 8, 9), prompt_length=2), pad_id=0)
    ([7, 8, 9], [8, 9, 0])
    >>> example_inputs_targets(EncodedInstruction((7, 8, 9), 2), pad_id=0, mask_prompt=True)
    ([7, 8, 9], [-100, 9, 0])
    """
    sequence = [*example.ids, pad_id]
    inputs, targets = sequence[:-1], sequence[1:]
    if mask_prompt:
        # target t predicts token t + 1: the prompt's tokens 1 .. prompt_length - 1
        masked = max(example.prompt_length - 1, 0)
        targets[:masked] = [ignore_index] * min(masked, len(targets))
    if max_length is not None:
        inputs, targets = inputs[:max_length], targets[:max_length]
    return inputs, targets


def _inputs_targets(
    examples: Sequence[EncodedInstruction],
    pad_id: int,
    ignore_index: int,
    max_length: int | None,
    mask_prompt: bool,
) -> list[tuple[list[int], list[int]]]:
    """``example_inputs_targets`` of each example, the options checked first."""
    _check_options(examples, max_length)
    return [
        example_inputs_targets(example, pad_id=pad_id, ignore_index=ignore_index,
                               max_length=max_length, mask_prompt=mask_prompt)
        for example in examples
    ]  # fmt: skip


def _check_options(examples: Sequence[EncodedInstruction], max_length: int | None) -> None:
    if not examples:
        raise ConfigError("a batch needs at least one example")
    if max_length is not None and max_length < 1:
        raise ConfigError(f"max_length must be a positive number of tokens, got {max_length}")


# ---- the padding collate ----------------------------------------------------------------------


def collate(
    examples: Sequence[EncodedInstruction],
    *,
    pad_id: int,
    ignore_index: int = IGNORE_INDEX,
    max_length: int | None = None,
    mask_prompt: bool = False,
) -> InstructionBatch:
    """The walkthrough's ``custom_collate_fn`` (see the module docstring), plus ``mask_prompt``.

    ``T`` is the longest example's length, at most ``max_length``.

    >>> batch = collate([EncodedInstruction((0, 1, 2, 3, 4), 0), EncodedInstruction((5, 6), 0)],
    ...                 pad_id=50256)
    >>> batch["inputs"].tolist(), batch["targets"].tolist()
    ([[0, 1, 2, 3, 4], [5, 6, 50256, 50256, 50256]], [[1, 2, 3, 4, 50256], [6, 50256, -100, -100, -100]])
    """  # noqa: E501 - a doctest's output is one line
    pairs = _inputs_targets(examples, pad_id, ignore_index, max_length, mask_prompt)
    length = max(len(inputs) for inputs, _ in pairs)
    inputs = np.full((len(pairs), length), pad_id, dtype=np.int64)
    targets = np.full((len(pairs), length), ignore_index, dtype=np.int64)
    for row, (example_inputs, example_targets) in enumerate(pairs):
        inputs[row, : len(example_inputs)] = example_inputs
        targets[row, : len(example_targets)] = example_targets
    return InstructionBatch(inputs=torch.from_numpy(inputs), targets=torch.from_numpy(targets))


# ---- length grouping --------------------------------------------------------------------------


def length_grouped_order(
    lengths: Sequence[int], *, batch_size: int, seed: int, epoch: int, group_batches: int = 50
) -> np.ndarray:
    """A shuffled order of the examples in which each run of ``batch_size`` has similar lengths.

    Shuffle with ``np.random.default_rng([seed, epoch])`` (as ``train/batches.epoch_order``
    does), sort each mega-group of ``batch_size * group_batches`` consecutive examples by
    length, cut the groups into batches of ``batch_size`` and shuffle the full batches' order;
    a final partial batch, if any, stays last (where a ``drop_last`` loader drops it). The same
    ``(seed, epoch)`` always gives the same order; mega-groups keep some randomness in which
    examples meet, and the batch shuffle keeps long and short batches mixed over the epoch.

    >>> lengths = [5, 1, 9, 2, 8, 1, 7, 3]
    >>> order = length_grouped_order(lengths, batch_size=2, seed=0, epoch=0)
    >>> [[lengths[index] for index in batch] for batch in order.reshape(-1, 2)]
    [[2, 3], [5, 7], [1, 1], [8, 9]]
    """
    if batch_size < 1 or group_batches < 1:
        raise ConfigError(
            f"batch_size and group_batches must be positive, got {batch_size} and {group_batches}"
        )
    lengths = np.asarray(lengths)
    generator = np.random.default_rng([seed, epoch])
    order = generator.permutation(len(lengths))
    group = batch_size * group_batches
    for start in range(0, len(order), group):
        part = order[start : start + group]
        order[start : start + group] = part[np.argsort(lengths[part], kind="stable")]
    full = len(order) // batch_size * batch_size
    batches = order[:full].reshape(-1, batch_size)
    batches = batches[generator.permutation(len(batches))]
    return np.concatenate([batches.reshape(-1), order[full:]])


# ---- packing ----------------------------------------------------------------------------------


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins of item indices, each summing to at most ``capacity``: the longest item first, each
    into the first bin it fits (at most 11/9 of the optimal count plus one, Dosa 2007).

    >>> first_fit_decreasing([4, 3, 3, 2, 2, 1], capacity=5)
    [[0, 5], [1, 3], [2, 4]]
    """
    bins: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for number, left in enumerate(room):
            if lengths[index] <= left:
                bins[number].append(index)
                room[number] -= lengths[index]
                break
        else:
            bins.append([index])
            room.append(capacity - lengths[index])
    return bins


def pack(
    examples: Sequence[EncodedInstruction],
    *,
    max_length: int,
    pad_id: int,
    ignore_index: int = IGNORE_INDEX,
    mask_prompt: bool = False,
) -> InstructionBatch:
    """The examples packed into rows of at most ``max_length`` tokens (see the module docstring).

    Each example brings its inputs and targets from ``collate`` (an example longer than
    ``max_length`` is cut to it, as ``collate`` cuts it); rows are filled first-fit-decreasing
    and padded to the fullest row, with ``pad_id`` inputs and ``ignore_index`` targets.

    >>> batch = pack([EncodedInstruction((1, 2, 3), 0), EncodedInstruction((4, 5), 0),
    ...               EncodedInstruction((6,), 0)], max_length=4, pad_id=0)
    >>> for key in ("inputs", "targets", "document_ids", "positions"):
    ...     print(f"{key:<12}", batch[key].tolist())
    inputs       [[1, 2, 3, 6], [4, 5, 0, 0]]
    targets      [[2, 3, 0, 0], [5, 0, -100, -100]]
    document_ids [[0, 0, 0, 1], [0, 0, -1, -1]]
    positions    [[0, 1, 2, 0], [0, 1, 0, 1]]
    """
    pairs = _inputs_targets(examples, pad_id, ignore_index, max_length, mask_prompt)
    rows = first_fit_decreasing([len(inputs) for inputs, _ in pairs], max_length)
    length = max(sum(len(pairs[index][0]) for index in row) for row in rows)
    inputs = np.full((len(rows), length), pad_id, dtype=np.int64)
    targets = np.full((len(rows), length), ignore_index, dtype=np.int64)
    document_ids = np.full((len(rows), length), PAD_DOCUMENT, dtype=np.int64)
    for row_number, row in enumerate(rows):
        start = 0
        for document, index in enumerate(row):
            example_inputs, example_targets = pairs[index]
            end = start + len(example_inputs)
            inputs[row_number, start:end] = example_inputs
            targets[row_number, start:end] = example_targets
            document_ids[row_number, start:end] = document
            start = end
    documents = torch.from_numpy(document_ids)
    return InstructionBatch(
        inputs=torch.from_numpy(inputs),
        targets=torch.from_numpy(targets),
        document_ids=documents,
        positions=document_positions(documents),
    )


def padding_fraction(batch: InstructionBatch, *, pad_id: int) -> float:
    """The share of a batch's input positions that hold no example token (padding).

    Counted from ``document_ids`` for packed rows; for padded rows, from the first ``pad_id``
    input of each row on (every example ends before its end-of-text).

    >>> padding_fraction(collate([EncodedInstruction((1, 2, 3), 0), EncodedInstruction((4,), 0)],
    ...                          pad_id=0), pad_id=0)
    0.3333333333333333
    """
    inputs = batch["inputs"]
    if "document_ids" in batch:
        padding = int((batch["document_ids"] == PAD_DOCUMENT).sum())
    else:
        is_pad = inputs == pad_id
        after_first = is_pad.int().cumsum(dim=1) > 0
        padding = int(after_first.sum())
    return padding / inputs.numel()
