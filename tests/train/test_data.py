"""A run's data: the walkthrough's character split, and tokenizer specs."""

from __future__ import annotations

import json

import pytest
import tiktoken

from scratchllm.cli import main
from scratchllm.config import TrainConfig
from scratchllm.corpora import load_corpus
from scratchllm.errors import ScratchLLMError
from scratchllm.train.data import resolve_tokenizer, run_data


def test_character_split_is_the_walkthroughs(tmp_path, shared_data):
    # the walkthrough: split_idx = int(0.9 * len(text)); each side tokenized on its own
    text = (shared_data / "the-verdict.txt").read_text(encoding="utf-8")
    cut = int(0.9 * len(text))
    gpt2 = tiktoken.get_encoding("gpt2")
    config = TrainConfig(corpus=str(shared_data / "the-verdict.txt"), tokenizer="gpt2",
                         split="characters")  # fmt: skip
    data = run_data(config, tmp_path / "data")
    assert data.report.split == "characters"
    assert data.train.tokens.tolist() == gpt2.encode(text[:cut])
    assert data.val.tokens.tolist() == [*gpt2.encode(text[cut:]), gpt2.eot_token]
    again = run_data(config, tmp_path / "data")  # a resumed run reads the folder back
    assert again.tokenizer.fingerprint == data.tokenizer.fingerprint


def test_prepare_command_takes_the_split(tmp_path, shared_data, capsys):
    output = tmp_path / "prepared"
    corpus = str(shared_data / "the-verdict.txt")
    args = ["prepare", "--corpus", corpus, "--tokenizer", "gpt2", "--split", "characters"]
    assert main([*args, "-o", str(output), "--show-windows", "0"]) == 0
    assert json.loads((output / "meta.json").read_text())["split"] == "characters"
    assert "share of the characters" in capsys.readouterr().out


def test_tokenizer_specs(corpus_file):
    corpus = load_corpus(str(corpus_file))
    assert resolve_tokenizer("bpe:280", corpus=corpus).vocab_size == 280
    assert resolve_tokenizer("gpt2", corpus=None).vocab_size == 50257
    with pytest.raises(ScratchLLMError, match="trains a tokenizer on a corpus"):
        resolve_tokenizer("bpe:280", corpus=None)
    with pytest.raises(ScratchLLMError, match="not a number"):
        resolve_tokenizer("bpe:many", corpus=corpus)
