"""The model: embeddings, the attention progression, production attention, and the GPT.

- ``embeddings.py``: token + positional embeddings (the teaching module for that step)
- ``attention_steps.py``: simplified -> trainable -> causal -> multi-head attention
- ``attention.py``: the production causal self-attention (fused QKV, SDPA fast path)
- ``gpt.py``: LayerNorm, GELU, MLP, Block, GPT — with GPT-2's parameter names
- ``kv_cache.py``: the preallocated key/value caches used by generation (one sequence per
  batch, or one per slot for continuous batching)
"""

from scratchllm.model.attention import (
    CausalSelfAttention,
    document_causal_mask,
    slot_causal_mask,
)
from scratchllm.model.attention_steps import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttentionV1,
    SelfAttentionV2,
    causal_mask,
)
from scratchllm.model.embeddings import InputEmbeddings
from scratchllm.model.gpt import (
    GELU,
    GPT,
    MLP,
    Block,
    LayerNorm,
    describe_model,
    document_positions,
    num_parameters,
)
from scratchllm.model.kv_cache import KVCache, SlotKVCache

__all__ = [
    "GELU",
    "GPT",
    "MLP",
    "Block",
    "CausalAttention",
    "CausalSelfAttention",
    "InputEmbeddings",
    "KVCache",
    "LayerNorm",
    "MultiHeadAttention",
    "MultiHeadAttentionWrapper",
    "SelfAttentionV1",
    "SelfAttentionV2",
    "SlotKVCache",
    "causal_mask",
    "describe_model",
    "document_causal_mask",
    "document_positions",
    "num_parameters",
    "slot_causal_mask",
]
