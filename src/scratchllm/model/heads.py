"""Task heads: what turns the GPT's final hidden states into a task's outputs.

A classification head is ``Linear(n_embd, num_classes)`` reading one position of the hidden
states ``(B, T, C)`` that ``GPT.hidden_states`` returns (the walkthrough's chapter 6 replaces
the output head by such a layer). Which position (``HeadConfig.position``):

- ``"last"``: the last position of the sequence, as the walkthrough reads it. With texts
  padded to one length, that is a padding token for every text but the longest;
- ``"last-token"``: the last real token of each text, wherever its padding starts; needs the
  texts' lengths.

Causal attention makes the last token's state the only one that has seen the whole text.
"""

from __future__ import annotations

import torch
from torch import nn

from scratchllm.config import HeadConfig


def pool(hidden: torch.Tensor, position: str, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """The hidden state ``(B, C)`` a head reads from ``hidden`` ``(B, T, C)``: the ``"last"``
    position, or each text's ``"last-token"`` (``lengths`` real tokens, then padding).

    >>> hidden = torch.arange(6.0).reshape(2, 3, 1)
    >>> pool(hidden, "last-token", torch.tensor([2, 3])).flatten().tolist()
    [1.0, 5.0]
    >>> pool(hidden, "last").flatten().tolist()
    [2.0, 5.0]
    """
    if position == "last":
        return hidden[:, -1, :]
    if lengths is None:
        raise ValueError("a 'last-token' head needs the texts' lengths")
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, lengths.to(hidden.device) - 1, :]


class ClassificationHead(nn.Linear):
    """``Linear(n_embd, num_classes)`` on one position of the hidden states."""

    def __init__(self, config: HeadConfig, n_embd: int) -> None:
        super().__init__(n_embd, config.num_classes, bias=config.bias)
        self.config = config

    def classify(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits ``(B, num_classes)`` from hidden states ``(B, T, C)``."""
        return self(pool(hidden, self.config.position, lengths))
