"""scratchllm: a GPT-2 style decoder-only language model built from scratch.

The package follows the pipeline text -> tokens -> windows -> embeddings -> model:

- ``scratchllm.corpora``: named and local text corpora
- ``scratchllm.tokenizer``: the simple word-level tokenizer, our byte-level BPE, GPT-2 via tiktoken
- ``scratchllm.data``: token files on disk and the sliding-window dataset
- ``scratchllm.model``: token + positional embeddings (and, later, attention and the GPT)
"""

__version__ = "0.1.0"
