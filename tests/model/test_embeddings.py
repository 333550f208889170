"""Input embeddings against the walkthrough's published values and a one-hot matmul reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scratchllm.errors import DataLengthError
from scratchllm.model import InputEmbeddings


def test_published_shape_for_gpt2_vocabulary():
    embeddings = InputEmbeddings(vocab_size=50257, context_length=4, dim=256)
    token_ids = torch.randint(0, 50257, (8, 4))
    assert embeddings(token_ids).shape == (8, 4, 256)


def test_published_embedding_table_under_seed_123():
    # The walkthrough's six-word vocabulary, dim 3, torch.manual_seed(123): its printed table.
    torch.manual_seed(123)
    embeddings = InputEmbeddings(vocab_size=6, context_length=4, dim=3)
    published = torch.tensor(
        [
            [0.3374, -0.1778, -0.1690],
            [0.9178, 1.5810, 1.3010],
            [1.2753, -0.2010, -0.1606],
            [-0.4015, 0.9666, -1.1481],
            [-1.1589, 0.3255, -0.6315],
            [-2.8400, -0.7849, -1.4096],
        ]
    )
    torch.testing.assert_close(embeddings.wte.weight.detach(), published, atol=1e-4, rtol=0)


def test_equals_one_hot_matmul_plus_positions():
    torch.manual_seed(0)
    embeddings = InputEmbeddings(vocab_size=11, context_length=5, dim=7)
    token_ids = torch.randint(0, 11, (3, 5))
    one_hot = F.one_hot(token_ids, 11).float()  # (B, T, V)
    expected = one_hot @ embeddings.wte.weight + embeddings.wpe.weight[:5]
    torch.testing.assert_close(embeddings(token_ids), expected)


def test_start_position_offsets_positions():
    torch.manual_seed(0)
    embeddings = InputEmbeddings(vocab_size=11, context_length=5, dim=7)
    token_ids = torch.randint(0, 11, (2, 5))
    full = embeddings(token_ids)
    torch.testing.assert_close(embeddings(token_ids[:, 3:], start_position=3), full[:, 3:])


def test_too_long_input_is_a_clear_error():
    embeddings = InputEmbeddings(vocab_size=11, context_length=4, dim=2)
    with pytest.raises(DataLengthError, match="context length 4"):
        embeddings(torch.zeros(1, 5, dtype=torch.long))
