"""Evaluation: the unigram baseline by hand, and windowed scoring against one long pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scratchllm.config import GPTConfig
from scratchllm.errors import ConfigError, DataLengthError
from scratchllm.evaluate import (
    encoded_bytes,
    evaluate_text,
    evaluate_tokens,
    text_token_stream,
    unigram_cross_entropy,
)
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import BPETokenizer

TEXT = "the quick brown fox jumps over the lazy dog; the dog sleeps. " * 6


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train(TEXT, 280)


def model_with_context(tokenizer, context_length: int) -> GPT:
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, context_length=context_length, n_embd=32, n_head=4,
        n_layer=2, dropout=0.0,
    )  # fmt: skip
    return GPT(config, generator=torch.Generator().manual_seed(0)).eval()


def test_unigram_baseline_by_hand():
    # uniform train counts and add-one smoothing: every token has probability 1/V
    assert unigram_cross_entropy(np.arange(8), np.array([3, 3, 5]), vocab_size=8) == (
        pytest.approx(math.log(8))
    )
    # train [1, 1, 1], V = 4: p(1) = 4/7, p(unseen) = 1/7
    value = unigram_cross_entropy(np.array([1, 1, 1]), np.array([1, 2]), vocab_size=4)
    assert value == pytest.approx(-(math.log(4 / 7) + math.log(1 / 7)) / 2)
    with pytest.raises(DataLengthError):
        unigram_cross_entropy(np.array([1]), np.array([], dtype=np.int64), vocab_size=4)


def test_one_window_equals_a_direct_pass(tokenizer):
    stream, byte_count = text_token_stream(tokenizer, [TEXT[:120]])
    assert stream[0] == tokenizer.eot_id and byte_count == 120
    model = model_with_context(tokenizer, 128)
    assert len(stream) <= 128  # the whole text in one window
    report = evaluate_text(model, tokenizer, [TEXT[:120]])
    ids = torch.tensor([stream])
    with torch.no_grad():
        expected = F.cross_entropy(model(ids[:, :-1])[0], ids[0, 1:]).item()
    assert report.tokens == len(stream) - 1
    assert report.loss == pytest.approx(expected, rel=1e-6)
    assert report.perplexity == pytest.approx(math.exp(expected), rel=1e-6)
    assert report.bits_per_byte == pytest.approx(expected * report.tokens / math.log(2) / 120)


def test_windows_and_the_rest_score_every_token_once(tokenizer):
    model = model_with_context(tokenizer, 16)
    stream, _ = text_token_stream(tokenizer, [TEXT, "a second document"])
    assert (len(stream) - 1) % 16 != 0  # there is a shorter last window
    report = evaluate_text(model, tokenizer, [TEXT, "a second document"], batch_size=3)
    total = 0.0  # the reference: one window at a time
    with torch.no_grad():
        for start in range(0, len(stream) - 1, 16):
            chunk = torch.tensor([stream[start : start + 17]])
            logits = model(chunk[:, :-1])
            total += F.cross_entropy(logits[0], chunk[0, 1:], reduction="sum").item()
    assert report.tokens == len(stream) - 1
    assert report.loss == pytest.approx(total / report.tokens, rel=1e-6)


@pytest.mark.parametrize("batch_size", [0, -2])
def test_a_batch_size_below_one_is_an_error(tokenizer, batch_size):
    # a negative step once skipped every full window and scored only the last, short one
    model = model_with_context(tokenizer, 16)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        evaluate_text(model, tokenizer, [TEXT], batch_size=batch_size)


def test_a_token_file_scores_as_its_text_and_shows_progress(tokenizer, capsys):
    model = model_with_context(tokenizer, 16)
    texts = [TEXT, "a second document"]
    stream, byte_count = text_token_stream(tokenizer, texts)
    assert encoded_bytes(tokenizer, stream) == byte_count  # separators are not text
    from_text = evaluate_text(model, tokenizer, texts, batch_size=2)
    from_tokens = evaluate_tokens(
        model, np.array(stream, dtype=np.uint16), byte_count=byte_count, show_progress=True
    )
    assert from_tokens.loss == pytest.approx(from_text.loss, rel=1e-6)
    assert from_tokens.bits_per_byte == pytest.approx(from_text.bits_per_byte, rel=1e-6)
    assert "scoring" in capsys.readouterr().err  # the progress bar
