"""The attention progression, one step at a time, as in the walkthrough (chapter 3).

Each step adds one idea to the previous one; the names map one-to-one to the walkthrough, and
parameters are created in the same order and shapes, so with the same seed a learner sees the
same numbers as the book:

1. **Simplified self-attention** (no weights): a score is the dot product of a query token with
   every token; softmax turns scores into weights; the context vector is the weighted sum of
   the inputs. ``scores_for_query`` / ``attention_scores``, ``attention_weights``,
   ``context_vectors`` and all three at once, ``simplified_self_attention``.
2. **Self-attention with trainable weights**: queries, keys and values are learned projections
   of the inputs, and scores are divided by sqrt(d_k) before the softmax
   (``scaled_attention_weights``). ``SelfAttentionV1`` holds three ``nn.Parameter`` matrices;
   ``SelfAttentionV2`` holds three bias-free ``nn.Linear`` layers (a better initialisation).
3. **Causal attention**: a token may only look at itself and earlier tokens. The mask
   (``causal_mask``) is applied either by setting future scores to -inf before the softmax
   (``mask_scores``) or by zeroing future weights after it and renormalising
   (``mask_weights_and_renormalise``); both give the same weights. ``CausalAttention`` adds
   dropout on the weights and batched inputs.
4. **Multi-head attention**: ``MultiHeadAttentionWrapper`` runs several ``CausalAttention``
   heads and concatenates them; ``MultiHeadAttention`` does the same with one projection split
   into heads, plus an output projection ``out_proj``.

The production attention in ``scratchllm.model.attention`` is step 4 with the three
projections fused into one matrix and a fast kernel; it reuses ``causal_mask`` and
``mask_scores`` from here.

Shapes: ``B`` batch, ``T`` tokens, ``d_in`` / ``d_out`` input / output width, ``nh`` heads,
``hs`` head size (``d_out / nh``).

>>> inputs = torch.tensor([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64]])
>>> scores_for_query(inputs, 1)
tensor([0.9544, 1.4950, 1.4754])
"""

from __future__ import annotations

import torch
from torch import nn

# ---- step 1: simplified self-attention, no trainable weights ---------------------------------


def scores_for_query(inputs: torch.Tensor, query_index: int) -> torch.Tensor:
    """Attention scores of one query token: its dot product with every token, ``(T,)``.

    >>> scores_for_query(torch.tensor([[1.0, 0.0], [1.0, 2.0]]), 1)
    tensor([1., 5.])
    """
    query = inputs[query_index]  # (d_in,)
    return inputs @ query  # (T, d_in) @ (d_in,) -> (T,): one dot product per token


def attention_scores(inputs: torch.Tensor) -> torch.Tensor:
    """All queries' scores at once: ``inputs @ inputs.T``, ``(T, T)``; row i is query i's.

    >>> attention_scores(torch.tensor([[1.0, 0.0], [1.0, 2.0]]))
    tensor([[1., 1.],
            [1., 5.]])
    """
    return inputs @ inputs.transpose(-2, -1)


def attention_weights(scores: torch.Tensor) -> torch.Tensor:
    """Scores -> weights that are positive and sum to 1 along the last dim (softmax).

    >>> attention_weights(torch.tensor([0.0, 0.0, 0.0, 0.0]))
    tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """
    return torch.softmax(scores, dim=-1)


def context_vectors(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The weighted sum of ``values``: ``(T,) -> (d,)`` for one query, ``(T, T) -> (T, d)``.

    >>> context_vectors(torch.tensor([0.25, 0.75]), torch.tensor([[4.0, 0.0], [0.0, 4.0]]))
    tensor([1., 3.])
    """
    return weights @ values


def simplified_self_attention(inputs: torch.Tensor) -> torch.Tensor:
    """Step 1 in one call: every token's context vector, ``(T, d_in) -> (T, d_in)``."""
    return context_vectors(attention_weights(attention_scores(inputs)), inputs)


# ---- step 2: self-attention with trainable weights -------------------------------------------


def scaled_attention_weights(scores: torch.Tensor, key_dim: int) -> torch.Tensor:
    """Softmax of ``scores / sqrt(key_dim)``.

    Dot products of d_k-dimensional vectors grow like sqrt(d_k); unscaled, the softmax would
    saturate towards one-hot weights with vanishing gradients.

    >>> scaled_attention_weights(torch.tensor([0.0, 4.0 * 2.0 ** 0.5]), key_dim=2)
    tensor([0.0180, 0.9820])
    """
    return torch.softmax(scores / key_dim**0.5, dim=-1)


class SelfAttentionV1(nn.Module):
    """Scaled dot-product self-attention with three ``nn.Parameter`` matrices.

    ``torch.rand`` initialisation (uniform in [0, 1)) as in the walkthrough; created in the
    order query, key, value. ``(T, d_in) -> (T, d_out)``.
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = x @ self.W_key  # (T, d_out)
        queries = x @ self.W_query
        values = x @ self.W_value
        scores = queries @ keys.T  # (T, T): omega
        weights = scaled_attention_weights(scores, keys.shape[-1])
        return weights @ values  # (T, d_out)


class SelfAttentionV2(nn.Module):
    """``SelfAttentionV1`` with ``nn.Linear`` projections: same math, better-scaled init.

    A bias-free ``nn.Linear`` is a matrix multiplication (by its transposed weight), but it is
    initialised uniformly in +-1/sqrt(d_in) rather than [0, 1), which trains more stably.
    """

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = self.W_key(x)  # (T, d_out)
        queries = self.W_query(x)
        values = self.W_value(x)
        scores = queries @ keys.transpose(-2, -1)  # (T, T)
        weights = scaled_attention_weights(scores, keys.shape[-1])
        return weights @ values


# ---- step 3: causal attention -------------------------------------------------------------


def causal_mask(num_queries: int, num_keys: int | None = None) -> torch.Tensor:
    """``(num_queries, num_keys)`` booleans, True where a query must not see the key.

    The queries are the *last* ``num_queries`` of the ``num_keys`` positions (with a KV cache,
    new tokens come after the cached ones), so query i sits at position
    ``num_keys - num_queries + i`` and sees keys up to that position. Square case: the strict
    upper triangle.

    >>> causal_mask(3).int()
    tensor([[0, 1, 1],
            [0, 0, 1],
            [0, 0, 0]], dtype=torch.int32)
    >>> causal_mask(2, 4).int()  # two new tokens after two cached ones
    tensor([[0, 0, 0, 1],
            [0, 0, 0, 0]], dtype=torch.int32)
    """
    num_keys = num_queries if num_keys is None else num_keys
    if not 0 < num_queries <= num_keys:
        raise ValueError(f"need 0 < num_queries <= num_keys, got {num_queries}, {num_keys}")
    ones = torch.ones(num_queries, num_keys, dtype=torch.bool)
    return ones.triu(diagonal=num_keys - num_queries + 1)


def mask_scores(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Set masked scores to -inf, so that the softmax gives them exactly zero weight.

    >>> mask_scores(torch.ones(2, 2), causal_mask(2))
    tensor([[1., -inf],
            [1., 1.]])
    """
    return scores.masked_fill(mask, -torch.inf)


def mask_weights_and_renormalise(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The other way to apply the mask: zero future weights, then rescale rows to sum to 1.

    It equals the -inf form because softmax over a subset is the full softmax renormalised on
    that subset: the future scores influence nothing once their weights are dropped.

    >>> mask_weights_and_renormalise(torch.full((2, 2), 0.5), causal_mask(2))
    tensor([[1.0000, 0.0000],
            [0.5000, 0.5000]])
    """
    kept = weights.masked_fill(mask, 0.0)
    return kept / kept.sum(dim=-1, keepdim=True)


class CausalAttention(nn.Module):
    """One causal attention head over a batch: ``(B, T, d_in) -> (B, T, d_out)``.

    Adds to ``SelfAttentionV2`` the causal mask (a buffer, so it follows ``.to(device)``; sized
    for ``context_length`` and cut to ``T``) and dropout on the attention weights.
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False
    ) -> None:
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", causal_mask(context_length), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, num_tokens, _ = x.shape
        keys = self.W_key(x)  # (B, T, d_out)
        queries = self.W_query(x)
        values = self.W_value(x)
        scores = queries @ keys.transpose(1, 2)  # (B, T, T)
        scores = mask_scores(scores, self.mask[:num_tokens, :num_tokens])
        weights = self.dropout(scaled_attention_weights(scores, keys.shape[-1]))
        return weights @ values  # (B, T, d_out)


# ---- step 4: multi-head attention ------------------------------------------------------------


class MultiHeadAttentionWrapper(nn.Module):
    """``num_heads`` independent ``CausalAttention`` heads, outputs concatenated.

    ``(B, T, d_in) -> (B, T, num_heads * d_out)``: here ``d_out`` is the width of *one* head.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            [
                CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
                for _ in range(num_heads)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(x) for head in self.heads], dim=-1)


class MultiHeadAttention(nn.Module):
    """All heads from one projection each for q, k, v, split into heads; then ``out_proj``.

    ``(B, T, d_in) -> (B, T, d_out)``: here ``d_out`` is the total width, ``num_heads`` heads of
    ``d_out / num_heads`` each. One big matmul replaces one small matmul per head.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out {d_out} must be divisible by num_heads {num_heads}")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mixes the heads' outputs
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", causal_mask(context_length), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, num_tokens, _ = x.shape
        keys = self.W_key(x)  # (B, T, d_out)
        queries = self.W_query(x)
        values = self.W_value(x)

        # split the last dim into heads, then make heads a batch dim: (B, nh, T, hs)
        split = (batch, num_tokens, self.num_heads, self.head_dim)
        keys = keys.view(split).transpose(1, 2)
        queries = queries.view(split).transpose(1, 2)
        values = values.view(split).transpose(1, 2)

        scores = queries @ keys.transpose(2, 3)  # (B, nh, T, T)
        scores = mask_scores(scores, self.mask[:num_tokens, :num_tokens])
        weights = self.dropout(scaled_attention_weights(scores, self.head_dim))

        context = (weights @ values).transpose(1, 2)  # (B, T, nh, hs)
        context = context.contiguous().view(batch, num_tokens, self.d_out)  # heads side by side
        return self.out_proj(context)
