"""A preallocated key/value cache for one attention layer.

Generating text one token at a time, a GPT would recompute the keys and values of the whole
prefix at every step, although they never change (causal attention: a position only looks back).
The cache keeps them: the first forward pass (the *prefill*) writes the prompt's keys and
values, and each decode step writes the new token's and attends over everything written so far.

The buffers are allocated once, at their full size ``(B, nh, max_length, hs)``, and written in
place, as gpt-fast does, instead of ``torch.cat``-ing a growing tensor each step: no
reallocation, no copying of the prefix. ``update`` returns views of the filled part.

``KVCache`` is an ``nn.Module`` whose ``k`` and ``v`` are *non-persistent* buffers, so that
``cache.to(device)`` moves them and they never end up in a checkpoint's state dict.

``SlotKVCache`` is its sibling for continuous batching (``generate/engine.py``): the same
buffers, but each batch row (a *slot*) holds its own sequence at its own length, so a write
names, per row, the slot and the positions it fills, and no single ``length`` is kept (the
engine knows each slot's length; the attention mask hides what lies beyond it).

Shapes: ``B`` batch, ``nh`` heads, ``T`` new positions, ``hs`` head size, ``S`` keys read.

>>> cache = KVCache(batch_size=1, n_head=2, max_length=8, head_dim=4)
>>> keys, values = cache.update(0, torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4))  # prefill
>>> keys.shape, cache.length
(torch.Size([1, 2, 3, 4]), 3)
>>> keys, values = cache.update(3, torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))  # 1 step
>>> keys.shape, cache.length
(torch.Size([1, 2, 4, 4]), 4)
"""

from __future__ import annotations

import torch
from torch import nn

from scratchllm.errors import DataLengthError


class KVCache(nn.Module):
    """Keys and values of positions ``0 .. length`` of one attention layer, in fixed buffers.

    ``update(start_position, k, v)`` writes the new ``(B, nh, T, hs)`` keys and values at
    positions ``start_position .. start_position + T`` and returns views of all keys and values
    from position 0 to the end of that write. Writing at ``start_position < length`` rewinds
    (the positions after the write are forgotten); leaving a gap after ``length`` is an error,
    since the attention would read positions nobody wrote.
    """

    k: torch.Tensor
    v: torch.Tensor

    def __init__(
        self,
        batch_size: int,
        n_head: int,
        max_length: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        _allocate(self, ("batch_size", batch_size), n_head, max_length, head_dim, dtype, device)
        self.length = 0  # positions 0 .. length hold valid keys and values

    @property
    def max_length(self) -> int:
        """How many positions the buffers hold."""
        return self.k.shape[2]

    def update(
        self, start_position: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k``, ``v`` ``(B, nh, T, hs)`` at ``start_position``; return all keys and values
        ``(B, nh, start_position + T, hs)`` (views into the buffers, valid until the next
        write)."""
        if k.shape != v.shape:
            raise ValueError(f"keys {tuple(k.shape)} and values {tuple(v.shape)} differ in shape")
        batch_size, n_head, _, head_dim = self.k.shape
        if k.ndim != 4 or (k.shape[0], k.shape[1], k.shape[3]) != (batch_size, n_head, head_dim):
            raise ValueError(
                f"keys of shape {tuple(k.shape)} do not fit this cache: expected "
                f"({batch_size}, {n_head}, T, {head_dim})"
            )
        end = start_position + k.shape[2]
        if end > self.max_length:
            raise DataLengthError(
                f"the KV cache holds {self.max_length} positions, but positions "
                f"{start_position}..{end - 1} were written; make the cache longer (at most the "
                f"model's context length) or crop the sequence to its last {self.max_length} "
                f"tokens"
            )
        if not 0 <= start_position <= self.length:
            raise DataLengthError(
                f"cannot write at position {start_position}: the cache holds positions "
                f"0..{self.length - 1} and a write must start at or before {self.length}"
            )
        self.k[:, :, start_position:end] = k
        self.v[:, :, start_position:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def reset(self) -> None:
        """Forget every position (the buffers are kept and zeroed)."""
        self.k.zero_()
        self.v.zero_()
        self.length = 0

    def extra_repr(self) -> str:
        batch_size, n_head, max_length, head_dim = self.k.shape
        return (
            f"batch_size={batch_size}, n_head={n_head}, max_length={max_length}, "
            f"head_dim={head_dim}, dtype={self.k.dtype}, length={self.length}"
        )


class SlotKVCache(nn.Module):
    """Keys and values of ``max_batch`` independent sequences (slots) of one attention layer.

    Unlike ``KVCache``, rows do not move together: ``update(slots, positions, k, v,
    num_keys=S)`` writes batch row ``b``'s new keys at positions ``positions[b]`` of slot
    ``slots[b]`` and returns, for every row, its slot's keys and values at positions ``0 ..
    S - 1``. Beyond a row's own last position those are stale (another request's, or zeros):
    the caller masks them out (``attention.slot_causal_mask``). Positions before the new ones
    must have been written earlier (by a prefill): nothing here checks that, the engine keeps
    it so.

    >>> cache = SlotKVCache(max_batch=4, n_head=2, max_length=8, head_dim=4)
    >>> prefill = torch.ones(1, 2, 3, 4)  # 3 prompt positions into slot 2
    >>> keys, _ = cache.update(torch.tensor([2]), torch.arange(3)[None], prefill, prefill,
    ...                        num_keys=3)
    >>> keys.shape
    torch.Size([1, 2, 3, 4])
    >>> step = torch.zeros(2, 2, 1, 4)  # one token each for slots 2 (position 3) and 0 (0)
    >>> keys, _ = cache.update(torch.tensor([2, 0]), torch.tensor([[3], [0]]), step, step,
    ...                        num_keys=4)
    >>> keys.shape, keys[0, 0, :, 0].tolist()
    (torch.Size([2, 2, 4, 4]), [1.0, 1.0, 1.0, 0.0])
    """

    k: torch.Tensor
    v: torch.Tensor

    def __init__(
        self,
        max_batch: int,
        n_head: int,
        max_length: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        _allocate(self, ("max_batch", max_batch), n_head, max_length, head_dim, dtype, device)

    @property
    def max_batch(self) -> int:
        """How many sequences (slots) the buffers hold."""
        return self.k.shape[0]

    @property
    def max_length(self) -> int:
        """How many positions each slot holds."""
        return self.k.shape[2]

    def update(
        self,
        slots: torch.Tensor,
        positions: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        num_keys: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k``, ``v`` ``(B, nh, T, hs)`` of row ``b`` at positions ``positions[b]``
        ``(B, T)`` of slot ``slots[b]`` ``(B,)``; return each row's slot at positions
        ``0 .. num_keys - 1``, keys and values ``(B, nh, S, hs)`` (copies: the slots of a batch
        need not be neighbours). ``num_keys`` is at least ``positions.max() + 1``; the caller
        passes it because it already read that number once for every layer."""
        if k.shape != v.shape:
            raise ValueError(f"keys {tuple(k.shape)} and values {tuple(v.shape)} differ in shape")
        batch, n_head, num_tokens, head_dim = k.shape
        if (n_head, head_dim) != (self.k.shape[1], self.k.shape[3]):
            raise ValueError(
                f"keys of shape {tuple(k.shape)} do not fit this cache: expected "
                f"(B, {self.k.shape[1]}, T, {self.k.shape[3]})"
            )
        if slots.shape != (batch,) or positions.shape != (batch, num_tokens):
            raise ValueError(
                f"slots {tuple(slots.shape)} and positions {tuple(positions.shape)} must be "
                f"({batch},) and ({batch}, {num_tokens}) for keys of shape {tuple(k.shape)}"
            )
        if not 0 < num_keys <= self.max_length:
            raise DataLengthError(
                f"the KV cache holds {self.max_length} positions per slot, but {num_keys} were "
                f"asked for; make the cache longer (at most the model's context length)"
            )
        # two advanced indices around a slice: the indexed result is (B, T, nh, hs)
        rows = slots[:, None]  # (B, 1), broadcast against positions (B, T)
        self.k[rows, :, positions] = k.transpose(1, 2)
        self.v[rows, :, positions] = v.transpose(1, 2)
        # slice, then gather the rows: ~4x faster on CPU than one advanced index k[slots, :, :S]
        return (
            self.k[:, :, :num_keys].index_select(0, slots),
            self.v[:, :, :num_keys].index_select(0, slots),
        )

    def extra_repr(self) -> str:
        max_batch, n_head, max_length, head_dim = self.k.shape
        return (
            f"max_batch={max_batch}, n_head={n_head}, max_length={max_length}, "
            f"head_dim={head_dim}, dtype={self.k.dtype}"
        )


def _allocate(
    cache: nn.Module,
    rows: tuple[str, int],
    n_head: int,
    max_length: int,
    head_dim: int,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> None:
    """Register a cache's ``k`` and ``v`` buffers ``(rows, nh, max_length, hs)``, non-persistent.

    Zeros rather than empty: a bug that reads past what was written then shows up as zeros,
    not as whatever the allocator left there.
    """
    name, count = rows
    if min(count, n_head, max_length, head_dim) < 1:
        raise ValueError(
            f"{name}, n_head, max_length and head_dim must be positive, got "
            f"{count}, {n_head}, {max_length}, {head_dim}"
        )
    shape = (count, n_head, max_length, head_dim)
    cache.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
    cache.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
