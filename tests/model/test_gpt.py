"""The GPT model: building blocks against torch's ops, init, sizes, and the forward pass."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from scratchllm.config import PRESETS, GPTConfig
from scratchllm.errors import ConfigError, DataLengthError
from scratchllm.model.gpt import (
    GELU,
    GPT,
    MLP,
    Block,
    LayerNorm,
    describe_model,
    gelu_tanh,
    layer_norm,
    num_parameters,
    parameter_shapes,
)

TINY = GPTConfig(vocab_size=97, context_length=32, n_embd=32, n_head=4, n_layer=2, dropout=0.0)


def make_model(config: GPTConfig = TINY, seed: int = 0) -> GPT:
    return GPT(config, generator=torch.Generator().manual_seed(seed)).eval()


# ---- building blocks ---------------------------------------------------------------------


def test_layer_norm_formula_and_module_match_torch():
    torch.manual_seed(0)
    norm = LayerNorm(16, eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(3, 5, 16) * 4 + 2
    expected = F.layer_norm(x, (16,), norm.weight, norm.bias, eps=1e-5)
    formula = layer_norm(x, norm.weight, norm.bias, eps=1e-5)
    torch.testing.assert_close(formula, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(norm(x), formula, atol=1e-6, rtol=0)


def test_layer_norm_output_has_zero_mean_unit_variance_at_init():
    out = LayerNorm(8)(torch.randn(4, 8) * 10 + 3)
    torch.testing.assert_close(out.mean(dim=-1), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.var(dim=-1, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    biased = torch.tensor([[1.0, 2.0, 3.0]])  # by hand: mean 2, variance 2/3 (biased)
    expected = torch.tensor([[-1.0, 0.0, 1.0]]) / math.sqrt(2 / 3 + 1e-5)
    torch.testing.assert_close(LayerNorm(3)(biased), expected)


def test_gelu_is_torchs_tanh_form_not_the_erf_form():
    x = torch.linspace(-6, 6, 2001)
    torch.testing.assert_close(gelu_tanh(x), F.gelu(x, approximate="tanh"), atol=1e-6, rtol=0)
    torch.testing.assert_close(GELU()(x), gelu_tanh(x), atol=1e-6, rtol=0)
    assert (gelu_tanh(x) - F.gelu(x)).abs().max() > 1e-4  # the erf GELU would drift


def test_mlp_widens_four_times_and_keeps_the_shape():
    mlp = MLP(8)
    assert mlp.c_fc.weight.shape == (32, 8) and mlp.c_proj.weight.shape == (8, 32)
    assert mlp(torch.randn(2, 3, 8)).shape == (2, 3, 8)


def test_block_is_pre_layer_norm_with_residuals():
    torch.manual_seed(0)
    block = Block(TINY)
    x = torch.randn(2, 5, 32)
    after_attention = x + block.attn(block.ln_1(x))
    expected = after_attention + block.mlp(block.ln_2(after_attention))
    torch.testing.assert_close(block(x), expected)


# ---- initialisation -------------------------------------------------------------------------


def test_same_seed_same_model_different_seed_different_model():
    first, again, other = make_model(seed=1), make_model(seed=1), make_model(seed=2)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    assert not torch.equal(first.wte.weight, other.wte.weight)
    assert not torch.equal(first.h[1].mlp.c_fc.weight, other.h[1].mlp.c_fc.weight)


def test_a_given_generator_leaves_the_global_random_state_alone():
    state = torch.random.get_rng_state()
    make_model(seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_without_a_generator_the_global_seed_decides():
    torch.manual_seed(5)
    first = GPT(TINY)
    torch.manual_seed(5)
    assert torch.equal(GPT(TINY).wte.weight, first.wte.weight)


def test_gpt2_init_statistics():
    config = GPTConfig(vocab_size=500, context_length=64, n_embd=64, n_head=4, n_layer=8)
    model = make_model(config)
    residual_std = 0.02 / math.sqrt(2 * config.n_layer)
    for name, parameter in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert parameter.std().item() == pytest.approx(residual_std, rel=0.1), name
        elif parameter.dim() == 2:
            assert parameter.std().item() == pytest.approx(0.02, rel=0.1), name
        elif "ln" in name and name.endswith("weight"):
            assert bool((parameter == 1).all()), name
        else:
            assert bool((parameter == 0).all()), name  # biases and LayerNorm shifts


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_torch_default_init_draws_what_the_walkthroughs_torch_layers_draw(qkv_bias):
    # the oracle: torch's own layers, built in the walkthrough's GPTModel order from one seed
    config = TINY.replace(init="torch-default", qkv_bias=qkv_bias)
    C, V = config.n_embd, config.vocab_size
    torch.manual_seed(11)
    expected = {"wte.weight": nn.Embedding(V, C).weight, "wpe.weight": nn.Embedding(32, C).weight}
    for index in range(config.n_layer):
        qkv = [nn.Linear(C, C, bias=qkv_bias) for _ in range(3)]  # W_query, W_key, W_value
        out_proj, fc, proj = nn.Linear(C, C), nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        prefix = f"h.{index}."
        expected[prefix + "attn.c_attn.weight"] = torch.cat([layer.weight for layer in qkv])
        if qkv_bias:
            expected[prefix + "attn.c_attn.bias"] = torch.cat([layer.bias for layer in qkv])
        for name, layer in (("attn.c_proj", out_proj), ("mlp.c_fc", fc), ("mlp.c_proj", proj)):
            expected[prefix + name + ".weight"] = layer.weight
            expected[prefix + name + ".bias"] = layer.bias
    expected["lm_head.weight"] = nn.Linear(C, V, bias=False).weight

    ours = GPT(config, generator=torch.Generator().manual_seed(11)).state_dict()
    for name, tensor in expected.items():
        assert torch.equal(ours[name], tensor), name
    for name in set(ours) - set(expected):  # LayerNorms: scale 1, shift 0
        assert bool((ours[name] == (1.0 if name.endswith("weight") else 0.0)).all()), name


def test_unknown_init_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="init must be one of"):
        GPTConfig(init="xavier")


def test_tied_head_shares_wte_and_trains_as_one():
    model = make_model(TINY.replace(tie_weights=True))
    assert model.lm_head.weight is model.wte.weight
    model(torch.randint(0, 97, (2, 8))).sum().backward()
    assert model.wte.weight.grad is not None
    assert sum(p.numel() for p in model.parameters()) == num_parameters(model.config)


# ---- sizes ----------------------------------------------------------------------------------


def test_published_gpt2_small_counts_and_size():
    # the walkthrough's GPT_CONFIG_124M: "Total number of parameters: 163,009,536",
    # "considering weight tying: 124,412,160", "Total size of the model: 621.83 MB" (2**20 bytes)
    config = GPTConfig.from_name("gpt2-small")
    assert num_parameters(config, tied=False) == 163_009_536
    assert num_parameters(config, tied=True) == 124_412_160
    description = describe_model("gpt2-small")
    assert "163,009,536" in description and "124,412,160" in description
    assert "fp32 621.83 MiB" in description and "bf16 310.92 MiB" in description


@pytest.mark.parametrize(
    ("name", "untied", "tied_walkthrough", "tied_openai"),
    [
        # untied / tied: the walkthrough's exercise 4.2 (qkv_bias=False); the last column is
        # the size of OpenAI's checkpoints as Hugging Face reports it (qkv_bias=True, tied)
        ("gpt2-small", 163_009_536, 124_412_160, 124_439_808),
        ("gpt2-medium", 406_212_608, 354_749_440, 354_823_168),
        ("gpt2-large", 838_220_800, 773_891_840, 774_030_080),
        ("gpt2-xl", 1_637_792_000, 1_557_380_800, 1_557_611_200),
    ],
)
def test_published_preset_sizes(name, untied, tied_walkthrough, tied_openai):
    config = GPTConfig.from_name(name)
    assert num_parameters(config, tied=False) == untied
    assert num_parameters(config, tied=True) == tied_walkthrough
    assert num_parameters(config.replace(qkv_bias=True), tied=True) == tied_openai
    assert tied_openai - tied_walkthrough == 3 * config.n_embd * config.n_layer


def test_describe_model_published_fp32_sizes_of_the_larger_presets():
    # the walkthrough's exercise 4.2 prints these "Total size of the model" values
    for name, size in [("gpt2-medium", "1549.58"), ("gpt2-large", "3197.56")]:
        assert f"fp32 {size} MiB" in describe_model(name)
    assert "custom:" in describe_model(TINY)
    with pytest.raises(ConfigError, match="unknown model preset"):
        describe_model("gpt5")


@pytest.mark.parametrize("qkv_bias", [False, True])
@pytest.mark.parametrize("tie_weights", [False, True])
def test_pure_sizes_match_the_built_module(qkv_bias, tie_weights):
    config = TINY.replace(qkv_bias=qkv_bias, tie_weights=tie_weights)
    model = make_model(config)
    state = model.state_dict()
    assert {name: tuple(t.shape) for name, t in state.items()} == parameter_shapes(config)
    assert sum(p.numel() for p in model.parameters()) == num_parameters(config)


def test_cpu_presets_build_and_match_their_count():
    for name in ("cpu-tiny", "cpu-small"):
        config = PRESETS[name].replace(vocab_size=256)
        model = GPT(config, generator=torch.Generator().manual_seed(0))
        assert sum(p.numel() for p in model.parameters()) == num_parameters(config)


def test_gpt2_parameter_names():
    names = set(make_model().state_dict())
    for expected in [
        "wte.weight",
        "wpe.weight",
        "h.0.ln_1.weight",
        "h.0.attn.c_attn.weight",
        "h.0.attn.c_proj.bias",
        "h.1.ln_2.bias",
        "h.1.mlp.c_fc.weight",
        "h.1.mlp.c_proj.weight",
        "ln_f.weight",
        "lm_head.weight",
    ]:
        assert expected in names
    assert "lm_head.bias" not in names


# ---- forward ----------------------------------------------------------------------------------


def test_forward_shape_and_dtype():
    logits = make_model()(torch.randint(0, 97, (3, 11)))
    assert logits.shape == (3, 11, 97) and logits.dtype == torch.float32


def test_positions_past_the_context_are_a_clear_error():
    model = make_model()
    with pytest.raises(DataLengthError, match="context length 32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(DataLengthError, match="context length 32"):
        model(torch.zeros(1, 4, dtype=torch.long), start_position=30)


def test_kv_caches_must_match_the_layers():
    with pytest.raises(ConfigError, match="2 layers"):
        make_model()(torch.zeros(1, 4, dtype=torch.long), kv_caches=[object()])


_SHARED_MODEL = make_model(seed=11)  # built once: Hypothesis calls the test many times


@settings(max_examples=15, deadline=None)
@given(length=st.integers(2, 16), data=st.data())
def test_changing_token_t_leaves_earlier_logits_unchanged(length, data):
    model = _SHARED_MODEL
    generator = torch.Generator().manual_seed(length)
    token_ids = torch.randint(0, 97, (1, length), generator=generator)
    position = data.draw(st.integers(0, length - 1))
    changed = token_ids.clone()
    changed[0, position] = (changed[0, position] + 1) % 97
    with torch.no_grad():
        before, after = model(token_ids), model(changed)
    torch.testing.assert_close(after[:, :position], before[:, :position], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, position], before[:, position])


def test_dropout_active_only_in_training():
    model = GPT(TINY.replace(dropout=0.3), generator=torch.Generator().manual_seed(0))
    token_ids = torch.randint(0, 97, (2, 8))
    model.eval()
    torch.testing.assert_close(model(token_ids), model(token_ids))
    model.train()
    assert not torch.allclose(model(token_ids), model(token_ids))


def test_attention_weights_equal_a_hand_computation_of_layer_0():
    model = make_model(seed=4)
    token_ids = torch.randint(0, 97, (2, 7))
    weights = model.attention_weights(token_ids)
    assert len(weights) == 2 and weights[1].shape == (2, 4, 7, 7)
    with torch.no_grad():
        x = model.h[0].ln_1(model.wte(token_ids) + model.wpe.weight[:7])
        q, k, _ = model.h[0].attn.c_attn(x).split(32, dim=-1)
        q = q.view(2, 7, 4, 8).transpose(1, 2)
        k = k.view(2, 7, 4, 8).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(8)
        scores = scores.masked_fill(torch.ones(7, 7, dtype=torch.bool).triu(1), -torch.inf)
        expected = torch.softmax(scores, dim=-1)
    torch.testing.assert_close(weights[0], expected, atol=1e-6, rtol=0)


def test_a_few_steps_of_adamw_fit_a_fixed_batch():
    model = GPT(TINY, generator=torch.Generator().manual_seed(0))
    token_ids = torch.randint(0, 97, (4, 16), generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        logits = model(token_ids[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), token_ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(97), rel=0.05)  # near-uniform at init
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.skipif(
    importlib.util.find_spec("scratchllm.model.kv_cache") is None, reason="no kv_cache yet"
)
def test_prefill_and_decode_through_real_kv_caches_equal_the_full_pass():
    model = make_model(seed=6)
    token_ids = torch.randint(0, 97, (2, 10))
    with torch.no_grad():
        full = model(token_ids)
        caches = model.make_kv_caches(2)
        pieces = [model(token_ids[:, :6], kv_caches=caches, start_position=0)]
        for position in range(6, 10):
            step = token_ids[:, position : position + 1]
            pieces.append(model(step, kv_caches=caches, start_position=position))
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)


def test_hidden_states_are_hf_last_hidden_state_and_feed_the_head():
    # oracle: transformers' GPT2Model.last_hidden_state is the output of ln_f, as ours is
    transformers = pytest.importorskip("transformers")
    from scratchllm.weights.hf_gpt2 import to_hf_state_dict

    config = GPTConfig(
        vocab_size=97, context_length=24, n_embd=32, n_head=4, n_layer=2, dropout=0.0,
        qkv_bias=True, tie_weights=True,
    )  # fmt: skip
    model = GPT(config, generator=torch.Generator().manual_seed(11)).eval()
    hf_config = transformers.GPT2Config(
        vocab_size=97, n_positions=24, n_embd=32, n_head=4, n_layer=2,
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    hf.load_state_dict(to_hf_state_dict(model.state_dict(), config), strict=True)
    token_ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        hidden = model.hidden_states(token_ids)
        expected = hf.transformer(token_ids).last_hidden_state
        assert hidden.shape == (2, 9, 32)
        torch.testing.assert_close(hidden, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(model.lm_head(hidden), model(token_ids), atol=0, rtol=0)


def test_set_dropout_changes_every_rate_in_place():
    config = GPTConfig(vocab_size=50, context_length=8, n_embd=16, n_head=2, n_layer=2)
    model = GPT(config, generator=torch.Generator().manual_seed(0))
    reference = GPT(config.replace(dropout=0.3), generator=torch.Generator().manual_seed(0))
    assert model.set_dropout(0.3) is model and model.config == reference.config
    ids = torch.randint(0, 50, (2, 8))
    torch.manual_seed(4)
    ours = model.train()(ids)
    torch.manual_seed(4)
    torch.testing.assert_close(ours, reference.train()(ids), rtol=0, atol=0)  # same masks
    with pytest.raises(ConfigError):
        model.set_dropout(1.5)
