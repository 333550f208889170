"""Fixtures for the training tests: a small synthetic corpus, prepared once, and tiny configs.

The model is 2 layers of width 32 with a 16-token context and a 300-token BPE, so a step takes
a few milliseconds; torch runs on one thread, which keeps the losses reproducible and keeps a
busy shared machine from slowing the tests down.
"""

from __future__ import annotations

import random

import pytest

from scratchllm.config import TrainConfig
from scratchllm.corpora import load_corpus
from scratchllm.data.prepare import prepare
from scratchllm.tokenizer import BPETokenizer

SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the bird", "our teacher"]
VERBS = ["sees", "likes", "finds", "reads", "paints", "follows"]
OBJECTS = ["the red ball", "a long letter", "the garden", "a small boat", "the river"]


def synthetic_text(sentences: int, *, seed: int = 0) -> str:
    """Sentences from a tiny grammar: learnable structure, not memorisable in a few steps."""
    rng = random.Random(seed)
    return " ".join(
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
        for _ in range(sentences)
    )


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "sentences.txt"
    path.write_text(synthetic_text(800), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory, corpus_file):
    """The corpus tokenized once with a 300-token BPE (train ~90%, val ~10%)."""
    corpus = load_corpus(str(corpus_file))
    tokenizer = BPETokenizer.train(corpus, 300)
    directory = tmp_path_factory.mktemp("prepared")
    prepare(corpus, tokenizer, directory, val_fraction=0.1, show_progress=False)
    return directory


TINY_MODEL = {"n_layer": 2, "n_embd": 32, "n_head": 4, "context_length": 16}


def tiny_config(out_dir, data_dir, **changes) -> TrainConfig:
    """A run of a few steps that exercises every part of the loop."""
    settings = dict(
        name="run", out_dir=str(out_dir), data=str(data_dir), model="cpu-tiny",
        model_overrides=dict(TINY_MODEL), batch_size=4, max_steps=8, lr=1e-2, min_lr=1e-3,
        warmup_steps=2, eval_every=4, eval_batches=2, sample_tokens=4, threads=1, seed=7,
    )  # fmt: skip
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.fixture
def make_config(tmp_path, prepared_dir):
    """``make_config(**changes)``: a tiny config writing under this test's ``tmp_path``."""
    return lambda **changes: tiny_config(tmp_path / "runs", prepared_dir, **changes)
