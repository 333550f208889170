"""Data: tokens on disk and the sliding windows a model trains on.

- ``shards.py``: token files (a 64-byte header, then the raw ids) read back through
  ``numpy.memmap``, refusing files made with another tokenizer.
- ``prepare.py``: a corpus tokenized once into ``train.bin`` / ``val.bin`` plus a copy of the
  tokenizer and a ``meta.json`` report; ``load_prepared`` reads it back.
- ``windows.py``: the sliding-window ``(input, target)`` dataset and its ``DataLoader``
  factory, cutting windows from the token array on demand instead of storing them.
"""

from scratchllm.data.prepare import PreparedData, PrepareReport, load_prepared, prepare
from scratchllm.data.shards import TokenFile, TokenFileHeader, read_tokens, write_tokens
from scratchllm.data.windows import (
    SlidingWindowDataset,
    create_dataloader,
    create_dataloader_from_text,
    window_count,
)

__all__ = [
    "PrepareReport",
    "PreparedData",
    "SlidingWindowDataset",
    "TokenFile",
    "TokenFileHeader",
    "create_dataloader",
    "create_dataloader_from_text",
    "load_prepared",
    "prepare",
    "read_tokens",
    "window_count",
    "write_tokens",
]
