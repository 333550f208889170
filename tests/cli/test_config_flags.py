"""Flags made from config dataclasses: one per field, the field's help, its default shown."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from scratchllm.cli import build_parser
from scratchllm.cli.config_flags import add_config_flags, given_fields
from scratchllm.config import GPTConfig, SamplingConfig, TrainConfig, Word2VecConfig


def parser_for(config_class, **settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="test")
    add_config_flags(parser, config_class, **settings)
    return parser


def help_of(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_help().split())  # argparse wraps lines


@pytest.mark.parametrize("config_class", [GPTConfig, SamplingConfig, TrainConfig, Word2VecConfig])
def test_every_field_carries_its_help(config_class):
    for field in dataclasses.fields(config_class):
        assert field.metadata.get("help"), f"{config_class.__name__}.{field.name} has no help"


def test_gpt_config_fields_are_unchanged():
    # checkpoints store these names and rely on these defaults for missing keys
    defaults = {field.name: field.default for field in dataclasses.fields(GPTConfig)}
    assert defaults == {
        "vocab_size": 50257, "context_length": 1024, "n_embd": 768, "n_head": 12,
        "n_layer": 12, "dropout": 0.1, "qkv_bias": False, "tie_weights": False,
        "layer_norm_eps": 1e-5, "init": "gpt2",
    }  # fmt: skip
    assert list(defaults) == list(GPTConfig().to_dict())


def test_only_the_flags_given_reach_the_config():
    parser = parser_for(SamplingConfig)
    args = parser.parse_args(["--top-k", "5", "--stop", "\n\n", "--stop", "User:"])
    given = given_fields(args, SamplingConfig)
    assert given == {"top_k": 5, "stop_strings": ["\n\n", "User:"]}
    config = SamplingConfig(**given)
    assert config.stop_strings == ("\n\n", "User:") and config.temperature == 0.0
    assert given_fields(parser.parse_args([]), SamplingConfig) == {}


def test_help_is_the_fields_with_defaults_from_the_fields():
    help_text = help_of(parser_for(SamplingConfig))
    temperature = SamplingConfig.__dataclass_fields__["temperature"].metadata["help"]
    assert f"--temperature X {temperature} (default 0.0)" in help_text
    assert "--top-k K" in help_text and "--stop TEXT" in help_text
    # None is not a value a user can type: such defaults are described in the help instead
    assert "(default None)" not in help_text


def test_bools_choices_and_prefixes():
    parser = parser_for(GPTConfig, dest_prefix="override_", show_defaults=False)
    args = parser.parse_args(["--no-qkv-bias", "--init", "torch-default", "--n-layer", "3"])
    assert given_fields(args, GPTConfig, dest_prefix="override_") == {
        "qkv_bias": False, "init": "torch-default", "n_layer": 3,
    }  # fmt: skip
    with pytest.raises(SystemExit):
        parser.parse_args(["--init", "xavier"])
    assert "(default" not in help_of(parser)


def test_literal_fields_become_choices():
    parser = parser_for(Word2VecConfig)
    args = parser.parse_args(["--architecture", "cbow", "--no-lowercase", "--sample", "0"])
    config = Word2VecConfig(**given_fields(args, Word2VecConfig))
    assert (config.architecture, config.lowercase, config.sample) == ("cbow", False, 0.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["--architecture", "glove"])


def test_train_help_shows_each_model_field_help_once(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(GPTConfig):
        if field.name != "vocab_size":  # the tokenizer's
            assert help_text.count(" ".join(field.metadata["help"].split())) == 1


def test_cbow_stays_a_shorthand():
    args = build_parser().parse_args(["word2vec", "train", "--cbow", "-o", "vectors"])
    assert given_fields(args, Word2VecConfig) == {"architecture": "cbow"}


def test_prepare_takes_a_training_runs_split_flags(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["prepare", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    val_fraction = TrainConfig.__dataclass_fields__["val_fraction"].metadata["help"]
    assert f"--val-fraction X {val_fraction} (default 0.1)" in help_text
    args = build_parser().parse_args(["prepare", "--split", "characters"])
    assert given_fields(args, TrainConfig, dest_prefix="run_") == {"split": "characters"}
