"""The production attention: fast path == explicit path == step 4 of the progression."""

from __future__ import annotations

import pytest
import torch

from scratchllm.errors import ConfigError
from scratchllm.model.attention import CausalSelfAttention, explicit_attention, fast_attention
from scratchllm.model.attention_steps import MultiHeadAttention


class ListCache:
    """A minimal stand-in for KVCache with the same ``update`` contract (tests only)."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def update(self, start_position, keys, values):
        length = 0 if self.keys is None else self.keys.shape[2]
        assert start_position == length, "writes must continue where the cache ends"
        if self.keys is None:
            self.keys, self.values = keys, values
        else:
            self.keys = torch.cat([self.keys, keys], dim=2)
            self.values = torch.cat([self.values, values], dim=2)
        return self.keys, self.values


def naive_attention(queries, keys, values):
    """One query at a time: query i (at position S - T + i) sees keys 0..its position."""
    num_queries, num_keys = queries.shape[-2], keys.shape[-2]
    outputs = []
    for i in range(num_queries):
        visible = num_keys - num_queries + i + 1
        scores = queries[..., i : i + 1, :] @ keys[..., :visible, :].transpose(-2, -1)
        weights = torch.softmax(scores / queries.shape[-1] ** 0.5, dim=-1)
        outputs.append(weights @ values[..., :visible, :])
    return torch.cat(outputs, dim=-2)


@pytest.mark.parametrize(
    ("num_queries", "num_keys"), [(1, 1), (7, 7), (1, 9), (3, 9), (5, 6)], ids=str
)
def test_fast_and_explicit_paths_agree_with_the_naive_loop(num_queries, num_keys):
    generator = torch.Generator().manual_seed(num_queries * 10 + num_keys)
    queries = torch.randn(2, 3, num_queries, 8, generator=generator)
    keys = torch.randn(2, 3, num_keys, 8, generator=generator)
    values = torch.randn(2, 3, num_keys, 8, generator=generator)
    explicit, weights = explicit_attention(queries, keys, values)
    fast = fast_attention(queries, keys, values)
    torch.testing.assert_close(fast, explicit, atol=1e-6, rtol=0)
    torch.testing.assert_close(explicit, naive_attention(queries, keys, values), atol=1e-6, rtol=0)
    assert weights.shape == (2, 3, num_queries, num_keys)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(2, 3, num_queries))


def test_fused_module_equals_step_4_multi_head_attention():
    torch.manual_seed(123)
    step_4 = MultiHeadAttention(8, 8, context_length=16, dropout=0.0, num_heads=2, qkv_bias=True)
    fused = CausalSelfAttention.from_multi_head_attention(step_4)
    x = torch.randn(3, 11, 8)
    torch.testing.assert_close(fused(x), step_4(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(fused(x, weights_sink=[]), step_4(x), atol=1e-6, rtol=0)


def test_fusing_needs_square_projections():
    with pytest.raises(ConfigError, match="d_in == d_out"):
        CausalSelfAttention.from_multi_head_attention(MultiHeadAttention(3, 2, 6, 0.0, 2))


@pytest.mark.parametrize("explicit", [False, True], ids=["fast", "explicit"])
def test_cached_prefill_and_decode_equal_the_full_pass(explicit):
    torch.manual_seed(0)
    attention = CausalSelfAttention(16, 4, qkv_bias=True).eval()
    x = torch.randn(2, 9, 16)
    full = attention(x)
    cache, outputs = ListCache(), []
    # prefill 4 tokens, then a 3-token chunk (T < S, needs the explicit bottom-right mask),
    # then single tokens
    for start, end in [(0, 4), (4, 7), (7, 8), (8, 9)]:
        sink = [] if explicit else None
        outputs.append(
            attention(x[:, start:end], kv_cache=cache, start_position=start, weights_sink=sink)
        )
        if explicit:
            assert sink[0].shape == (2, 4, end - start, end)
    torch.testing.assert_close(torch.cat(outputs, dim=1), full, atol=1e-6, rtol=0)


def test_module_paths_agree_with_and_without_cache_offsets():
    torch.manual_seed(1)
    attention = CausalSelfAttention(32, 4).eval()
    x = torch.randn(2, 12, 32)
    torch.testing.assert_close(attention(x), attention(x, weights_sink=[]), atol=1e-6, rtol=0)
    fast_cache, explicit_cache = ListCache(), ListCache()
    for start, end in [(0, 5), (5, 9), (9, 10)]:
        fast = attention(x[:, start:end], kv_cache=fast_cache, start_position=start)
        explicit = attention(
            x[:, start:end], kv_cache=explicit_cache, start_position=start, weights_sink=[]
        )
        torch.testing.assert_close(fast, explicit, atol=1e-6, rtol=0)


def test_weights_are_causal_and_normalised():
    torch.manual_seed(2)
    attention = CausalSelfAttention(16, 2).eval()
    sink: list[torch.Tensor] = []
    attention(torch.randn(1, 6, 16), weights_sink=sink)
    (weights,) = sink
    assert weights.shape == (1, 2, 6, 6)
    assert bool((weights.triu(diagonal=1) == 0).all())
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(1, 2, 6))


def test_attention_dropout_only_in_training():
    torch.manual_seed(3)
    attention = CausalSelfAttention(16, 2, dropout=0.5)
    x = torch.randn(1, 6, 16)
    attention.eval()
    torch.testing.assert_close(attention(x), attention(x, weights_sink=[]), atol=1e-6, rtol=0)
    attention.train()
    sink: list[torch.Tensor] = []
    trained = attention(x, weights_sink=sink)
    assert bool((sink[0] == 0).any()) and not torch.allclose(trained, attention.eval()(x))


def test_rejects_uneven_heads():
    with pytest.raises(ConfigError, match="divisible"):
        CausalSelfAttention(30, 4)
