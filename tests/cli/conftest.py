"""Fixtures for the command-line tests: a small story corpus and an untrained checkpoint."""

from __future__ import annotations

import pytest

from scratchllm.cli import main

STORY = (
    "The cat sat on the mat. The dog sat on the log. A bird sang in the tree, and the cat "
    "watched the bird while the dog slept by the fire.\n"
)


def write_story(path):
    path.write_text(STORY * 40, encoding="utf-8")
    return path


@pytest.fixture
def corpus_file(tmp_path):
    return write_story(tmp_path / "story.txt")


@pytest.fixture(scope="module")
def module_corpus_file(tmp_path_factory):
    """The same story, for fixtures that build something once per test module."""
    return write_story(tmp_path_factory.mktemp("corpus") / "story.txt")


@pytest.fixture
def untrained_checkpoint(tmp_path, corpus_file, capsys):
    """A cpu-tiny GPT with a 300-token BPE trained on the story, saved by `model --save`."""
    tokenizer_dir, checkpoint = tmp_path / "tok", tmp_path / "ckpt"
    train = ["train-tokenizer", "--corpus", str(corpus_file), "--vocab-size", "300"]
    assert main([*train, "-o", str(tokenizer_dir)]) == 0
    save = ["model", "--preset", "cpu-tiny", "--save", str(checkpoint)]
    assert main([*save, "--tokenizer", str(tokenizer_dir)]) == 0
    capsys.readouterr()
    return checkpoint
