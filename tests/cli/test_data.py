"""`corpora`, `train-tokenizer`, `tokenize`, `prepare` end to end, and their one-line errors."""

from __future__ import annotations

import json

import pytest
import tiktoken

from scratchllm.cli import main
from scratchllm.tokenizer import load_tokenizer


def test_corpora_lists_the_named_corpora(capsys):
    assert main(["corpora"]) == 0
    out = capsys.readouterr().out
    for name in ("python-docs", "python-stdlib", "the-verdict"):
        assert name in out
    assert "* python-docs" in out  # the default is marked
    assert "labelled datasets" in out and "  sms-spam " in out
    instructions = out[out.index("instruction datasets") :]
    assert "  instruction-data " in instructions and "  instruction-preference " in instructions


def test_train_tokenizer_then_tokenize_json(tmp_path, corpus_file, capsys):
    output = tmp_path / "tok"
    args = ["train-tokenizer", "--corpus", str(corpus_file), "--vocab-size", "300", "-o", output]
    assert main([str(arg) for arg in args]) == 0
    tokenizer = load_tokenizer(output)
    assert tokenizer.vocab_size == 300
    capsys.readouterr()
    assert main(["tokenize", "--tokenizer", str(output), "--json", "The cat sat."]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ids"] == tokenizer.encode("The cat sat.")
    assert "".join(result["tokens"]) == "The cat sat."
    assert result["tokens_count"] == len(result["ids"])


def test_tokenize_gpt2_matches_tiktoken(shared_data, capsys):
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
    assert main(["tokenize", "--json", text]) == 0
    ids = json.loads(capsys.readouterr().out)["ids"]
    expected = tiktoken.get_encoding("gpt2").encode(text, allowed_special={"<|endoftext|>"})
    assert ids == expected


def test_prepare_writes_token_files_and_shows_windows(tmp_path, corpus_file, capsys):
    output = tmp_path / "prepared"
    args = ["prepare", "--corpus", str(corpus_file), "--tokenizer", "bpe:300", "-o", str(output)]
    assert main([*args, "--max-length", "8"]) == 0
    out = capsys.readouterr().out
    for name in ("train.bin", "val.bin", "meta.json"):
        assert (output / name).is_file()
    assert load_tokenizer(output / "tokenizer").vocab_size == 300
    assert "first 3 training windows" in out
    assert "[2]" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["prepare", "--corpus", "/no/such/corpus.txt"], "corpus"),
        (["tokenize", "--tokenizer", "/no/such/tokenizer", "hi"], "tokenizer"),
        (["tokenize", "--file", "/no/such/file.txt"], "no such file"),
        (["prepare", "--corpus", "python-docs", "--tokenizer", "bpe:many"], "not a number"),
    ],
)
def test_user_mistakes_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err.lower()
    assert "Traceback" not in err
    assert err.count("\n") == 1
