"""Data-parallel training across processes: ``torchrun`` sets the environment, we join it.

``torchrun --nproc_per_node N -m scratchllm train ...`` starts N copies of the command with
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` set. Each process builds the same model (DistributedDataParallel also
broadcasts rank 0's weights), reads its own shard of every global batch (``batches.py``), and
DDP averages the gradients during ``backward``, so every process takes the same step. Only
rank 0 logs and writes files. The backend is NCCL on GPUs and gloo on CPUs.

Sharding the model itself (FSDP) for models larger than one GPU would replace only
``wrap_model`` and the state-dict gathering in the checkpoint code; the loop stays the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistributedContext:
    """Who this process is in the job (a single process is rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    owns_process_group: bool = False  # whether we created it (and must destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistributedContext:
    """Join the ``torchrun`` job described by the environment, if any.

    ``device_type`` is where the model will run: ``"cuda"`` uses NCCL (after pinning this
    process to GPU ``LOCAL_RANK``), anything else gloo. A process group that already exists
    (a test that made one) is reused.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 and not dist.is_initialized():
        return DistributedContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        owns = True
    return DistributedContext(
        rank=dist.get_rank(),
        local_rank=local_rank,
        world_size=dist.get_world_size(),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(dist.get_world_size()))),
        owns_process_group=owns,
    )


def shutdown(context: DistributedContext) -> None:
    if context.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, context: DistributedContext) -> nn.Module:
    """The module the training step calls: DDP around ``model`` in a multi-process run."""
    if not context.enabled:
        return model
    device = next(model.parameters()).device
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def all_reduce_sum(values: list[float], context: DistributedContext) -> list[float]:
    """The element-wise sum of ``values`` over all processes (``values`` itself when alone).

    float64, so summed losses keep their precision.
    """
    if not context.enabled:
        return values
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=backend_device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def gather_to_main(value: Any, context: DistributedContext) -> list[Any]:
    """Every process's ``value``, in rank order, on every process (e.g. each one's RNG state)."""
    if not context.enabled:
        return [value]
    values: list[Any] = [None] * context.world_size
    dist.all_gather_object(values, value)
    return values


def broadcast_from_main(value: Any, context: DistributedContext) -> Any:
    """Rank 0's ``value`` on every process (e.g. the run folder rank 0 created)."""
    if not context.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
