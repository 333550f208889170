"""The walkthrough's experiment (configs/the-verdict-gpt2-small.toml), 2 steps.

The full model is 162M parameters (~5 s a step on 2 CPU cores, plus 2 GB of checkpoint), so
the suite runs the same config with a smaller model: the same GPT-2 tokenizer, character
split, 256-token windows, batch, optimizer and schedule. The story is read from the shared
data folder instead of being downloaded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scratchllm.config import TrainConfig
from scratchllm.train import train

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "the-verdict-gpt2-small.toml"


def test_two_steps_of_the_walkthrough_config(tmp_path, shared_data):
    config = TrainConfig.from_toml(CONFIG)
    small = {**config.model_overrides, "n_layer": 1, "n_embd": 64, "n_head": 2}
    config = config.replace(
        corpus=str(shared_data / "the-verdict.txt"), out_dir=str(tmp_path), max_steps=2,
        model_overrides=small, sample_tokens=10, eval_batches=1, threads=1,
    )  # fmt: skip
    result = train(config, show_progress=False)
    info = json.loads((result.run_dir / "run.json").read_text())
    # the walkthrough's numbers: 4,612 + 535 tokens -> 18 train windows (9 batches of 2 per
    # epoch, 90 steps in 10 epochs) and 2 val windows
    assert (info["train_tokens"], info["val_tokens"]) == (4612, 535)
    assert (info["train_windows"], info["val_windows"]) == (18, 2)
    assert (info["batches_per_epoch"], info["tokens_per_step"]) == (9, 512)
    assert result.step == 2 and result.total_steps == 2  # max_steps caps the 90
    # a fresh model is near-uniform over 50,257 tokens: loss ~ ln(50257) = 10.8
    assert result.losses[0] == pytest.approx(math.log(50257), abs=0.3)
    assert result.losses[1] < result.losses[0]
    records = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    lrs = [json.loads(line)["lr"] for line in records if '"kind": "train"' in line]
    assert lrs == [4e-4, 4e-4]  # constant, no warmup
