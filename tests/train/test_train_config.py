"""TrainConfig: one dataclass from TOML or flags, validated, and saved as TOML it reads back."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchllm.config import TrainConfig
from scratchllm.errors import ConfigError
from scratchllm.model.gpt import num_parameters
from scratchllm.train.batches import total_steps

VERDICT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "the-verdict-gpt2-small.toml"


def test_toml_file_with_a_model_table(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'corpus = "notes.txt"\nlr = 1\nepochs = 3\n\n[model]\npreset = "cpu-tiny"\nn_layer = 3\n'
    )
    config = TrainConfig.from_toml(path)
    assert config.corpus == "notes.txt" and config.epochs == 3.0
    assert config.lr == 1.0 and isinstance(config.lr, float)  # TOML's 1 means 1.0 here
    assert config.model == "cpu-tiny" and config.model_overrides == {"n_layer": 3}
    assert config.model_config(vocab_size=300).n_layer == 3


@given(
    prompt=st.text(max_size=30),
    lr=st.floats(1e-6, 1.0),
    steps=st.integers(1, 10**6),
    compile=st.booleans(),
    dropout=st.floats(0.0, 0.9),
)
def test_to_toml_reads_back_equal(prompt, lr, steps, compile, dropout):
    config = TrainConfig(
        sample_prompt=prompt, lr=lr, min_lr=lr / 2, max_steps=steps, compile=compile,
        model_overrides={"dropout": dropout, "qkv_bias": True},
    )  # fmt: skip
    assert TrainConfig.from_dict(tomllib.loads(config.to_toml())) == config


@pytest.mark.parametrize(
    "text, message",
    [
        ("lr = ", "not valid TOML"),
        ("learning_rate = 0.1", "unknown training option"),
        ("batch_size = 2.5", "batch_size must be a int"),
        ("compile = 1", "compile must be a bool"),
        ("schedule = 'linear'", "schedule must be one of"),
        ("max_steps = 0", "set max_steps or epochs"),
        ("[model]\npreset = 'gpt5'", "unknown model preset"),
        ("[model]\nn_head = 5", "divisible by n_head"),
        ("min_lr = 1.0", "min_lr must be between 0 and lr"),
    ],
)
def test_mistakes_name_the_file_and_the_option(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        TrainConfig.from_toml(path)
    assert str(path) in str(error.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="no config file"):
        TrainConfig.from_toml("/no/such/run.toml")


def test_vocab_size_comes_from_the_tokenizer_unless_padded_above_it():
    assert TrainConfig().model_config(vocab_size=4096).vocab_size == 4096
    padded = TrainConfig(model_overrides={"vocab_size": 4160})
    assert padded.model_config(vocab_size=4096).vocab_size == 4160
    with pytest.raises(ConfigError, match="smaller than the tokenizer"):
        padded.model_config(vocab_size=5000)


def test_walkthrough_config_is_the_published_run():
    config = TrainConfig.from_toml(VERDICT_CONFIG)
    assert (config.corpus, config.tokenizer, config.split) == ("the-verdict", "gpt2", "characters")
    assert (config.batch_size, config.lr, config.weight_decay) == (2, 4e-4, 0.1)
    assert (config.warmup_steps, config.grad_clip, config.schedule) == (0, 0.0, "constant")
    assert (config.beta1, config.beta2, config.epochs) == (0.9, 0.999, 10.0)
    model = config.model_config(vocab_size=50257)
    assert (model.context_length, model.dropout, model.qkv_bias) == (256, 0.1, False)
    # gpt2-small's 163,009,536 less the 768 positions 256..1023 it no longer needs
    assert num_parameters(model) == 163_009_536 - 768 * 768
    # 18 windows of 256 in the 4,612 train tokens, batch 2 -> 9 steps per epoch
    assert total_steps(config, batches_per_epoch=9, accumulation=1) == 90
