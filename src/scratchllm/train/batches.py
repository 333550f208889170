"""Which windows each training step reads: a reproducible order that a resumed run can rejoin.

The training windows are shuffled once per epoch with a generator seeded by ``(seed, epoch)``
and cut into global batches of ``batch_size x world_size`` windows; the last incomplete batch
of an epoch is dropped (as the walkthrough's ``drop_last=True``). Micro-batch ``m`` of the run
is batch ``m % batches_per_epoch`` of epoch ``m // batches_per_epoch``, so the data position
is a pure function of how many micro-batches were consumed: resuming at step ``k`` reads
exactly what the uninterrupted run read next, with no loader state to save.

In a data-parallel run, process ``rank`` reads its slice ``[rank * batch_size, (rank + 1) *
batch_size)`` of each global batch. The global batch is the same as one process reading
``batch_size x world_size`` windows, which is why the two give the same gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from scratchllm.config import TrainConfig
from scratchllm.data.windows import SlidingWindowDataset
from scratchllm.errors import ConfigError, DataLengthError


def epoch_order(num_windows: int, *, seed: int, epoch: int) -> np.ndarray:
    """The window indices of ``epoch`` in their shuffled order (a permutation of all windows).

    >>> sorted(epoch_order(5, seed=0, epoch=3).tolist())
    [0, 1, 2, 3, 4]
    >>> (epoch_order(50, seed=0, epoch=0) == epoch_order(50, seed=0, epoch=1)).all()
    np.False_
    """
    return np.random.default_rng([seed, epoch]).permutation(num_windows)


@dataclass(frozen=True)
class BatchPlan:
    """The training batches of a run: ``batch_size`` windows per process per micro-batch."""

    num_windows: int
    batch_size: int
    world_size: int = 1
    seed: int = 0
    # the order of an epoch's windows, ``order(epoch)``: a permutation of range(num_windows);
    # None = ``epoch_order`` (an objective may group examples of similar lengths instead)
    order: Callable[[int], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.batches_per_epoch == 0:
            raise DataLengthError(
                f"the training data gives {self.num_windows} window(s), fewer than one global "
                f"batch of {self.global_batch_size} (batch_size {self.batch_size} x "
                f"{self.world_size} process(es)); use a smaller batch_size or context length, "
                "or more text"
            )

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    @property
    def batches_per_epoch(self) -> int:
        return self.num_windows // self.global_batch_size

    def position(self, micro_batch: int) -> tuple[int, int]:
        """``(epoch, batch within the epoch)`` of the run's ``micro_batch``-th micro-batch.

        >>> BatchPlan(num_windows=10, batch_size=3).position(4)  # 3 batches per epoch
        (1, 1)
        """
        return divmod(micro_batch, self.batches_per_epoch)

    def window_indices(self, micro_batch: int, *, rank: int = 0) -> np.ndarray:
        """The indices of the windows process ``rank`` reads in micro-batch ``micro_batch``."""
        epoch, index = self.position(micro_batch)
        if self.order is None:
            order = epoch_order(self.num_windows, seed=self.seed, epoch=epoch)
        else:
            order = self.order(epoch)
        start = index * self.global_batch_size + rank * self.batch_size
        return order[start : start + self.batch_size]


def stack_windows(
    dataset: SlidingWindowDataset, indices: np.ndarray | list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows ``indices`` of ``dataset`` as ``(inputs, targets)``, each ``(B, T)`` int64."""
    pairs = [dataset[int(index)] for index in indices]
    inputs = torch.stack([pair[0] for pair in pairs])
    targets = torch.stack([pair[1] for pair in pairs])
    return inputs, targets


def accumulation_steps(tokens_per_step: int, tokens_per_micro_batch: int) -> int:
    """Micro-batches per optimizer step for a target of ``tokens_per_step`` (0: one).

    >>> accumulation_steps(0, 4096), accumulation_steps(16384, 4096)
    (1, 4)
    """
    if tokens_per_step == 0:
        return 1
    count, remainder = divmod(tokens_per_step, tokens_per_micro_batch)
    if count == 0 or remainder:
        raise ConfigError(
            f"tokens_per_step {tokens_per_step:,} must be a multiple of the tokens in one "
            f"micro-batch over all processes ({tokens_per_micro_batch:,} = batch_size x "
            f"context_length x processes); e.g. {max(1, count) * tokens_per_micro_batch:,}"
        )
    return count


def total_steps(config: TrainConfig, *, batches_per_epoch: int, accumulation: int) -> int:
    """Steps of the run: ``max_steps`` or ``epochs`` worth, whichever is fewer.

    >>> total_steps(TrainConfig(max_steps=0, epochs=10), batches_per_epoch=9, accumulation=1)
    90
    """
    candidates = []
    if config.max_steps:
        candidates.append(config.max_steps)
    if config.epochs:
        candidates.append(max(1, math.ceil(config.epochs * batches_per_epoch / accumulation)))
    return min(candidates)
