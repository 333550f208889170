"""GPTConfig: defaults, presets, validation, round trip."""

from __future__ import annotations

import json

import pytest

from scratchllm.config import PRESETS, GPTConfig
from scratchllm.errors import ConfigError


def test_defaults_are_the_walkthroughs_gpt_config_124m():
    config = GPTConfig()
    walkthrough = {
        "vocab_size": 50257,
        "context_length": 1024,
        "n_embd": 768,  # emb_dim
        "n_head": 12,  # n_heads
        "n_layer": 12,  # n_layers
        "dropout": 0.1,  # drop_rate
        "qkv_bias": False,
    }
    assert {name: getattr(config, name) for name in walkthrough} == walkthrough
    assert config.head_dim == 64
    assert GPTConfig.from_name("gpt2-small") == config


@pytest.mark.parametrize(
    ("name", "width", "heads", "layers"),
    [
        ("gpt2-small", 768, 12, 12),
        ("gpt2-medium", 1024, 16, 24),
        ("gpt2-large", 1280, 20, 36),
        ("gpt2-xl", 1600, 25, 48),
    ],
)
def test_gpt2_presets_have_the_published_shapes(name, width, heads, layers):
    config = GPTConfig.from_name(name)
    assert (config.n_embd, config.n_head, config.n_layer) == (width, heads, layers)
    assert config.head_dim == 64  # every GPT-2 size uses 64-dim heads
    assert config.context_length == 1024


def test_cpu_presets_are_small():
    tiny, small = GPTConfig.from_name("cpu-tiny"), GPTConfig.from_name("cpu-small")
    assert (tiny.n_layer, tiny.n_embd, tiny.n_head, tiny.context_length) == (2, 64, 4, 128)
    assert small.n_layer <= 6 and small.n_embd <= 384 and small.context_length == 256


def test_overrides_replace_fields_and_revalidate():
    config = GPTConfig.from_name("gpt2-small", qkv_bias=True, tie_weights=True, vocab_size=100)
    assert (config.qkv_bias, config.tie_weights, config.vocab_size) == (True, True, 100)
    assert PRESETS["gpt2-small"].vocab_size == 50257  # presets are not mutated
    with pytest.raises(ConfigError, match="divisible"):
        GPTConfig.from_name("gpt2-small", n_head=7)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="gpt2-medium") as error:
        GPTConfig.from_name("gpt3")
    assert "'gpt3'" in str(error.value) and "cpu-tiny" in str(error.value)


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match="emb_dim"):
        GPTConfig.from_name("cpu-tiny", emb_dim=32)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_layer", 0, "n_layer must be a positive integer"),
        ("vocab_size", 10.5, "vocab_size must be a positive integer"),
        ("context_length", True, "context_length must be a positive integer"),
        ("dropout", 1.0, r"dropout must be in \[0, 1\)"),
        ("dropout", -0.1, "dropout"),
        ("layer_norm_eps", 0.0, "layer_norm_eps must be positive"),
        ("qkv_bias", 1, "qkv_bias must be true or false"),
    ],
)
def test_invalid_values_raise_config_error(field, value, message):
    with pytest.raises(ConfigError, match=message):
        GPTConfig(**{field: value})


def test_config_error_is_a_value_error_and_config_is_frozen():
    with pytest.raises(ValueError):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(AttributeError):
        GPTConfig().n_layer = 3  # type: ignore[misc]


def test_dict_round_trip_through_json():
    config = GPTConfig.from_name("cpu-small", vocab_size=4096, tie_weights=True)
    assert GPTConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="bogus"):
        GPTConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_config_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, scratchllm.config; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
