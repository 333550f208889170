"""Text generation: pick tokens from the model's logits, one at a time, over a KV cache.

- ``sampling.py``: pure functions on logits (greedy, temperature, top-k, top-p); the
  ``SamplingConfig`` the CLI and the server read lives in the torch-free ``scratchllm.config``
  and is importable from here too;
- ``decode.py``: ``prefill`` and ``decode_one_token`` over the cache, and the one streaming
  generator (``generate_tokens``, with ``generate_text`` on top) that every caller uses;
- ``text_stream.py``: token ids -> complete text pieces, cut at stop strings;
- ``engine.py``: continuous batching for the server: many requests decoded in one forward pass
  per step, joining and leaving between steps.
"""

from scratchllm.generate.decode import (
    decode_one_token,
    generate_text,
    generate_tokens,
    generate_with_config,
    prefill,
)
from scratchllm.generate.engine import Engine, SamplingParams, TokenEvent
from scratchllm.generate.sampling import (
    SamplingConfig,
    apply_penalties,
    apply_temperature,
    greedy,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from scratchllm.generate.text_stream import TextStream

__all__ = [
    "Engine",
    "SamplingConfig",
    "SamplingParams",
    "TextStream",
    "TokenEvent",
    "apply_penalties",
    "apply_temperature",
    "decode_one_token",
    "generate_text",
    "generate_tokens",
    "generate_with_config",
    "greedy",
    "prefill",
    "sample_next_token",
    "top_k_filter",
    "top_p_filter",
]
