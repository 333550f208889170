"""How much one draw of the random numbers moves the chapter-5 run's train loss.

Runs ``configs/the-verdict-gpt2-small.toml`` (seed 123) for ``--steps`` steps with ``k`` extra
numbers drawn from torch's global generator just before the first step, so that every random
number after them moves along, and prints the train loss over all 18 training windows (eval
mode) at the end, and the mean training-step loss (dropout on) over the last 10 steps.

``ours`` is our loop as it is: the shift moves its dropout masks (its window order comes from
its own (seed, epoch) generator). ``walkthrough`` is our loop fed the walkthrough's draws
(``replay_walkthrough_draws.py``): the shift moves its window order and its masks, as a
different draw of the walkthrough's own loop would. ``k = 0`` with ``walkthrough`` is the
published run. Results: ``spread.log`` and docs/pretraining-the-verdict.md.

    python docs/the-verdict/spread_of_one_draw.py ours 4                # ~4 min on 2 cores
    python docs/the-verdict/spread_of_one_draw.py walkthrough 2 --steps 90

It patches library methods for the experiment; nothing is saved.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("replay", HERE / "replay_walkthrough_draws.py")
replay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(replay)  # sets TIKTOKEN_CACHE_DIR to the shared cache if unset

from scratchllm.config import TrainConfig  # noqa: E402
from scratchllm.train import train  # noqa: E402
from scratchllm.train.batches import BatchPlan  # noqa: E402
from scratchllm.train.run import Run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("draws", choices=("ours", "walkthrough"))
    parser.add_argument("k", type=int, help="extra numbers drawn before the first step")
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    Run._save = lambda self: None
    if args.draws == "walkthrough":
        BatchPlan.window_indices = replay.window_indices
        Run._evaluate = replay.evaluate_as_the_walkthrough
    train_step, run = Run._train_step, Run.run

    def shifted_step(self: Run) -> None:
        if self.step == 0:
            for _ in range(args.k):
                torch.empty((), dtype=torch.int32).random_()  # one 32-bit number each
        train_step(self)

    final = {}

    def run_then_score(self: Run, **options):
        result = run(self, **options)
        windows = np.arange(len(self.objective.train_set))
        final["train"] = self.objective._mean_loss(
            self.model, self.objective.train_set, windows, self.run_context
        )
        return result

    Run._train_step, Run.run = shifted_step, run_then_score
    config = TrainConfig.from_toml(replay.REPO / "configs" / "the-verdict-gpt2-small.toml").replace(
        corpus=str(replay.DATA / "the-verdict.txt"), out_dir=tempfile.mkdtemp(),
        threads=args.threads, sample_tokens=0, max_steps=args.steps,
        eval_every=1 if args.draws == "walkthrough" else args.steps,
    )  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = train(config, show_progress=False)
    last = statistics.mean(result.losses[-10:])
    print(
        f"{args.draws} draws, k = {args.k}, {args.steps} steps: train loss {final['train']:.3f} "
        f"over all windows; mean step loss over the last 10 steps {last:.3f}"
    )


if __name__ == "__main__":
    main()
