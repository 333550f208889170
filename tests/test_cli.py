"""The command line, end to end: each subcommand's output and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tiktoken

from scratchllm.cli import main
from scratchllm.tokenizer import load_tokenizer

STORY = (
    "The cat sat on the mat. The dog sat on the log. A bird sang in the tree, and the cat "
    "watched the bird while the dog slept by the fire.\n"
)


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text(STORY * 40, encoding="utf-8")
    return path


def test_corpora_lists_the_named_corpora(capsys):
    assert main(["corpora"]) == 0
    out = capsys.readouterr().out
    for name in ("python-docs", "python-stdlib", "the-verdict"):
        assert name in out
    assert "* python-docs" in out  # the default is marked


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


def test_python_dash_m_and_help_teach(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "scratchllm", "prepare", "--help"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "--tokenizer" in help_text and "bpe:N" in help_text
    assert "(default python-docs)" in help_text


def test_model_prints_the_published_parameter_counts(capsys):
    assert main(["model", "--preset", "gpt2-small"]) == 0
    out = capsys.readouterr().out
    assert "163,009,536" in out and "124,412,160" in out
    assert "bf16" in out and "fp32" in out


@pytest.fixture
def untrained_checkpoint(tmp_path, corpus_file, capsys):
    tokenizer_dir, checkpoint = tmp_path / "tok", tmp_path / "ckpt"
    train = ["train-tokenizer", "--corpus", str(corpus_file), "--vocab-size", "300"]
    assert main([*train, "-o", str(tokenizer_dir)]) == 0
    save = ["model", "--preset", "cpu-tiny", "--save", str(checkpoint)]
    assert main([*save, "--tokenizer", str(tokenizer_dir)]) == 0
    capsys.readouterr()
    return checkpoint


def test_generate_greedy_is_deterministic_and_streams_the_same(untrained_checkpoint, capsys):
    args = ["generate", "--checkpoint", str(untrained_checkpoint), "--prompt", "The cat"]
    assert main([*args, "--max-new-tokens", "8"]) == 0
    first = capsys.readouterr().out
    assert main([*args, "--max-new-tokens", "8", "--stream"]) == 0
    streamed = capsys.readouterr().out
    assert first == streamed
    assert first.startswith("The cat") and len(first) > len("The cat\n")
    sampled = [*args, "--max-new-tokens", "8", "--temperature", "1", "--top-k", "20"]
    assert main([*sampled, "--seed", "3"]) == 0
    assert main([*sampled, "--seed", "3"]) == 0
    one, two = capsys.readouterr().out.splitlines()
    assert one == two


def test_attention_writes_a_heatmap(untrained_checkpoint, tmp_path, capsys):
    output = tmp_path / "heat.png"
    args = ["attention", "--checkpoint", str(untrained_checkpoint), "--prompt", "The cat sat"]
    assert main([*args, "--layer", "1", "--head", "3", "-o", str(output)]) == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*args, "--layer", "2", "-o", str(output)]) == 2
    assert "layer 2 is out of range" in capsys.readouterr().err


def test_generate_without_a_checkpoint_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "none"), "--prompt", "x"]) == 2
    assert "not a scratchllm checkpoint" in capsys.readouterr().err
