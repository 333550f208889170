"""Checkpoint folders: round trips, and a clear CheckpointError for every kind of damage."""

from __future__ import annotations

import json

import pytest
import torch

from scratchllm.config import GPTConfig
from scratchllm.errors import CheckpointError
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import BPETokenizer, SimpleTokenizer
from scratchllm.weights.checkpoint import (
    CONFIG_FILE,
    TOKENIZER_DIR,
    WEIGHTS_FILE,
    load_checkpoint,
    save_checkpoint,
)

TEXT = "the quick brown fox jumps over the lazy dog. " * 20


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train(TEXT, 280)


def tiny_model(tokenizer, *, tie: bool, seed: int = 0) -> GPT:
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, context_length=16, n_embd=32, n_head=4, n_layer=2,
        dropout=0.0, tie_weights=tie,
    )  # fmt: skip
    return GPT(config, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_round_trip_gives_the_same_logits(tmp_path, tokenizer, tie):
    model = tiny_model(tokenizer, tie=tie)
    save_checkpoint(tmp_path / "ckpt", model, tokenizer)
    loaded, loaded_tokenizer = load_checkpoint(tmp_path / "ckpt")
    ids = torch.tensor([tokenizer.encode("the lazy fox")])
    torch.testing.assert_close(loaded(ids), model.eval()(ids), rtol=0, atol=0)
    assert loaded_tokenizer.fingerprint == tokenizer.fingerprint
    assert not loaded.training
    if tie:  # stored once, and still one tensor after loading
        assert loaded.lm_head.weight is loaded.wte.weight
    leftovers = [p.name for p in (tmp_path / "ckpt").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_missing_folder_or_config(tmp_path):
    with pytest.raises(CheckpointError, match="not a scratchllm checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_truncated_weights(tmp_path, tokenizer):
    save_checkpoint(tmp_path, tiny_model(tokenizer, tie=False), tokenizer)
    weights = tmp_path / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path)


def test_weights_that_do_not_match_the_config(tmp_path, tokenizer):
    save_checkpoint(tmp_path, tiny_model(tokenizer, tie=False), tokenizer)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    config["model"]["n_layer"] = 3
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"missing \['h\.2\."):
        load_checkpoint(tmp_path)


def test_unreadable_config(tmp_path, tokenizer):
    save_checkpoint(tmp_path, tiny_model(tokenizer, tie=False), tokenizer)
    (tmp_path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path)


def test_swapped_tokenizer_is_refused(tmp_path, tokenizer):
    save_checkpoint(tmp_path, tiny_model(tokenizer, tie=False), tokenizer)
    SimpleTokenizer.train(TEXT).save(tmp_path / TOKENIZER_DIR)
    with pytest.raises(CheckpointError, match="not the one the model was saved with"):
        load_checkpoint(tmp_path)


def test_tokenizer_larger_than_the_model_vocabulary(tmp_path, tokenizer):
    small = GPT(GPTConfig(vocab_size=100, context_length=8, n_embd=16, n_head=2, n_layer=1))
    with pytest.raises(CheckpointError, match="vocab_size >= 280"):
        save_checkpoint(tmp_path, small, tokenizer)
    assert not (tmp_path / CONFIG_FILE).exists()
