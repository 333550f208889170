"""The production multi-head causal self-attention: step 4 of the progression, made fast.

``CausalSelfAttention`` computes exactly what ``attention_steps.MultiHeadAttention`` computes
(with ``d_in == d_out == n_embd``). Two things change, neither of them the math:

- the three projections ``W_query``, ``W_key``, ``W_value`` are stacked into one ``c_attn``
  matrix (n_embd -> 3 * n_embd), one matmul instead of three, and ``out_proj`` is called
  ``c_proj``; these are GPT-2's names, so its weights load by name.
  ``CausalSelfAttention.from_multi_head_attention`` copies a step-4 module into this one and
  the tests check that the outputs match;
- the attention itself runs in ``F.scaled_dot_product_attention`` (a fused kernel that never
  stores the T x T weights) — the fast path. The explicit path, ``explicit_attention``, is the
  step-by-step computation (scores, ``causal_mask`` / ``mask_scores`` from
  ``attention_steps``, scaled softmax, dropout, weighted sum) and returns the weights, for
  heatmaps and as the fast path's oracle: the two agree to 1e-6 in fp32.

With a KV cache the keys and values of earlier positions come from the cache: ``T`` new queries
attend to ``S = start_position + T`` keys, and query i sits at position ``start_position + i``.
``F.scaled_dot_product_attention(is_causal=True)`` aligns its mask to the top-left corner, which
is only right when ``T == S``; for a multi-token step after a cached prefix we pass the
bottom-right-aligned ``causal_mask(T, S)`` instead, and a single new token needs no mask.

**Packed rows** (several examples in one row, as instruction finetuning packs them) pass
``allowed``: a ``(B, 1, T, T)`` boolean mask, True where a query may attend to a key (SDPA's
convention, the opposite of ``causal_mask``'s), that replaces the causal mask on both paths.
``document_causal_mask(document_ids)`` builds the block-diagonal causal one: each token sees
only the earlier tokens of its own example, so a packed example's outputs are those it gets
alone. Without it nothing changes: the fast path stays the ``is_causal=True`` call.

**Slots** (continuous batching, ``generate/engine.py``): each row of the batch is a separate
sequence at its own position, its keys and values in its own row (slot) of a ``SlotKVCache``.
The layer then gets ``slots`` ``(B,)`` and ``positions`` ``(B, T)``, writes each row's new keys
at its positions, reads every row's keys ``0 .. S - 1`` and attends through ``allowed``
from ``slot_causal_mask(positions, S)``: a query sees its own slot's positions up to its own,
never the stale ones past a shorter row's end.

Shapes: ``B`` batch, ``T`` new tokens, ``S`` keys (cached + new), ``C`` = n_embd, ``nh`` heads,
``hs`` = C / nh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from scratchllm.errors import ConfigError
from scratchllm.model.attention_steps import (
    MultiHeadAttention,
    causal_mask,
    mask_scores,
    scaled_attention_weights,
)

if TYPE_CHECKING:
    from scratchllm.model.kv_cache import KVCache, SlotKVCache


def document_causal_mask(document_ids: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` document ids -> ``(B, 1, T, T)`` booleans, True where query i may attend to
    key j: ``j <= i`` and both tokens belong to the same document (example).

    Documents are runs of equal ids; give neighbouring runs different ids (a run that comes
    back later with the same id would see its earlier part). Padding can be one more run: it
    then attends only to itself, so no query is left with nothing to attend to.

    >>> document_causal_mask(torch.tensor([[0, 0, 1, 1, 1]]))[0, 0].int()
    tensor([[1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 1, 1, 1]], dtype=torch.int32)
    """
    num_tokens = document_ids.shape[-1]
    same_document = document_ids[:, :, None] == document_ids[:, None, :]  # (B, T, T)
    causal = torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=document_ids.device)
    return (same_document & causal.tril())[:, None]  # (B, 1, T, T): one mask for every head


def slot_causal_mask(positions: torch.Tensor, num_keys: int) -> torch.Tensor:
    """``(B, T)`` query positions -> ``(B, 1, T, S)`` booleans, True where the query may attend
    to key position ``j < num_keys``: ``j <= `` its own position. Each row is its own sequence,
    so rows at different positions get different masks (a row's keys past its position are
    someone else's, or nobody's).

    >>> slot_causal_mask(torch.tensor([[1], [3]]), 4)[:, 0, 0].int()  # one decode step
    tensor([[1, 1, 0, 0],
            [1, 1, 1, 1]], dtype=torch.int32)
    >>> slot_causal_mask(torch.arange(3)[None], 3)[0, 0].int()  # a prefill: the causal mask
    tensor([[1, 0, 0],
            [1, 1, 0],
            [1, 1, 1]], dtype=torch.int32)
    """
    keys = torch.arange(num_keys, device=positions.device)  # (S,)
    return (keys <= positions[:, :, None])[:, None]  # (B, 1, T, S): one mask for every head


def explicit_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    *,
    dropout: float = 0.0,
    training: bool = False,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal attention written out; returns ``(context (B, nh, T, hs), weights (B, nh, T, S))``.

    The ``T`` queries are the last ``T`` of the ``S`` key positions (see ``causal_mask``).
    ``allowed`` (True = may attend, broadcast to ``(B, nh, T, S)``) replaces the causal mask.
    """
    num_queries, num_keys = queries.shape[-2], keys.shape[-2]
    scores = queries @ keys.transpose(-2, -1)  # (B, nh, T, S)
    # mask_scores hides where its mask is True: the opposite of ``allowed``
    mask = causal_mask(num_queries, num_keys).to(scores.device) if allowed is None else ~allowed
    weights = scaled_attention_weights(mask_scores(scores, mask), queries.shape[-1])
    weights = F.dropout(weights, p=dropout, training=training)
    return weights @ values, weights


def fast_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    *,
    dropout: float = 0.0,
    training: bool = False,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """The same as ``explicit_attention``'s context, through the fused SDPA kernel."""
    num_queries, num_keys = queries.shape[-2], keys.shape[-2]
    dropout_p = dropout if training else 0.0
    if allowed is not None:  # packed rows: a block-diagonal causal mask, given
        return F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=allowed, dropout_p=dropout_p
        )
    if num_queries == num_keys:  # no cache, or an empty one: the usual square causal mask
        return F.scaled_dot_product_attention(
            queries, keys, values, dropout_p=dropout_p, is_causal=True
        )
    if num_queries == 1:  # one new token sees every key, itself included: no mask at all
        return F.scaled_dot_product_attention(queries, keys, values, dropout_p=dropout_p)
    allowed = ~causal_mask(num_queries, num_keys).to(queries.device)  # SDPA: True = may attend
    return F.scaled_dot_product_attention(
        queries, keys, values, attn_mask=allowed, dropout_p=dropout_p
    )


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with GPT-2's fused ``c_attn`` and ``c_proj``.

    ``(B, T, C) -> (B, T, C)``. ``dropout`` is applied to the attention weights while training
    (the residual dropout after ``c_proj`` lives in the block).
    """

    def __init__(
        self, n_embd: int, n_head: int, *, dropout: float = 0.0, qkv_bias: bool = False
    ) -> None:
        super().__init__()
        if n_embd % n_head != 0:
            raise ConfigError(f"n_embd {n_embd} must be divisible by n_head {n_head}")
        self.n_embd = n_embd
        self.n_head = n_head
        self.head_dim = n_embd // n_head
        self.dropout = dropout
        # rows [0:C) are W_query, [C:2C) W_key, [2C:3C) W_value, as in GPT-2's checkpoint
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=qkv_bias)
        self.c_proj = nn.Linear(n_embd, n_embd)  # out_proj: mixes the heads' outputs

    def forward(
        self,
        x: torch.Tensor,
        *,
        kv_cache: KVCache | None = None,
        start_position: int = 0,
        weights_sink: list[torch.Tensor] | None = None,
        allowed: torch.Tensor | None = None,
        slots: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend causally. With ``kv_cache``, ``x`` holds the tokens at positions
        ``start_position ..`` and earlier keys/values come from the cache (which is updated).
        With ``weights_sink`` (a list), the explicit path runs and appends its weights
        ``(B, nh, T, S)`` to it. ``allowed`` (``(B, 1, T, T)``, True = may attend; see
        ``document_causal_mask``) replaces the causal mask, for packed rows (no cache).

        With a ``SlotKVCache``, ``slots`` ``(B,)`` and ``positions`` ``(B, T)`` say where each
        row's tokens go, and ``allowed`` is ``slot_causal_mask(positions, S)`` ``(B, 1, T, S)``:
        its last dimension is how many key positions are read.
        """
        batch, num_tokens, _ = x.shape
        queries, keys, values = self._split_heads(self.c_attn(x), batch, num_tokens)
        if slots is not None:
            slot_cache: SlotKVCache = kv_cache
            keys, values = slot_cache.update(
                slots, positions, keys, values, num_keys=allowed.shape[-1]
            )  # (B, nh, S, hs)
        elif kv_cache is not None:
            keys, values = kv_cache.update(start_position, keys, values)  # (B, nh, S, hs)
        options = {"dropout": self.dropout, "training": self.training, "allowed": allowed}
        if weights_sink is None:
            context = fast_attention(queries, keys, values, **options)
        else:
            context, weights = explicit_attention(queries, keys, values, **options)
            weights_sink.append(weights)
        # (B, nh, T, hs) -> (B, T, nh, hs) -> (B, T, C): the heads' outputs side by side
        context = context.transpose(1, 2).reshape(batch, num_tokens, self.n_embd)
        return self.c_proj(context)

    def _split_heads(
        self, qkv: torch.Tensor, batch: int, num_tokens: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, T, 3C)`` -> queries, keys, values, each ``(B, nh, T, hs)``."""
        split = (batch, num_tokens, self.n_head, self.head_dim)
        queries, keys, values = qkv.split(self.n_embd, dim=2)
        return tuple(part.view(split).transpose(1, 2) for part in (queries, keys, values))

    @classmethod
    def from_multi_head_attention(cls, module: MultiHeadAttention) -> CausalSelfAttention:
        """The step-4 module's weights in fused form: the same function, GPT-2's layout."""
        d_in = module.W_query.in_features
        if d_in != module.d_out:
            raise ConfigError(f"fusing needs d_in == d_out, got {d_in} and {module.d_out}")
        has_bias = module.W_query.bias is not None
        fused = cls(d_in, module.num_heads, dropout=module.dropout.p, qkv_bias=has_bias)
        projections = (module.W_query, module.W_key, module.W_value)
        with torch.no_grad():
            fused.c_attn.weight.copy_(torch.cat([layer.weight for layer in projections]))
            if has_bias:
                fused.c_attn.bias.copy_(torch.cat([layer.bias for layer in projections]))
            fused.c_proj.load_state_dict(module.out_proj.state_dict())
        return fused
