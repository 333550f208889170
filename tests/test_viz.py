"""Attention heatmaps: a real PNG of a sane size, and clear errors."""

from __future__ import annotations

import struct

import pytest
import torch

from scratchllm.config import GPTConfig
from scratchllm.errors import ConfigError
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import SimpleTokenizer
from scratchllm.viz import attention_heatmap, plot_attention

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROMPT = "Your journey starts with one step"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"  # the first chunk holds width and height
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def tokenizer() -> SimpleTokenizer:
    return SimpleTokenizer.train(PROMPT)


@pytest.fixture(scope="module")
def model(tokenizer) -> GPT:
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, context_length=16, n_embd=32, n_head=4, n_layer=2
    )
    return GPT(config, generator=torch.Generator().manual_seed(0))


def test_plot_attention_writes_a_png(tmp_path):
    future = torch.ones(4, 4, dtype=torch.bool).triu(1)
    weights = torch.softmax(torch.randn(4, 4).masked_fill(future, -torch.inf), dim=-1)
    path = plot_attention(weights, ["a", " b", "\n", "d"], tmp_path / "sub" / "w.png", title="t")
    width, height = png_size(path)
    assert 300 <= width <= 2000 and 300 <= height <= 2000
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_heatmap_from_a_model_and_prompt(tmp_path, tokenizer, model):
    model.train()
    output = attention_heatmap(
        PROMPT, tokenizer=tokenizer, model=model, layer=1, head=3, output=tmp_path / "heat.png"
    )
    width, height = png_size(output)
    assert width > height > 300  # a square plot plus the colour bar
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize(("layer", "head", "message"), [(2, 0, "layer 2"), (0, 4, "head 4")])
def test_layer_and_head_out_of_range(tmp_path, tokenizer, model, layer, head, message):
    with pytest.raises(ConfigError, match=message):
        attention_heatmap(
            PROMPT, tokenizer=tokenizer, model=model, layer=layer, head=head, output=tmp_path / "x"
        )
    assert not (tmp_path / "x").exists()


def test_bad_inputs_are_config_errors(tmp_path, tokenizer, model):
    with pytest.raises(ConfigError, match="empty"):
        attention_heatmap("", tokenizer=tokenizer, model=model, layer=0, head=0, output=tmp_path)
    with pytest.raises(ConfigError, match="square"):
        plot_attention(torch.ones(2, 3), ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ConfigError, match="3 token labels"):
        plot_attention(torch.ones(2, 2), ["a", "b", "c"], tmp_path / "x.png")
