"""Packed rows: several examples in one row give each example exactly its logits alone.

Oracles: the model run on each example by itself (the definition of "kept inside each
example"), a naive double loop for the block-diagonal mask, and SDPA's call as recorded.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.config import GPTConfig
from scratchllm.errors import ConfigError, DataLengthError
from scratchllm.model import attention
from scratchllm.model.attention import document_causal_mask, explicit_attention, fast_attention
from scratchllm.model.gpt import GPT, document_positions

TINY = GPTConfig(vocab_size=97, context_length=32, n_embd=32, n_head=4, n_layer=2, dropout=0.0)
PAD_DOCUMENT = -1  # what the packing collate gives a row's padding tail


def make_model(seed: int = 0) -> GPT:
    return GPT(TINY, generator=torch.Generator().manual_seed(seed)).eval()


def pack(examples: list[torch.Tensor], row_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One row: the examples side by side, then padding (id 0, its own document)."""
    ids = torch.zeros(row_length, dtype=torch.long)
    documents = torch.full((row_length,), PAD_DOCUMENT, dtype=torch.long)
    start = 0
    for number, example in enumerate(examples):
        ids[start : start + len(example)] = example
        documents[start : start + len(example)] = number
        start += len(example)
    return ids, documents


def naive_document_mask(document_ids: torch.Tensor) -> torch.Tensor:
    batch, length = document_ids.shape
    allowed = torch.zeros(batch, 1, length, length, dtype=torch.bool)
    for b in range(batch):
        for i in range(length):
            for j in range(i + 1):
                allowed[b, 0, i, j] = bool(document_ids[b, i] == document_ids[b, j])
    return allowed


def test_the_mask_and_positions_of_a_packed_row():
    documents = torch.tensor([[0, 0, 0, 1, 1, 2, -1, -1], [5, 5, 5, 5, 5, 5, 5, 5]])
    assert torch.equal(document_causal_mask(documents), naive_document_mask(documents))
    assert document_positions(documents).tolist() == [
        [0, 1, 2, 0, 1, 0, 0, 1],
        [0, 1, 2, 3, 4, 5, 6, 7],  # one document: plain positions, the plain causal mask
    ]
    assert torch.equal(document_causal_mask(documents)[1, 0], torch.ones(8, 8).tril().bool())


def test_fast_and_explicit_paths_agree_under_a_document_mask():
    generator = torch.Generator().manual_seed(3)
    queries, keys, values = (torch.randn(2, 3, 9, 8, generator=generator) for _ in range(3))
    allowed = document_causal_mask(torch.tensor([[0, 0, 0, 0, 1, 1, 1, 2, 2]] * 2))
    explicit, weights = explicit_attention(queries, keys, values, allowed=allowed)
    fast = fast_attention(queries, keys, values, allowed=allowed)
    torch.testing.assert_close(fast, explicit, atol=1e-6, rtol=0)
    assert torch.all(weights.masked_select(~allowed.expand_as(weights)) == 0)
    # the second example attends as if it were alone
    alone = fast_attention(queries[..., 4:7, :], keys[..., 4:7, :], values[..., 4:7, :])
    torch.testing.assert_close(fast[..., 4:7, :], alone, atol=1e-6, rtol=0)


def test_a_packed_row_gives_each_example_its_logits_alone():
    model = make_model(seed=1)
    generator = torch.Generator().manual_seed(7)
    examples = [torch.randint(0, 97, (length,), generator=generator) for length in (9, 4, 12)]
    rows = [pack(examples, 32), pack(examples[::-1], 32)]
    ids = torch.stack([row[0] for row in rows])
    documents = torch.stack([row[1] for row in rows])
    with torch.no_grad():
        packed = model(ids, document_ids=documents)
        alone = [model(example[None])[0] for example in examples]
    start = 0
    for example, logits in zip(examples, alone, strict=True):
        part = packed[0, start : start + len(example)]
        torch.testing.assert_close(part, logits, atol=1e-5, rtol=0)
        start += len(example)
    torch.testing.assert_close(packed[1, :12], alone[2], atol=1e-5, rtol=0)
    # the explicit path (attention weights) sees the same block-diagonal mask
    weights = model.attention_weights(ids, document_ids=documents)
    assert torch.all(weights[0][0, :, :9, 9:] == 0) and torch.all(weights[1][0, :, 9:13, :9] == 0)


_SHARED_MODEL = make_model(seed=5)  # built once: Hypothesis calls the test many times


@settings(max_examples=20, deadline=None)
@given(lengths=st.lists(st.integers(1, 10), min_size=1, max_size=4), seed=st.integers(0, 99))
def test_any_packing_equals_the_examples_alone(lengths, seed):
    generator = torch.Generator().manual_seed(seed)
    examples = [torch.randint(0, 97, (length,), generator=generator) for length in lengths]
    ids, documents = pack(examples, max(sum(lengths), 1) + 2)
    with torch.no_grad():
        packed = _SHARED_MODEL.hidden_states(ids[None], document_ids=documents[None])[0]
        start = 0
        for example in examples:
            alone = _SHARED_MODEL.hidden_states(example[None])[0]
            part = packed[start : start + len(example)]
            torch.testing.assert_close(part, alone, atol=1e-5, rtol=0)
            start += len(example)


def test_packed_gradients_equal_the_sum_of_the_examples_gradients():
    generator = torch.Generator().manual_seed(2)
    examples = [torch.randint(0, 97, (length,), generator=generator) for length in (7, 5)]
    targets = [torch.randint(0, 97, (len(example),), generator=generator) for example in examples]

    packed_model, separate_model = make_model(seed=9), make_model(seed=9)
    ids, documents = pack(examples, 14)
    packed_targets = torch.full((14,), -100)
    packed_targets[:12] = torch.cat(targets)
    logits = packed_model(ids[None], document_ids=documents[None])
    F.cross_entropy(logits[0], packed_targets, reduction="sum").backward()
    for example, target in zip(examples, targets, strict=True):
        logits = separate_model(example[None])
        F.cross_entropy(logits[0], target, reduction="sum").backward()
    for (name, packed), separate in zip(
        packed_model.named_parameters(), separate_model.parameters(), strict=True
    ):
        torch.testing.assert_close(packed.grad, separate.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_positions_alone_keep_the_causal_mask():
    model = make_model(seed=3)
    ids = torch.randint(0, 97, (2, 10))
    with torch.no_grad():
        plain = model(ids)
        explicit_positions = model(ids, positions=torch.arange(10).expand(2, 10))
        shifted = model(ids, positions=torch.arange(5, 15).expand(2, 10))
    torch.testing.assert_close(explicit_positions, plain, atol=1e-6, rtol=0)
    assert not torch.allclose(shifted, plain)


def test_the_default_path_is_still_sdpas_causal_call(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def recording(*args, **kwargs):
        calls.append((kwargs.get("is_causal", False), kwargs.get("attn_mask")))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", recording)
    model = make_model()
    ids = torch.randint(0, 97, (2, 6))
    model(ids)
    assert calls == [(True, None), (True, None)]  # one per layer: no mask tensor is built
    calls.clear()
    model(ids, document_ids=torch.tensor([[0, 0, 0, 1, 1, 1]] * 2))
    assert [is_causal for is_causal, _ in calls] == [False, False]
    assert all(mask is not None and mask.shape == (2, 1, 6, 6) for _, mask in calls)


def test_packed_rows_reject_a_cache_wrong_shapes_and_long_documents():
    model = make_model()
    ids = torch.zeros(1, 6, dtype=torch.long)
    documents = torch.zeros(1, 6, dtype=torch.long)
    with pytest.raises(ConfigError, match="KV cache"):
        model(ids, document_ids=documents, kv_caches=model.make_kv_caches(1))
    with pytest.raises(ConfigError, match=r"document_ids must have the shape .* \(1, 6\)"):
        model(ids, document_ids=torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(DataLengthError, match="positions 0..32 do not fit the context length 32"):
        model(ids, positions=torch.tensor([[0, 1, 2, 3, 4, 32]]))
    # a row longer than the context is fine while each document fits
    long_ids = torch.zeros(1, 40, dtype=torch.long)
    two_documents = torch.tensor([[0] * 20 + [1] * 20])
    assert model(long_ids, document_ids=two_documents).shape == (1, 40, 97)
    with pytest.raises(DataLengthError, match="positions 0..32"):
        model(long_ids[:, :34], document_ids=torch.tensor([[0] * 33 + [1]]))
