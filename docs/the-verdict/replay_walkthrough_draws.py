"""Our training loop, fed the walkthrough's random draws: it prints the published chapter-5 log.

The walkthrough's ``train_model_simple`` takes every random number from torch's global
generator after ``torch.manual_seed(123)`` and the model's init: dropout masks, and a
DataLoader's draws, two when an epoch starts (its iterator's base seed, then its sampler's
seed, from which a ``randperm`` orders the 18 windows) and three at each evaluation (the
train loader's two, to pick the 5 batches it scores, and the val loader's one). It evaluates
after steps 1, 6, 11, ... 86.

This script runs ``scratchllm train`` on ``configs/the-verdict-gpt2-small.toml`` unchanged,
except that the data order and the evaluations make those same draws at those same moments.
Dropout already continues the seed's stream after the init, as the walkthrough's does. The
printed losses then track the published log (``Ep 10 (Step 000085): Train loss 0.391, Val
loss 6.452``) within 0.015 at every evaluation: the loop computes what the walkthrough's
does, and the published figures are one draw of its randomness
(``docs/pretraining-the-verdict.md``).

    python docs/the-verdict/replay_walkthrough_draws.py [THREADS [STEPS]]   # ~30 min, 1 busy core

Needs the shared data folder beside the repository (``../shared/data``). It patches two
methods of the library for the experiment; nothing is saved.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(DATA / "tiktoken-cache"))

from scratchllm.config import TrainConfig  # noqa: E402
from scratchllm.train import train  # noqa: E402
from scratchllm.train.batches import BatchPlan  # noqa: E402
from scratchllm.train.run import Run  # noqa: E402

WINDOWS, BATCHES_PER_EPOCH = 18, 9


def draw() -> int:
    """What a DataLoader draws from the global generator for a seed."""
    return int(torch.empty((), dtype=torch.int64).random_().item())


def shuffled(seed: int) -> np.ndarray:
    """RandomSampler's order from its seed."""
    generator = torch.Generator().manual_seed(seed)
    return np.array(torch.randperm(WINDOWS, generator=generator).tolist())


epoch_order: dict[str, np.ndarray] = {}


def window_indices(self: BatchPlan, micro_batch: int, *, rank: int = 0) -> np.ndarray:
    if micro_batch % BATCHES_PER_EPOCH == 0:  # a new epoch: `for batch in train_loader`
        draw()  # the iterator's base seed
        epoch_order["windows"] = shuffled(draw())  # the sampler's seed
    start = 2 * (micro_batch % BATCHES_PER_EPOCH)
    return epoch_order["windows"][start : start + 2]


evaluate = Run._evaluate


def evaluate_as_the_walkthrough(self: Run) -> bool:
    if self.step % 5 != 1:  # its global_step % eval_freq == 0, counted from 0
        return False
    draw()
    # 5 batches of the shuffled train loader
    self.objective.train_eval_indices = shuffled(draw())[:10]
    draw()  # the val loader's iterator
    return evaluate(self)


def main() -> None:
    BatchPlan.window_indices = window_indices
    Run._evaluate = evaluate_as_the_walkthrough
    Run._save = lambda self: None
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 0  # 0: the whole run (90 steps)
    config = TrainConfig.from_toml(REPO / "configs" / "the-verdict-gpt2-small.toml").replace(
        corpus=str(DATA / "the-verdict.txt"), out_dir=tempfile.mkdtemp(), threads=threads,
        sample_tokens=0, eval_every=1, max_steps=steps,
    )  # fmt: skip
    train(config, show_progress=False)


if __name__ == "__main__":
    main()
