"""The sliding-window dataset: (input, target) pairs for next-token prediction, zero-copy.

A language model learns to predict each next token. From a token stream we cut windows of
``max_length`` tokens every ``stride`` tokens; the target is the same window shifted by one::

    tokens:  40  367  2885  1464  1807  3619  402  271 ...
    window 0 (max_length=4, stride=4):  input [40 367 2885 1464]   target [367 2885 1464 1807]
    window 1:                           input [1807 3619 402 271]  target [3619 402 271 ...]

This is the walkthrough's ``GPTDatasetV1`` / ``create_dataloader_v1`` with the same windows in
the same order, but where the walkthrough builds two tensors per window up front (memory grows
with ``max_length / stride`` copies of the corpus), ``SlidingWindowDataset`` keeps only the
token array (a list, a tensor, or a ``numpy.memmap`` over a token file) and cuts each window
when it is asked for. ``benchmarks/bench_window_memory.py`` measures the difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from scratchllm.data.shards import TokenFile
from scratchllm.errors import ConfigError, DataLengthError
from scratchllm.tokenizer import get_tokenizer
from scratchllm.tokenizer.base import ENDOFTEXT, Tokenizer

TokenSource = np.ndarray | torch.Tensor | Sequence[int] | TokenFile


def window_count(token_count: int, *, max_length: int, stride: int) -> int:
    """How many windows the walkthrough's loop cuts from ``token_count`` tokens.

    The walkthrough iterates ``for i in range(0, token_count - max_length, stride)``: a window
    starts at every multiple of ``stride`` that leaves room for ``max_length`` inputs plus the
    one extra target token; a shorter remainder at the end is dropped.

    >>> window_count(10, max_length=4, stride=1)  # starts 0..5
    6
    >>> window_count(10, max_length=4, stride=4)  # starts 0 and 4; 8..11 would need 13 tokens
    2
    >>> window_count(4, max_length=4, stride=1)  # no room for the target of the last input
    0
    """
    if token_count <= max_length:
        return 0
    return (token_count - max_length - 1) // stride + 1


def _check_positive(name: str, value: int) -> None:
    # bool is an int subclass; max_length=True is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _as_token_array(tokens: TokenSource) -> np.ndarray:
    """A 1-D integer numpy view of ``tokens``, sharing memory whenever the source allows it."""
    if isinstance(tokens, TokenFile):
        array = tokens.tokens
    elif isinstance(tokens, torch.Tensor):
        # .numpy() shares the tensor's memory; only a tensor on another device is copied
        array = tokens.detach().cpu().numpy()
    elif isinstance(tokens, np.ndarray):
        array = tokens  # includes np.memmap: stays a view of the file
    else:
        array = np.asarray(tokens, dtype=np.int64)  # a list has no buffer to share
    if array.ndim != 1:
        raise ValueError(f"tokens must be one-dimensional, got shape {tuple(array.shape)}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"tokens must be integer ids, got dtype {array.dtype}")
    return array


class SlidingWindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Windows ``tokens[i*stride : i*stride + max_length]`` and their targets, shifted by one.

    Holds only the token array and three integers; ``dataset[i]`` slices the array (reading
    only those pages of a memmap) and returns ``(input, target)`` as int64 tensors of length
    ``max_length``. Both are views of one ``max_length + 1`` buffer (they overlap), so clone
    them before modifying either in place.

    >>> dataset = SlidingWindowDataset([5, 6, 7, 8, 9], max_length=2, stride=2)
    >>> len(dataset), dataset[1]
    (2, (tensor([7, 8]), tensor([8, 9])))
    """

    def __init__(self, tokens: TokenSource, *, max_length: int, stride: int) -> None:
        _check_positive("max_length", max_length)
        _check_positive("stride", stride)
        self.tokens = _as_token_array(tokens)
        self.max_length = int(max_length)
        self.stride = int(stride)
        token_count = len(self.tokens)
        if token_count <= self.max_length:
            raise DataLengthError(
                f"the text has {token_count:,} tokens, but one window of max_length "
                f"{self.max_length:,} needs {self.max_length + 1:,} (its inputs plus one target); "
                "use a smaller max_length or more text"
            )
        self._length = window_count(token_count, max_length=self.max_length, stride=self.stride)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        position = index + self._length if index < 0 else index
        if not 0 <= position < self._length:
            raise IndexError(f"window {index} out of range for {self._length} windows")
        start = position * self.stride
        # one int64 copy of max_length + 1 tokens; input and target are views into it
        chunk = torch.from_numpy(
            np.array(self.tokens[start : start + self.max_length + 1], dtype=np.int64)
        )
        return chunk[:-1], chunk[1:]


def create_dataloader(
    tokens: TokenSource | str,
    *,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    seed: int = 0,
    tokenizer: Tokenizer | None = None,
) -> DataLoader:
    """A ``DataLoader`` of ``(inputs, targets)`` batches, each ``(batch_size, max_length)`` int64.

    ``tokens`` are token ids, or text, as the walkthrough's ``create_dataloader_v1(txt, ...)``
    takes: text is encoded with ``tokenizer``, by default GPT-2's (through tiktoken, as the
    walkthrough does), ``<|endoftext|>`` allowed as the separator. The defaults are
    ``create_dataloader_v1``'s. Shuffling draws from a ``torch.Generator`` seeded with
    ``seed``, so the same seed gives the same order (each epoch still differs from the previous
    one) without touching torch's global RNG. Raises ``DataLengthError`` when the loader would
    yield no batch at all.
    """
    _check_positive("batch_size", batch_size)
    if isinstance(tokens, str):
        tokens = encode_text(tokens, tokenizer)
    elif tokenizer is not None:
        raise ConfigError(
            "tokenizer= encodes text, but these are token ids already; leave tokenizer out"
        )
    dataset = SlidingWindowDataset(tokens, max_length=max_length, stride=stride)
    if drop_last and len(dataset) < batch_size:
        # an empty loader would make training or evaluation silently do nothing
        raise DataLengthError(
            f"the text gives {len(dataset)} window(s) of max_length {max_length} at stride "
            f"{stride}, fewer than batch_size {batch_size}, and drop_last=True drops them all; "
            "use a smaller batch_size, max_length or stride, drop_last=False, or more text"
        )
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=generator,
    )


def encode_text(text: str, tokenizer: Tokenizer | None = None) -> np.ndarray:
    """``text`` as token ids, with ``tokenizer`` (default GPT-2's, as in the walkthrough).

    ``<|endoftext|>`` in the text becomes the separator id when the tokenizer has one (as in
    the walkthrough, which encodes with ``allowed_special={"<|endoftext|>"}``).
    """
    if tokenizer is None:
        tokenizer = get_tokenizer("gpt2")
    allowed = {ENDOFTEXT} if ENDOFTEXT in tokenizer.special_tokens else set()
    return np.asarray(tokenizer.encode(text, allowed_special=allowed), dtype=np.int64)


def create_dataloader_from_text(
    text: str,
    tokenizer: Tokenizer,
    *,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    seed: int = 0,
) -> DataLoader:
    """Tokenize ``text`` with ``tokenizer`` and wrap it in ``create_dataloader`` (which also
    takes text itself, with GPT-2's tokenizer by default)."""
    return create_dataloader(
        text,
        tokenizer=tokenizer,
        batch_size=batch_size,
        max_length=max_length,
        stride=stride,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        seed=seed,
    )
