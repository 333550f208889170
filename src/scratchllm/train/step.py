"""One optimizer step, the same for every objective: micro-batches -> a loss -> AdamW.

An objective (pretraining, classification, instruction tuning, DPO) brings its micro-batches
and a loss function ``loss(model, batch) -> scalar tensor`` (the mean loss of that batch);
``optimizer_step`` does the rest:

1. sets the learning rate the schedule gives for this step;
2. runs each micro-batch: forward and loss under autocast, ``backward`` of
   ``loss / len(micro_batches)``, so the gradient is that of the mean over the step's batches
   whatever fits in memory at once; under DistributedDataParallel the gradients are averaged
   across processes in the last micro-batch's backward only (``no_sync`` before it);
3. clips the gradient norm and takes the optimizer step.

It returns the mean loss and the gradient norm, and leaves logging, checkpoints and everything
else to the run machinery (``run.py``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from scratchllm.runtime import autocast
from scratchllm.train.optim import set_learning_rate

# a micro-batch: a tensor, or a tuple/list/dict of tensors (and plain values), as an objective
# builds it on the CPU; ``to_device`` moves its tensors
Batch = Any
LossFunction = Callable[[nn.Module, Batch], torch.Tensor]


@dataclass(frozen=True)
class StepResult:
    """What one optimizer step measured on this process."""

    loss: float  # the mean of the micro-batches' losses
    grad_norm: float  # the gradient norm before clipping


def to_device(batch: Batch, device: torch.device) -> Batch:
    """``batch`` with every tensor in it moved to ``device`` (containers rebuilt, rest kept).

    >>> to_device({"ids": torch.zeros(2), "n": 3}, torch.device("cpu"))["n"]
    3
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[Batch] | Callable[[int], Batch],
    loss_function: LossFunction,
    *,
    accumulation: int,
    lr: float,
    grad_clip: float,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    parameters: Sequence[nn.Parameter] | None = None,
) -> StepResult:
    """Take one optimizer step over ``accumulation`` micro-batches (see the module docstring).

    ``micro_batches`` is a sequence, or a function of the micro-batch index, so a batch is
    built only when its turn comes. ``model`` is what runs forward (a DDP or compiled wrapper
    is fine); ``parameters`` are clipped (default: the model's). ``grad_clip = 0`` only
    measures the norm.
    """
    get = micro_batches if callable(micro_batches) else micro_batches.__getitem__
    set_learning_rate(optimizer, lr)
    loss_sum = torch.zeros((), device=device)
    no_sync = getattr(model, "no_sync", None)  # DistributedDataParallel's
    for index in range(accumulation):
        batch = to_device(get(index), device)
        last = index == accumulation - 1
        # DDP averages gradients in backward; between micro-batches there is nothing to sync
        syncing = contextlib.nullcontext() if last or no_sync is None else no_sync()
        with syncing:
            with autocast(device, autocast_dtype):
                loss = loss_function(model, batch)
            (loss / accumulation).backward()
        loss_sum += loss.detach()
    clip = grad_clip if grad_clip > 0 else math.inf
    trained = list(model.parameters()) if parameters is None else parameters
    grad_norm = torch.nn.utils.clip_grad_norm_(trained, clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss=float(loss_sum) / accumulation, grad_norm=float(grad_norm))
