"""Runtime choices: devices, autocast, threads, random state, rank-0 printing."""

from __future__ import annotations

import random

import pytest
import torch

from scratchllm.errors import ConfigError
from scratchllm.runtime import (
    autocast,
    autocast_dtype,
    available_cores,
    choose_device,
    default_threads,
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
