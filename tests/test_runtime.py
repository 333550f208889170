"""Runtime choices: devices, autocast, threads, random state, rank-0 printing."""

from __future__ import annotations

import platform
import random
import subprocess
import sys

import pytest
import torch

from scratchllm.errors import ConfigError
from scratchllm.runtime import (
    autocast,
    autocast_dtype,
    available_cores,
    choose_device,
    default_threads,
    keep_freed_memory,
    other_busy_threads,
    print0,
    rng_state,
    set_rng_state,
    set_threads,
)


def test_auto_picks_the_best_device_present():
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu"
    )  # fmt: skip
    assert choose_device("auto").type == expected
    assert choose_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_missing_gpu_or_unknown_device_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        choose_device("cuda")
    with pytest.raises(ConfigError, match="unknown device 'tpu9'"):
        choose_device("tpu9")


def test_autocast_is_bf16_on_cuda_only_unless_asked():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu) is None and autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16
    with pytest.raises(ConfigError):
        autocast_dtype(cpu, "fp8")
    a = torch.randn(4, 4)
    with autocast(cpu, torch.bfloat16):
        assert (a @ a).dtype is torch.bfloat16
    with autocast(cpu, None):
        assert (a @ a).dtype is torch.float32


def test_threads_default_to_the_free_cores_shared_by_local_processes():
    cores = available_cores()
    assert default_threads() == cores
    assert default_threads(local_world_size=cores * 2) == 1
    assert default_threads(busy=cores - 1) == 1  # never more threads than free cores
    assert other_busy_threads(samples=3, interval=0.001) >= 0
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_restoring_the_random_state_repeats_the_draws():
    state = rng_state()
    first = (torch.rand(3), random.random())
    set_rng_state(state)
    second = (torch.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and first[1] == second[1]


def test_only_rank_0_prints(monkeypatch, capsys):
    print0("from rank 0")
    monkeypatch.setenv("RANK", "1")
    print0("from rank 1")
    assert capsys.readouterr().out == "from rank 0\n"


# Allocates, fills and frees a 64 MiB tensor 16 times, then prints the page faults each of the
# last eight took; with "keep" it first calls keep_freed_memory (and prints what it returned).
# The heap takes a few rounds to settle (measured: the faults stop from about the 8th on), and
# now and then one later round still lands on fresh pages (a small allocation between two
# blocks), so the test asks that most of the last rounds take none, not every one.
_REALLOCATE = """
import resource, sys
import torch
from scratchllm.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    print(keep_freed_memory())
faults = []
for _ in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(16 * 2**20)  # 64 MiB: glibc would mmap it
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults[-8:])
"""


def _reallocation_faults(mode: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _REALLOCATE, mode], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="keep_freed_memory tunes glibc's malloc (Linux)",
)
def test_kept_memory_is_reused_without_page_faults():
    # each 64 MiB block is 16,384 pages of 4 KiB: glibc's own mmap faults them all in again
    # every time; once kept, the heap hands back pages that are already there
    plain = [int(count) for count in _reallocation_faults("plain")]
    if min(plain) < 16_000:  # the premise, not the result under test
        pytest.skip(
            f"glibc's mmap'd blocks took only {min(plain)} faults here (huge pages, "
            "transparent_hugepage=always?): there is no 4 KiB faulting to remove"
        )
    took_effect, *rest = _reallocation_faults("keep")
    kept = [int(count) for count in rest]
    assert took_effect == "True"
    assert sum(count < 1_000 for count in kept) >= 6, kept  # most rounds reuse the heap


def test_keeping_freed_memory_is_a_no_op_where_glibc_is_absent(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
