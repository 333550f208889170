"""The attention progression against the walkthrough's published figures (chapter 3).

Every number pinned here is printed in the book for the six-token example "Your journey starts
with one step"; with the same seeds our modules must reproduce them to the printed 4 decimals.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.model.attention_steps import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttentionV1,
    SelfAttentionV2,
    attention_scores,
    attention_weights,
    causal_mask,
    context_vectors,
    mask_scores,
    mask_weights_and_renormalise,
    scaled_attention_weights,
    scores_for_query,
    simplified_self_attention,
)

INPUTS = torch.tensor(
    [
        [0.43, 0.15, 0.89],  # Your     (x^1)
        [0.55, 0.87, 0.66],  # journey  (x^2)
        [0.57, 0.85, 0.64],  # starts   (x^3)
        [0.22, 0.58, 0.33],  # with     (x^4)
        [0.77, 0.25, 0.10],  # one      (x^5)
        [0.05, 0.80, 0.55],  # step     (x^6)
    ]
)
BATCH = torch.stack((INPUTS, INPUTS), dim=0)  # the book's batch of two copies


def assert_published(actual: torch.Tensor, published: list) -> None:
    """Equal to the book's printout, which rounds to 4 decimals."""
    torch.testing.assert_close(actual.detach(), torch.tensor(published), atol=6e-5, rtol=0)


# ---- step 1: simplified self-attention (section 3.3) ----------------------------------------


def test_published_query_2_scores_weights_and_context():
    scores = scores_for_query(INPUTS, 1)
    assert_published(scores, [0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865])
    weights = attention_weights(scores)
    assert_published(weights, [0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581])
    assert_published(context_vectors(weights, INPUTS), [0.4419, 0.6515, 0.5683])


def test_one_query_equals_a_loop_of_dot_products():
    # the book's first form: a Python loop over torch.dot
    loop = torch.tensor([torch.dot(x_i, INPUTS[1]).item() for x_i in INPUTS])
    torch.testing.assert_close(scores_for_query(INPUTS, 1), loop)


def test_published_all_context_vectors_and_matrix_form_matches_one_query():
    published = [
        [0.4421, 0.5931, 0.5790],
        [0.4419, 0.6515, 0.5683],
        [0.4431, 0.6496, 0.5671],
        [0.4304, 0.6298, 0.5510],
        [0.4671, 0.5910, 0.5266],
        [0.4177, 0.6503, 0.5645],
    ]
    assert_published(simplified_self_attention(INPUTS), published)
    scores = attention_scores(INPUTS)
    for query in range(len(INPUTS)):
        torch.testing.assert_close(scores[query], scores_for_query(INPUTS, query))
    torch.testing.assert_close(attention_weights(scores).sum(dim=-1), torch.ones(6))


# ---- step 2: trainable weights (section 3.4) -----------------------------------------------


def test_published_query_2_step_by_step_with_seed_123():
    # the book draws W_query, W_key, W_value in that order after manual_seed(123), as V1 does
    torch.manual_seed(123)
    module = SelfAttentionV1(3, 2)
    query_2 = INPUTS[1] @ module.W_query
    keys = INPUTS @ module.W_key
    values = INPUTS @ module.W_value
    assert_published(query_2, [0.4306, 1.4551])
    assert_published(query_2 @ keys[1], 1.8524)  # attn_score_22
    scores_2 = query_2 @ keys.T
    assert_published(scores_2, [1.2705, 1.8524, 1.8111, 1.0795, 0.5577, 1.5440])
    weights_2 = scaled_attention_weights(scores_2, key_dim=keys.shape[-1])
    assert_published(weights_2, [0.1500, 0.2264, 0.2199, 0.1311, 0.0906, 0.1820])
    assert_published(weights_2 @ values, [0.3061, 0.8210])  # context_vec_2


def test_published_self_attention_v1_seed_123():
    torch.manual_seed(123)
    published = [
        [0.2996, 0.8053],
        [0.3061, 0.8210],
        [0.3058, 0.8203],
        [0.2948, 0.7939],
        [0.2927, 0.7891],
        [0.2990, 0.8040],
    ]
    assert_published(SelfAttentionV1(3, 2)(INPUTS), published)


def test_published_self_attention_v2_seed_789():
    torch.manual_seed(789)
    published = [
        [-0.0739, 0.0713],
        [-0.0748, 0.0703],
        [-0.0749, 0.0702],
        [-0.0760, 0.0685],
        [-0.0763, 0.0679],
        [-0.0754, 0.0693],
    ]
    assert_published(SelfAttentionV2(3, 2)(INPUTS), published)


def test_v1_with_v2_weights_gives_v2_output():
    # the book's exercise 3.1: nn.Linear holds the transposed matrix
    torch.manual_seed(789)
    v2 = SelfAttentionV2(3, 2)
    v1 = SelfAttentionV1(3, 2)
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value"):
            getattr(v1, name).copy_(getattr(v2, name).weight.T)
    torch.testing.assert_close(v1(INPUTS), v2(INPUTS))


# ---- step 3: causal attention (section 3.5) ------------------------------------------------

PUBLISHED_CAUSAL_WEIGHTS = [
    [1.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000],
    [0.5517, 0.4483, 0.0000, 0.0000, 0.0000, 0.0000],
    [0.3800, 0.3097, 0.3103, 0.0000, 0.0000, 0.0000],
    [0.2758, 0.2460, 0.2462, 0.2319, 0.0000, 0.0000],
    [0.2175, 0.1983, 0.1984, 0.1888, 0.1971, 0.0000],
    [0.1935, 0.1663, 0.1666, 0.1542, 0.1666, 0.1529],
]


def test_published_causal_weights_both_ways_with_v2_seed_789():
    # the book reuses the seed-789 SelfAttentionV2's projections for its mask examples
    torch.manual_seed(789)
    module = SelfAttentionV2(3, 2)
    scores = module.W_query(INPUTS) @ module.W_key(INPUTS).T
    mask = causal_mask(6)
    minus_infinity = scaled_attention_weights(mask_scores(scores, mask), key_dim=2)
    renormalised = mask_weights_and_renormalise(scaled_attention_weights(scores, key_dim=2), mask)
    assert_published(minus_infinity, PUBLISHED_CAUSAL_WEIGHTS)
    assert_published(renormalised, PUBLISHED_CAUSAL_WEIGHTS)


@settings(max_examples=50, deadline=None)
@given(
    num_queries=st.integers(1, 7),
    extra_keys=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_minus_inf_and_renormalise_forms_agree(num_queries, extra_keys, seed):
    generator = torch.Generator().manual_seed(seed)
    num_keys = num_queries + extra_keys
    scores = torch.randn(2, num_queries, num_keys, generator=generator) * 3
    mask = causal_mask(num_queries, num_keys)
    minus_infinity = torch.softmax(mask_scores(scores, mask), dim=-1)
    renormalised = mask_weights_and_renormalise(torch.softmax(scores, dim=-1), mask)
    torch.testing.assert_close(minus_infinity, renormalised)
    assert bool((minus_infinity[:, mask] == 0).all())


@pytest.mark.parametrize(("num_queries", "num_keys"), [(1, 1), (4, 4), (1, 5), (3, 7)])
def test_causal_mask_matches_positions(num_queries, num_keys):
    # hand rule: query i sits at position num_keys - num_queries + i and sees keys <= it
    mask = causal_mask(num_queries, num_keys)
    offset = num_keys - num_queries
    for i in range(num_queries):
        for j in range(num_keys):
            assert bool(mask[i, j]) == (j > offset + i)


def test_causal_mask_rejects_more_queries_than_keys():
    with pytest.raises(ValueError, match="num_queries"):
        causal_mask(3, 2)


def test_published_causal_attention_seed_123():
    torch.manual_seed(123)
    module = CausalAttention(3, 2, context_length=6, dropout=0.0)
    output = module(BATCH)
    published = [
        [-0.4519, 0.2216],
        [-0.5874, 0.0058],
        [-0.6300, -0.0632],
        [-0.5675, -0.0843],
        [-0.5526, -0.0981],
        [-0.5299, -0.1081],
    ]
    assert output.shape == (2, 6, 2)
    assert_published(output[0], published)
    assert_published(output[1], published)


def test_causal_attention_ignores_future_tokens_and_shorter_inputs_fit():
    torch.manual_seed(0)
    module = CausalAttention(3, 4, context_length=10, dropout=0.0)
    changed = BATCH.clone()
    changed[:, 4:] += 1.0
    torch.testing.assert_close(module(changed)[:, :4], module(BATCH)[:, :4])
    torch.testing.assert_close(module(BATCH[:, :3]), module(BATCH)[:, :3])


def test_dropout_on_weights_in_training_only():
    torch.manual_seed(0)
    module = CausalAttention(3, 2, context_length=6, dropout=0.5)
    module.eval()
    first, second = module(BATCH), module(BATCH)
    torch.testing.assert_close(first, second)
    module.train()
    assert not torch.allclose(module(BATCH), first)


def test_mask_is_a_buffer_that_is_not_saved():
    module = CausalAttention(3, 2, context_length=6, dropout=0.0)
    assert "mask" in dict(module.named_buffers())
    assert "mask" not in module.state_dict()


# ---- step 4: multi-head attention (section 3.6) --------------------------------------------


def test_published_multi_head_attention_wrapper_seed_123():
    torch.manual_seed(123)
    module = MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=2)
    published = [
        [-0.4519, 0.2216, 0.4772, 0.1063],
        [-0.5874, 0.0058, 0.5891, 0.3257],
        [-0.6300, -0.0632, 0.6202, 0.3860],
        [-0.5675, -0.0843, 0.5478, 0.3589],
        [-0.5526, -0.0981, 0.5321, 0.3428],
        [-0.5299, -0.1081, 0.5077, 0.3493],
    ]
    output = module(BATCH)
    assert output.shape == (2, 6, 4)
    assert_published(output[0], published)


def test_published_multi_head_attention_seed_123():
    torch.manual_seed(123)
    module = MultiHeadAttention(3, 2, 6, 0.0, num_heads=2)
    published = [
        [0.3190, 0.4858],
        [0.2943, 0.3897],
        [0.2856, 0.3593],
        [0.2693, 0.3873],
        [0.2639, 0.3928],
        [0.2575, 0.4028],
    ]
    output = module(BATCH)
    assert output.shape == (2, 6, 2)
    assert_published(output[0], published)
    assert_published(output[1], published)


def test_multi_head_attention_equals_the_wrapper_with_the_same_weights():
    # one projection split into heads == separate heads, once out_proj is the identity
    torch.manual_seed(1)
    num_heads, head_dim = 3, 2
    wrapper = MultiHeadAttentionWrapper(3, head_dim, 6, 0.0, num_heads=num_heads)
    fused = MultiHeadAttention(3, num_heads * head_dim, 6, 0.0, num_heads=num_heads)
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value"):
            weight = torch.cat([getattr(head, name).weight for head in wrapper.heads])
            getattr(fused, name).weight.copy_(weight)
        fused.out_proj.weight.copy_(torch.eye(num_heads * head_dim))
        fused.out_proj.bias.zero_()
    torch.testing.assert_close(fused(BATCH), wrapper(BATCH))


def test_multi_head_attention_rejects_uneven_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(3, 5, 6, 0.0, num_heads=2)
