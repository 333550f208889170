"""Attention heatmaps: a real image of a sane size in the format asked for, and clear errors."""

from __future__ import annotations

import struct

import pytest
import torch

from scratchllm.cli.options import IMAGE_OUTPUT_HELP
from scratchllm.config import GPTConfig
from scratchllm.errors import ConfigError
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import SimpleTokenizer
from scratchllm.viz import (
    DPI,
    IMAGE_FORMATS,
    MAX_HEATMAP_INCHES,
    MAX_TICK_LABELS,
    attention_heatmap,
    plot_attention,
    tick_step,
)

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


def causal_weights(count: int, seed: int = 0) -> torch.Tensor:
    future = torch.ones(count, count, dtype=torch.bool).triu(1)
    scores = torch.randn(count, count, generator=torch.Generator().manual_seed(seed))
    return torch.softmax(scores.masked_fill(future, -torch.inf), dim=-1)


def test_a_long_prompt_gives_a_bounded_image(tmp_path):
    # 120 tokens once made a 6,780 px square; the side now stops at 12 inches (+ colour bar)
    tokens = [f" t{index}" for index in range(120)]
    width, height = png_size(plot_attention(causal_weights(120), tokens, tmp_path / "long.png"))
    assert width <= (MAX_HEATMAP_INCHES + 1) * DPI and height <= MAX_HEATMAP_INCHES * DPI
    assert height >= 0.9 * MAX_HEATMAP_INCHES * DPI
    assert MAX_TICK_LABELS == 23 and tick_step(120, MAX_TICK_LABELS) == 6


@pytest.mark.parametrize(
    "name, magic",
    [("w.png", PNG_SIGNATURE), ("w.JPG", b"\xff\xd8\xff"), ("w.jpeg", b"\xff\xd8\xff"),
     ("w.svg", b"<?xml"), ("w.pdf", b"%PDF-")],
)  # fmt: skip
def test_the_suffix_names_the_format(tmp_path, name, magic):
    path = plot_attention(causal_weights(5), list("abcde"), tmp_path / name)
    assert path.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["w.gif", "w", "w.png.bak"])
def test_an_unsupported_suffix_is_a_config_error(tmp_path, name):
    with pytest.raises(ConfigError, match="end the name with .png, .jpg, .jpeg, .svg, .pdf"):
        plot_attention(causal_weights(3), list("abc"), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_help_names_the_formats_viz_writes():
    # the CLI's help is torch-free, so it cannot import viz.IMAGE_FORMATS
    named = {suffix for suffix in IMAGE_FORMATS if f"{suffix}," in f"{IMAGE_OUTPUT_HELP},"}
    named |= {suffix for suffix in IMAGE_FORMATS if f"{suffix} " in IMAGE_OUTPUT_HELP}
    assert named == set(IMAGE_FORMATS) - {".jpeg"}  # .jpeg: another name for .jpg
