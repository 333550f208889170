"""The KV cache on its own: writes land where they should, views cover what was written, and
attention over cached keys equals attention over the whole sequence (the cache's purpose)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.errors import DataLengthError
from scratchllm.model.kv_cache import KVCache

B, NH, HS = 2, 3, 4  # batch, heads, head size


def random_keys(length: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(B, NH, length, HS, generator=generator)


def test_buffers_are_preallocated_zero_and_not_in_the_state_dict() -> None:
    cache = KVCache(B, NH, 10, HS, dtype=torch.float64)
    assert cache.k.shape == cache.v.shape == (B, NH, 10, HS)
    assert cache.k.dtype == torch.float64
    assert not cache.k.any() and not cache.v.any()
    assert cache.length == 0 and cache.max_length == 10
    assert cache.state_dict() == {}  # never saved into a checkpoint
    assert {name for name, _ in cache.named_buffers()} == {"k", "v"}  # but .to() moves them
    assert cache.to(torch.float32).k.dtype == torch.float32


def test_update_writes_in_place_and_returns_views_of_the_prefix() -> None:
    cache = KVCache(B, NH, 8, HS)
    k, v = random_keys(3, seed=0), random_keys(3, seed=1)
    keys, values = cache.update(0, k, v)
    assert torch.equal(keys, k) and torch.equal(values, v)
    assert keys.data_ptr() == cache.k.data_ptr()  # a view, not a copy
    step_k, step_v = random_keys(1, seed=2), random_keys(1, seed=3)
    keys, values = cache.update(3, step_k, step_v)
    assert cache.length == 4
    assert torch.equal(keys, torch.cat([k, step_k], dim=2))
    assert torch.equal(values, torch.cat([v, step_v], dim=2))
    assert not cache.k[:, :, 4:].any()  # nothing written past the end


@settings(max_examples=40, deadline=None)
@given(chunks=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=6))
def test_chunked_writes_equal_the_concatenation(chunks: list[int]) -> None:
    total = sum(chunks)
    everything_k, everything_v = random_keys(total, seed=total), random_keys(total, seed=-total)
    cache = KVCache(B, NH, total, HS)
    position = 0
    for size in chunks:
        end = position + size
        keys, values = cache.update(
            position, everything_k[:, :, position:end], everything_v[:, :, position:end]
        )
        assert torch.equal(keys, everything_k[:, :, :end])
        assert torch.equal(values, everything_v[:, :, :end])
        position = end
    assert cache.length == total


def test_writing_past_max_length_raises_a_clear_error() -> None:
    cache = KVCache(B, NH, 4, HS)
    cache.update(0, random_keys(3, 0), random_keys(3, 1))
    with pytest.raises(DataLengthError, match=r"holds 4 positions.*positions 3\.\.4"):
        cache.update(3, random_keys(2, 2), random_keys(2, 3))
    assert cache.length == 3  # the failed write changed nothing


def test_a_gap_after_the_filled_positions_is_an_error() -> None:
    cache = KVCache(B, NH, 8, HS)
    cache.update(0, random_keys(2, 0), random_keys(2, 1))
    with pytest.raises(DataLengthError, match="must start at or before 2"):
        cache.update(3, random_keys(1, 2), random_keys(1, 3))


def test_writing_earlier_rewinds_and_reset_forgets() -> None:
    cache = KVCache(B, NH, 8, HS)
    cache.update(0, random_keys(5, 0), random_keys(5, 1))
    new_k, new_v = random_keys(1, 2), random_keys(1, 3)
    keys, _ = cache.update(2, new_k, new_v)
    assert cache.length == 3 and keys.shape[2] == 3
    assert torch.equal(keys[:, :, 2:], new_k)
    cache.reset()
    assert cache.length == 0 and not cache.k.any() and not cache.v.any()


def test_shape_mismatch_is_rejected() -> None:
    cache = KVCache(B, NH, 8, HS)
    with pytest.raises(ValueError, match="do not fit"):
        cache.update(0, torch.zeros(B, NH + 1, 1, HS), torch.zeros(B, NH + 1, 1, HS))
    with pytest.raises(ValueError, match="positive"):
        KVCache(B, NH, 0, HS)


def test_cached_attention_equals_full_causal_attention() -> None:
    """Decoding token by token over the cache reproduces causal attention over the whole
    sequence (oracle: torch's SDPA with is_causal=True)."""
    length = 7
    queries, keys, values = (random_keys(length, seed) for seed in (10, 11, 12))
    expected = F.scaled_dot_product_attention(queries, keys, values, is_causal=True)
    cache = KVCache(B, NH, length, HS)
    prompt = 3  # prefill 3 positions, then one position per step
    cached_k, cached_v = cache.update(0, keys[:, :, :prompt], values[:, :, :prompt])
    outputs = [
        F.scaled_dot_product_attention(queries[:, :, :prompt], cached_k, cached_v, is_causal=True)
    ]
    for position in range(prompt, length):
        step = slice(position, position + 1)
        cached_k, cached_v = cache.update(position, keys[:, :, step], values[:, :, step])
        outputs.append(F.scaled_dot_product_attention(queries[:, :, step], cached_k, cached_v))
    torch.testing.assert_close(torch.cat(outputs, dim=2), expected, rtol=0, atol=1e-6)
