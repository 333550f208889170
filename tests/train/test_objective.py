"""The run machinery serves any objective: a toy classifier brings only its data, model,
batches, loss and metrics, and gets checkpoints (with its head), metrics and exact resume."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scratchllm.config import GPTConfig, HeadConfig, RunOptions
from scratchllm.model.gpt import GPT
from scratchllm.model.heads import ClassificationHead
from scratchllm.tokenizer import BPETokenizer
from scratchllm.train.objective import CheckpointParts, Objective, RunContext
from scratchllm.train.run import run_training
from scratchllm.weights.checkpoint import read_checkpoint

ANIMALS = ["the cat", "a dog", "the bird"]
PEOPLE = ["the old man", "my sister", "our teacher"]
REST = ["sees the red ball.", "likes a long letter.", "finds the garden.", "reads the river."]


def examples(count: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [
        (f"{rng.choice(subjects)} {rng.choice(REST)}", label)
        for label, subjects in [(0, PEOPLE), (1, ANIMALS)] * (count // 2)
    ]


class Classifier(nn.Module):
    def __init__(self, gpt: GPT, head: ClassificationHead) -> None:
        super().__init__()
        self.gpt, self.head = gpt, head

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head.classify(self.gpt.hidden_states(ids), lengths)


class ToyClassification(Objective):
    """Is the sentence's subject an animal? Texts padded with <|endoftext|>."""

    head_config = HeadConfig(num_classes=2, labels=("person", "animal"), position="last-token")

    def prepare(self, context: RunContext) -> None:
        texts = [text for text, _ in examples(200, seed=0)]
        self.tokenizer = BPETokenizer.train(" ".join(texts), 290)
        self.train_data = self._encode(examples(96, seed=1))
        self.val_data = self._encode(examples(32, seed=2))

    def _encode(self, pairs):
        ids = [self.tokenizer.encode(text) for text, _ in pairs]
        width = max(len(row) for row in ids)
        padded = [row + [self.tokenizer.eot_id] * (width - len(row)) for row in ids]
        lengths = [len(row) for row in ids]
        labels = [label for _, label in pairs]
        return torch.tensor(padded), torch.tensor(lengths), torch.tensor(labels)

    num_examples = property(lambda self: len(self.train_data[0]))
    tokens_per_example = property(lambda self: self.train_data[0].shape[1])
    model_config = property(lambda self: self.gpt.config)

    def batch(self, indices: np.ndarray):
        return tuple(tensor[torch.as_tensor(indices)] for tensor in self.train_data)

    def build_model(self) -> nn.Module:
        config = GPTConfig(
            vocab_size=self.tokenizer.vocab_size, context_length=24, n_embd=32, n_head=4,
            n_layer=2, dropout=0.1,
        )  # fmt: skip
        self.gpt = GPT(config)
        self.head = ClassificationHead(self.head_config, config.n_embd)
        self.model = Classifier(self.gpt, self.head)
        return self.model

    def loss(self, model, batch) -> torch.Tensor:
        ids, lengths, labels = batch
        return F.cross_entropy(model(ids, lengths).float(), labels)

    @torch.no_grad()
    def evaluate(self, model, context: RunContext) -> dict[str, float]:
        model.eval()
        ids, lengths, labels = self.val_data
        logits = model(ids, lengths)
        model.train()
        return {
            "val_loss": F.cross_entropy(logits, labels).item(),
            "val_accuracy": (logits.argmax(-1) == labels).float().mean().item(),
        }

    def checkpoint_parts(self) -> CheckpointParts:
        return CheckpointParts(model=self.gpt, tokenizer=self.tokenizer, head=self.head)

    def load_weights(self, checkpoint) -> None:
        loaded = read_checkpoint(checkpoint)
        self.gpt.load_state_dict(loaded.model.state_dict())
        self.head.load_state_dict(loaded.head.state_dict())


@pytest.fixture
def options(tmp_path):
    def make(**changes) -> RunOptions:
        settings = dict(
            out_dir=str(tmp_path), batch_size=8, max_steps=24, lr=1e-2, min_lr=1e-3,
            warmup_steps=2, eval_every=8, threads=1, seed=3, keep_last=1,
        )  # fmt: skip
        return RunOptions(**{**settings, **changes})

    return make


def test_a_toy_classifier_trains_with_checkpoints_metrics_and_its_head(options):
    result = run_training(options(name="toy"), ToyClassification(), show_progress=False)
    assert (result.step, result.stopped_by) == (24, None)
    assert result.metrics["val_accuracy"] >= 0.9  # chance is 0.5
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 8, 16, 24]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    saved = read_checkpoint(result.checkpoint)
    assert saved.labels == ("person", "animal") and saved.head.config.position == "last-token"
    assert (result.run_dir / "loss.png").is_file()
    assert RunOptions.from_toml(result.run_dir / "train.toml") == options(name="toy")


def test_a_toy_run_resumes_bit_for_bit(options):
    whole = run_training(options(name="whole"), ToyClassification(), show_progress=False)
    first = run_training(
        options(name="pieces"), ToyClassification(), stop_after=10, show_progress=False
    )
    assert first.step == 10
    second = run_training(
        options(name="pieces"), ToyClassification(), resume=first.run_dir, show_progress=False
    )
    assert second.losses == whole.losses
    assert second.metrics == whole.metrics
