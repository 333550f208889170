"""Where and how torch runs: device, precision, threads, seeds, and which process talks.

Written once and used by training, evaluation and generation alike:

- ``choose_device``: CUDA, then Apple MPS, then the CPU, unless the user names one;
- ``autocast``: bf16 autocast on CUDA by default (fp32 weights and optimizer state, bf16
  matmuls); fp32 elsewhere unless asked, since CPUs without native bf16 run it slower;
- ``default_threads`` / ``set_threads``: torch's intra-op threads, by default the cores this
  process may use that no other process is busy on, shared among the processes of a
  data-parallel run on one machine;
- ``keep_freed_memory``: glibc's malloc keeps what a training step frees for the next step,
  instead of handing it back to the kernel and faulting it in again;
- ``seed_everything`` and ``rng_state`` / ``set_rng_state``: the random state a resumed run
  must restore to repeat the uninterrupted one bit for bit;
- ``process_rank`` / ``is_main_process`` / ``print0``: under ``torchrun`` only rank 0 prints.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import sys
import time
from typing import Any

import torch

from scratchllm.errors import ConfigError


def choose_device(preference: str = "auto", *, local_rank: int = 0) -> torch.device:
    """The device to run on: ``"auto"`` picks CUDA, then MPS, then the CPU.

    ``local_rank`` picks the GPU of one process in a multi-GPU run (``torchrun`` sets it).
    A device that is named but not present is a ``ConfigError``.

    >>> choose_device("cpu")
    device(type='cpu')
    """
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except RuntimeError:
        raise ConfigError(
            f"unknown device {preference!r}: use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device cuda was asked for, but torch sees no CUDA GPU here")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        elif device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {preference} does not exist: {torch.cuda.device_count()} GPU(s) here"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device mps was asked for, but this torch has no MPS backend here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {preference!r}: use auto, cpu, cuda or mps")
    return device


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or None for plain fp32.

    >>> autocast_dtype(torch.device("cpu")), autocast_dtype(torch.device("cpu"), "bf16")
    (None, torch.bfloat16)
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ConfigError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``, or a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity API
        return os.cpu_count() or 1


def other_busy_threads(*, samples: int = 10, interval: float = 0.01) -> int:
    """How many threads of other processes are running right now (Linux; 0 elsewhere).

    The median over ``samples`` readings of the runnable count in ``/proc/loadavg`` (which
    counts the reader itself, hence the minus one).
    """
    counts = []
    for index in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as handle:
                running = int(handle.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(max(0, running - 1))
        if index + 1 < samples:
            time.sleep(interval)
    return sorted(counts)[len(counts) // 2]


def default_threads(*, local_world_size: int = 1, busy: int = 0) -> int:
    """Intra-op threads per process: the available cores, less the ``busy`` threads of other
    processes, shared by the processes of this job on this machine.

    Never more threads than free cores: torch's OpenMP threads spin-wait for each other at
    every operation, so one thread that has to wait for a core stalls all of them. On a
    2-core machine with one other busy process, a training step on 2 threads measured 2-5x
    slower than on 1 thread.

    >>> default_threads(local_world_size=10**6), default_threads(busy=10**6)
    (1, 1)
    """
    free = max(1, available_cores() - busy)
    return max(1, free // max(1, local_world_size))


def auto_threads(*, local_world_size: int = 1) -> int:
    """``default_threads`` for the machine as it is now (other busy threads counted)."""
    # the other processes of this job run too: they are not "other" work
    busy = max(0, other_busy_threads() - (local_world_size - 1))
    return default_threads(local_world_size=local_world_size, busy=busy)


def set_threads(threads: int = 0, *, local_world_size: int = 1) -> int:
    """Set torch's intra-op thread count; returns the count set.

    0 means ``default_threads``, which looks at the other busy processes once, now.
    """
    count = threads or auto_threads(local_world_size=local_world_size)
    torch.set_num_threads(count)
    return count


# mallopt parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep the memory this process frees, for its next allocations.

    By default glibc gives every block over 32 MiB its own ``mmap`` and unmaps it when freed.
    A training step allocates and frees the same large tensors every step (logits, activations,
    gradients), so each step gets them as fresh pages from the kernel: one page fault and one
    zeroed 4 KiB page at a time. At gpt2-small, context 256, batch 2 on this project's 2-core
    CPU that was 230,000 faults and 0.6 s of kernel time per 3.7 s step. With ``mmap`` and
    trimming off, freed blocks stay in the heap and the next step reuses them (no faults;
    3.3 s). The price: the process keeps its peak memory until it exits, which a training
    loop reaches every step anyway (there: peak RSS 3.4 -> 3.7 GiB, as the heap settles).

    Process-wide, and only for allocations made after the call. Returns whether it took
    effect: True with glibc on Linux, False elsewhere (other C libraries manage this their own
    way).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    no_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    no_trim = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1  # the largest value it takes
    return no_mmap and no_trim


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every GPU) and Python's ``random``."""
    random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The random state of this process: torch's CPU and CUDA generators and Python's.

    Plain tensors, tuples and ints, so ``torch.load(weights_only=True)`` reads it back.
    """
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def process_rank() -> int:
    """This process's rank in a ``torchrun`` job (0 when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Whether this process logs and writes files (rank 0)."""
    return process_rank() == 0


def print0(*values: Any, file: Any = None, **kwargs: Any) -> None:
    """``print`` on rank 0 only, so a run on 8 processes does not say everything 8 times."""
    if is_main_process():
        print(*values, file=sys.stdout if file is None else file, **kwargs)
