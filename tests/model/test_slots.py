"""Slots: rows that are separate sequences at different positions, each in its own row of a
``SlotKVCache`` (what continuous batching decodes). Oracle: each sequence's full forward pass
on its own."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.config import GPTConfig
from scratchllm.errors import ConfigError, DataLengthError
from scratchllm.model.attention import slot_causal_mask
from scratchllm.model.attention_steps import causal_mask
from scratchllm.model.gpt import GPT
from scratchllm.model.kv_cache import SlotKVCache

TINY = GPTConfig(vocab_size=97, context_length=32, n_embd=32, n_head=4, n_layer=2, dropout=0.0)
NH, HS = 2, 4  # heads, head size of the bare cache tests


def make_model(seed: int = 0) -> GPT:
    return GPT(TINY, generator=torch.Generator().manual_seed(seed)).eval()


def test_slot_cache_is_preallocated_zero_and_not_in_the_state_dict():
    cache = SlotKVCache(3, NH, 10, HS, dtype=torch.float64)
    assert cache.k.shape == cache.v.shape == (3, NH, 10, HS)
    assert cache.k.dtype == torch.float64 and not cache.k.any()
    assert cache.max_batch == 3 and cache.max_length == 10
    assert cache.state_dict() == {}


def test_slot_cache_writes_each_row_into_its_slot_at_its_positions():
    cache = SlotKVCache(4, NH, 8, HS)
    k = torch.randn(2, NH, 1, HS)
    v = torch.randn(2, NH, 1, HS)
    slots, positions = torch.tensor([3, 1]), torch.tensor([[5], [2]])
    keys, values = cache.update(slots, positions, k, v, num_keys=6)
    assert keys.shape == (2, NH, 6, HS)
    assert torch.equal(cache.k[3, :, 5], k[0, :, 0]) and torch.equal(cache.k[1, :, 2], k[1, :, 0])
    assert torch.equal(cache.v[3, :, 5], v[0, :, 0]) and torch.equal(cache.v[1, :, 2], v[1, :, 0])
    assert torch.equal(keys[0], cache.k[3, :, :6]) and torch.equal(values[1], cache.v[1, :, :6])
    written = torch.zeros(4, 8, dtype=torch.bool)
    written[3, 5] = written[1, 2] = True
    assert torch.equal(cache.k.abs().sum(dim=(1, 3)) > 0, written)  # nothing else was touched


def test_slot_cache_rejects_misfits():
    cache = SlotKVCache(2, NH, 4, HS)
    k = torch.zeros(1, NH, 1, HS)
    with pytest.raises(DataLengthError, match="holds 4 positions"):
        cache.update(torch.tensor([0]), torch.tensor([[3]]), k, k, num_keys=5)
    with pytest.raises(ValueError, match="slots"):
        cache.update(torch.tensor([0, 1]), torch.tensor([[0]]), k, k, num_keys=1)
    three_heads = torch.zeros(1, 3, 1, HS)
    with pytest.raises(ValueError, match="do not fit"):
        cache.update(torch.tensor([0]), torch.tensor([[0]]), three_heads, three_heads, num_keys=1)


def test_slot_causal_mask_of_a_prefill_is_the_causal_mask():
    allowed = slot_causal_mask(torch.arange(5)[None], 5)
    assert allowed.shape == (1, 1, 5, 5)
    assert torch.equal(allowed[0, 0], ~causal_mask(5, 5))


@settings(max_examples=15, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 20), min_size=1, max_size=4),
    prompt_fraction=st.floats(0.1, 1.0),
    seed=st.integers(0, 10_000),
)
def test_sequences_decoded_together_in_slots_get_their_own_logits(lengths, prompt_fraction, seed):
    """Prefill each sequence into a slot (in reverse slot order, so slots != rows), then feed
    the rest one token per step, all unfinished sequences in one batch: every logit equals the
    sequence's full forward pass on its own."""
    model = make_model()
    generator = torch.Generator().manual_seed(seed)
    sequences = [torch.randint(0, 97, (length,), generator=generator) for length in lengths]
    slots = list(range(len(lengths)))[::-1]
    with torch.inference_mode():
        caches = model.make_slot_kv_caches(len(lengths) + 1, 24)
        got = []
        for sequence, slot in zip(sequences, slots, strict=True):
            prompt = max(1, int(len(sequence) * prompt_fraction))
            logits = model(
                sequence[None, :prompt],
                kv_caches=caches,
                positions=torch.arange(prompt)[None],
                slots=torch.tensor([slot]),
            )
            got.append(list(logits[0]))
        while True:
            rows = [i for i, seq in enumerate(sequences) if len(got[i]) < len(seq)]
            if not rows:
                break
            positions = torch.tensor([[len(got[i])] for i in rows])
            logits = model(
                torch.stack([sequences[i][len(got[i])] for i in rows])[:, None],
                kv_caches=caches,
                positions=positions,
                slots=torch.tensor([slots[i] for i in rows]),
            )
            for row, i in enumerate(rows):
                got[i].append(logits[row, 0])
        for sequence, pieces in zip(sequences, got, strict=True):
            expected = model(sequence[None])[0]
            torch.testing.assert_close(torch.stack(pieces), expected, atol=1e-5, rtol=0)


def test_slots_default_to_the_rows_and_hidden_states_take_them_too():
    model = make_model(seed=1)
    ids = torch.randint(0, 97, (2, 6), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        caches = model.make_slot_kv_caches(2, 8)
        positions = torch.arange(6).expand(2, 6)
        hidden = model.hidden_states(ids, kv_caches=caches, positions=positions)
        torch.testing.assert_close(hidden, model.hidden_states(ids), atol=1e-5, rtol=0)


def test_slot_path_errors_say_what_to_pass():
    model = make_model()
    ids = torch.zeros(1, 3, dtype=torch.long)
    with torch.inference_mode():
        caches = model.make_slot_kv_caches(2, 4)
        with pytest.raises(DataLengthError, match="do not fit"):
            model(ids, kv_caches=caches, positions=torch.tensor([[2, 3, 4]]))
        with pytest.raises(ConfigError, match="positions"):
            model(ids, kv_caches=caches)
        with pytest.raises(ConfigError, match="slot caches"):
            model(ids, positions=torch.arange(3)[None], slots=torch.tensor([0]))
        with pytest.raises(ConfigError, match="document_ids"):
            model(ids, kv_caches=caches, positions=torch.arange(3)[None], document_ids=ids)
        with pytest.raises(ConfigError, match="2 layers"):
            model(ids, kv_caches=caches[:1], positions=torch.arange(3)[None])
