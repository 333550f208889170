"""Choosing the next token from the model's logits: greedy, temperature, top-k, top-p.

A GPT's last layer gives, for each sequence in the batch, one score (logit) per vocabulary
entry, shape ``(B, V)``. Everything here is a pure function of those scores:

- ``greedy``: the highest-scoring token, deterministic;
- ``apply_temperature``: divide the logits by ``temperature`` -- below 1 the distribution
  sharpens towards greedy, above 1 it flattens towards uniform;
- ``top_k_filter``: keep the ``k`` highest logits, set the rest to ``-inf``;
- ``top_p_filter`` (nucleus sampling): keep the most likely tokens whose probabilities add up
  to ``p``, set the rest to ``-inf``;
- ``apply_penalties``: OpenAI's presence and frequency penalties, which lower the logits of
  tokens already generated (used by the serving engine, ``engine.py``, before the above);
- ``sample_next_token``: the above in HF's order (temperature, top-k, top-p), then a draw from
  the softmax through an explicit ``torch.Generator``, so a seed reproduces a sample.

Ties are broken towards the lower token id everywhere (``greedy``, and which of several equal
logits survive a top-k or top-p cut), so the same logits always give the same candidates.

``SamplingConfig`` gathers the user's choices (CLI, server, training samples) and validates them;
it lives in the torch-free ``scratchllm.config`` and is importable from here too.
"""

from __future__ import annotations

import torch

from scratchllm.config import SamplingConfig
from scratchllm.errors import ConfigError

__all__ = [
    "SamplingConfig",
    "apply_penalties",
    "apply_temperature",
    "greedy",
    "sample_next_token",
    "top_k_filter",
    "top_p_filter",
]


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The highest-scoring token of each row, ``(B, V)`` -> ``(B,)``; ties go to the lower id.

    >>> greedy(torch.tensor([[0.1, 2.0, -1.0], [3.0, 3.0, 0.0]]))
    tensor([1, 0])
    """
    return torch.argmax(logits, dim=-1)  # documented to return the first maximal index


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide ``logits`` by ``temperature`` (> 0), after shifting each row so its maximum is 0.

    The shift changes no probability (softmax ignores a constant per row) but keeps a tiny
    temperature from overflowing: the scaled logits are ``<= 0``, the best token's is exactly 0.

    >>> apply_temperature(torch.tensor([[1.0, 3.0]]), 0.5)
    tensor([[-4.,  0.]])
    """
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0 to scale logits, got {temperature}")
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    return shifted / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the others to ``-inf``.

    Exactly ``min(k, V)`` entries keep their value; among equal logits the lower ids are kept
    (a stable sort), so at most ``k`` finite logits remain even with ties.

    >>> top_k_filter(torch.tensor([[1.0, 3.0, 2.0, 3.0]]), 2)
    tensor([[-inf, 3., -inf, 3.]])
    >>> top_k_filter(torch.tensor([[5.0, 5.0, 5.0]]), 2)  # a tie: the lower ids win
    tensor([[5., 5., -inf]])
    """
    if k < 1:
        raise ConfigError(f"top_k must be at least 1, got {k}")
    if k >= logits.shape[-1]:
        return logits
    # the k-th largest value, without sorting the whole vocabulary: everything above it stays,
    # and of the logits equal to it, the lowest ids fill the rest of the k places
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    above = logits > kth
    equal = logits == kth
    room = k - above.sum(dim=-1, keepdim=True)
    keep = above | (equal & (torch.cumsum(equal, dim=-1) <= room))
    return logits.masked_fill(~keep, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probabilities sum to at
    least ``p`` (0 < p <= 1), set the others to ``-inf``. The most likely token always stays.

    Sorted by probability, a token is kept if the tokens ranked before it sum to less than ``p``.
    Probabilities 0.5, 0.25, 0.125, 0.125 (logits ln 4, ln 2, 0, 0) with p = 0.7: 0.5 < 0.7 is
    not enough, 0.5 + 0.25 reaches it, so two tokens stay.

    >>> import math
    >>> logits = torch.tensor([[0.0, math.log(4), 0.0, math.log(2)]])
    >>> top_p_filter(logits, 0.7)
    tensor([[  -inf, 1.3863,   -inf, 0.6931]])
    """
    if not 0 < p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {p}")
    if p == 1:
        return logits  # everything reaches 1; skip the rounding of a long cumulative sum
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    probabilities = torch.softmax(sorted_logits.float(), dim=-1)
    mass_before = torch.cumsum(probabilities, dim=-1) - probabilities  # (B, V), exclusive
    drop_sorted = mass_before >= p
    drop_sorted[..., 0] = False  # the most likely token stays, whatever rounding does
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def apply_penalties(
    logits: torch.Tensor,
    counts: torch.Tensor,
    presence_penalty: torch.Tensor | float,
    frequency_penalty: torch.Tensor | float,
) -> torch.Tensor:
    """OpenAI's penalties: ``logits - presence * (count > 0) - frequency * count``, row-wise.

    ``counts`` ``(B, V)`` says how often each token was already generated in each row's
    completion (the prompt does not count); the penalties are numbers or ``(B,)`` tensors, one
    per row. A positive presence penalty lowers every token used at least once by the same
    amount, a positive frequency penalty lowers it more the more it was used; negative values
    encourage repetition instead. (OpenAI's API accepts -2 .. 2; any finite value works here.)

    Token 1 used twice and token 2 once, presence 0.5 and frequency 1: 3 - 0.5 - 2 = 0.5 and
    1 - 0.5 - 1 = -0.5; unused tokens keep their logits.

    >>> apply_penalties(torch.tensor([[2.0, 3.0, 1.0]]), torch.tensor([[0, 2, 1]]), 0.5, 1.0)
    tensor([[ 2.0000,  0.5000, -0.5000]])
    """
    counts = counts.to(logits.dtype)
    if isinstance(presence_penalty, torch.Tensor):
        presence_penalty = presence_penalty.to(logits)[:, None]  # (B, 1) against (B, V)
    if isinstance(frequency_penalty, torch.Tensor):
        frequency_penalty = frequency_penalty.to(logits)[:, None]
    return logits - presence_penalty * (counts > 0).to(logits.dtype) - frequency_penalty * counts


def sample_next_token(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row of ``logits`` ``(B, V)`` -> ``(B,)`` token ids.

    ``temperature == 0`` is greedy (``top_k``/``top_p`` cannot change the top token, so they are
    ignored). Otherwise: temperature, then top-k, then top-p, then a draw from the softmax with
    ``generator`` (on the logits' device; None uses torch's global random state). Small positive
    temperatures approach greedy.

    >>> sample_next_token(torch.tensor([[0.0, 5.0, 1.0]]), temperature=0.0)
    tensor([1])
    """
    if temperature == 0:
        return greedy(logits)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probabilities = torch.softmax(logits.float(), dim=-1)  # filtered tokens get exactly 0
    return torch.multinomial(probabilities, num_samples=1, generator=generator).squeeze(-1)
