"""What a training run trains for: the part an objective brings to the shared run machinery.

The run machinery (``run.py``) owns everything every run needs: the run folder, seeding,
devices and processes, the optimizer and its schedule, the step (``step.py``), evaluations on
a clock, checkpoints with exact resume, interrupts, metrics, the progress bar and the loss
plot. An ``Objective`` owns what differs between pretraining, classification, instruction
tuning and preference tuning:

- its data (``prepare``): read, split, tokenized; how many training examples it has;
- its model (``build_model``): a GPT from a config or a checkpoint, maybe with a task head or
  adapters, and which parameters train;
- its batches (``batch``): the examples at some indices, stacked into tensors on the CPU;
- its loss (``loss``): the mean loss of one batch, a scalar the step backpropagates;
- its evaluation (``evaluate``): the metrics at an evaluation, ``val_loss`` among them (the
  best checkpoint is the one with the lowest), sums reduced across processes;
- what its checkpoints hold besides the GPT (``checkpoint_parts``) and how to load them back.

The machinery calls these in a fixed order (``prepare``, then ``build_model`` right after
seeding torch, then the rest), so an objective never touches seeds, devices, the optimizer or
the disk layout, and a finetuning run gets checkpoints, exact resume, SIGINT/kill -9 safety,
metrics and DDP without writing any of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import Tokenizer
from scratchllm.train.step import Batch


@dataclass(frozen=True)
class RunContext:
    """What an objective may know of the run it serves (given to ``prepare``)."""

    run_dir: Path
    device: torch.device
    rank: int
    world_size: int
    is_main: bool
    resuming: bool  # the run continues from its own checkpoint: weights come from there
    autocast_dtype: torch.dtype | None  # what the step runs forward under (None: fp32)
    barrier: Callable[[], None]  # all processes wait here (rank 0 prepares data meanwhile)
    reduce_sum: Callable[[list[float]], list[float]]  # sums across processes
    log: Callable[[str], None]  # prints on the main process only


@dataclass
class CheckpointParts:
    """What a checkpoint of this objective holds: the GPT and tokenizer, plus its extras
    (``weights/checkpoint.py`` declares each in ``config.json`` and validates it)."""

    model: GPT
    tokenizer: Tokenizer
    head: nn.Module | None = None
    head_config: Any = None  # config.HeadConfig when there is a head
    prompt_format: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Objective:
    """The base class of the objectives; see the module docstring for the contract."""

    # set by ``prepare`` / ``build_model``
    tokenizer: Tokenizer
    model: nn.Module  # what runs forward in the step; may wrap the GPT (a head, adapters)

    # ---- data -------------------------------------------------------------------------------

    def prepare(self, context: RunContext) -> None:
        """Read the data (rank 0 writes anything to disk; the others wait at the barrier)."""
        raise NotImplementedError

    @property
    def num_examples(self) -> int:
        """Training examples the batch plan shuffles each epoch."""
        raise NotImplementedError

    @property
    def tokens_per_example(self) -> int:
        """Tokens one example counts for in ``tokens_per_step`` and ``tokens seen``."""
        raise NotImplementedError

    def describe_data(self) -> str:
        """The data's log line at the start (examples, windows, splits)."""
        return f"{self.num_examples:,} training examples"

    def epoch_order(self, seed: int, global_batch_size: int) -> Callable[[int], np.ndarray] | None:
        """The order of each epoch's examples, ``order(epoch) -> permutation``, which the batch
        plan cuts into global batches of ``global_batch_size``; None (the default) = a plain
        shuffle (``batches.epoch_order``). Must be a pure function of its arguments and the
        data, so that a resumed run reads what the uninterrupted one would have."""
        return None

    def batch(self, indices: np.ndarray) -> Batch:
        """The training examples ``indices`` as one micro-batch (CPU tensors)."""
        raise NotImplementedError

    # ---- model ------------------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        """Build ``self.model`` (called right after torch is seeded) and return it."""
        raise NotImplementedError

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimizer updates (default: all that require a gradient)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    @property
    def model_config(self) -> Any:
        """The GPTConfig of the model (run.json, the log line)."""
        raise NotImplementedError

    # ---- loss and evaluation ----------------------------------------------------------------

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The mean loss of ``batch`` (fp32 scalar). ``model`` may be a DDP wrapper."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, context: RunContext) -> dict[str, float]:
        """Metrics over fixed evaluation examples; must include ``val_loss``."""
        raise NotImplementedError

    sample_prompt: str = ""  # the log shows it before each sample

    def sample(self, model: nn.Module) -> str | None:
        """A text logged (as ``sample``) and printed after ``sample_prompt`` at each evaluation
        (None: none)."""
        return None

    def describe_evaluation(self, metrics: dict[str, float]) -> str:
        """The evaluation's log line, after ``step N/M:``."""
        return ", ".join(f"{name} {value:.3f}" for name, value in metrics.items())

    loss_unit: str = "nats per token"  # what the loss plot's axis says

    def plot(self, run_dir: Path, records: list[dict[str, Any]], title: str) -> None:
        """Draw the objective's own plots besides loss.png (e.g. accuracy) from the metrics."""

    def finish(self, model: nn.Module, context: RunContext) -> dict[str, Any] | None:
        """Called once when the run has trained to its end (not when interrupted): final
        measurements (written where the objective likes, e.g. results.json), returned too."""
        return None

    @property
    def baseline_loss(self) -> float | None:
        """A reference loss drawn on the plot (pretraining: the unigram baseline)."""
        return None

    def info(self) -> dict[str, Any]:
        """Facts about the data and model for run.json and the start record."""
        return {}

    def identity(self) -> dict[str, Any]:
        """What a resumed run's data must match (tokenizer fingerprint, sizes)."""
        return {}

    def plot_title(self) -> str:
        """What the run's plot title says about the model."""
        return ""

    # ---- checkpoints ------------------------------------------------------------------------

    def checkpoint_parts(self) -> CheckpointParts:
        """The GPT, tokenizer and extras that a checkpoint of this run holds."""
        raise NotImplementedError

    def load_weights(self, checkpoint: Path) -> None:
        """Load the weights of this run's own ``checkpoint`` into ``self.model`` (resume)."""
        raise NotImplementedError


def split_for_rank(indices: np.ndarray, context: RunContext) -> np.ndarray:
    """This process's share of ``indices`` (every world_size-th, from its rank)."""
    return indices[context.rank :: context.world_size]
