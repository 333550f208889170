"""Input embeddings: token ids -> token embeddings + positional embeddings.

A GPT sees a batch of token ids of shape ``(B, T)``. Each id picks a row of the token-embedding
table ``wte`` (vocabulary x dim), and each position 0..T-1 picks a row of the learned absolute
positional-embedding table ``wpe`` (context length x dim). Their sum is the input embedding the
first transformer block consumes. GPT-2 names the two tables ``wte`` and ``wpe``; we keep those
names so pretrained weights load by name.

>>> import torch
>>> embeddings = InputEmbeddings(vocab_size=50_257, context_length=4, dim=256)
>>> embeddings(torch.zeros(8, 4, dtype=torch.long)).shape
torch.Size([8, 4, 256])
"""

from __future__ import annotations

import torch
from torch import nn

from scratchllm.errors import DataLengthError


class InputEmbeddings(nn.Module):
    """Token embedding plus learned absolute positional embedding (GPT-2's ``wte`` + ``wpe``).

    Shapes: ``B`` batch, ``T`` sequence length, ``C`` embedding dim.
    """

    def __init__(self, vocab_size: int, context_length: int, dim: int) -> None:
        super().__init__()
        if min(vocab_size, context_length, dim) < 1:
            raise ValueError(
                f"vocab_size, context_length and dim must be positive, got "
                f"{vocab_size}, {context_length}, {dim}"
            )
        self.context_length = context_length
        self.wte = nn.Embedding(vocab_size, dim)  # token id -> vector
        self.wpe = nn.Embedding(context_length, dim)  # position -> vector

    def forward(self, token_ids: torch.Tensor, *, start_position: int = 0) -> torch.Tensor:
        """``(B, T)`` ids -> ``(B, T, C)`` input embeddings.

        ``start_position`` offsets the positions, for decoding one token at a time after a
        prefix that is already cached.
        """
        _, sequence_length = token_ids.shape
        end = start_position + sequence_length
        if end > self.context_length:
            raise DataLengthError(
                f"positions up to {end} do not fit the context length {self.context_length}; "
                f"shorten the input to at most {self.context_length} tokens"
            )
        positions = torch.arange(start_position, end, device=token_ids.device)  # (T,)
        return self.wte(token_ids) + self.wpe(positions)  # (B, T, C) + (T, C) broadcast
