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

Shapes: ``B`` batch, ``nh`` heads, ``T`` new positions, ``hs`` head size.

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
        if min(batch_size, n_head, max_length, head_dim) < 1:
            raise ValueError(
                f"batch_size, n_head, max_length and head_dim must be positive, got "
                f"{batch_size}, {n_head}, {max_length}, {head_dim}"
            )
        shape = (batch_size, n_head, max_length, head_dim)  # (B, nh, max_length, hs)
        # zeros rather than empty: a bug that reads past `length` then shows up as zeros, not
        # as whatever the allocator left there.
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
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
