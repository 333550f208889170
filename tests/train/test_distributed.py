"""Data-parallel training: 2 processes (DDP over gloo on the CPU) against 1 process with the
same global batch.

The two processes are forked from the test with the environment ``torchrun`` would give them
(RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1, ...), so they skip a second torch import; the
``torchrun -m scratchllm train`` path is the same ``train()`` call behind the CLI.
"""

from __future__ import annotations

import multiprocessing
import os
import socket

import pytest
import torch
from safetensors.torch import load_file

from scratchllm.train import train
from scratchllm.train.metrics import MetricsLog
from scratchllm.weights.checkpoint import WEIGHTS_FILE

STEPS = 4
WORLD_SIZE = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_rank(rank: int, port: int, config) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE),
        LOCAL_WORLD_SIZE=str(WORLD_SIZE), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    train(config, show_progress=False)


def records(run_dir, kind):
    log = MetricsLog.resume(run_dir / "metrics.jsonl", up_to_step=STEPS)
    return [record for record in log.records if record["kind"] == kind]


def test_two_processes_match_one_with_the_same_global_batch(make_config):
    common = dict(max_steps=STEPS, eval_every=STEPS)
    ddp_config = make_config(name="ddp", batch_size=2, **common)  # 2 x 2 windows per step
    port = free_port()
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=run_rank, args=(rank, port, ddp_config))
        for rank in range(WORLD_SIZE)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    single = train(make_config(name="single", batch_size=4, **common), show_progress=False)
    ddp_run = single.run_dir.parent / "ddp"

    assert [r["world_size"] for r in records(ddp_run, "start")] == [2]
    ddp_losses = [r["loss"] for r in records(ddp_run, "train")]
    assert ddp_losses == pytest.approx(list(single.losses), rel=1e-5)
    ddp_val = [r["val_loss"] for r in records(ddp_run, "eval")]
    assert ddp_val == pytest.approx([r["val_loss"] for r in records(single.run_dir, "eval")])
    checkpoint = f"checkpoints/step-{STEPS:07d}/{WEIGHTS_FILE}"
    ddp_weights = load_file(ddp_run / checkpoint)
    for name, tensor in load_file(single.run_dir / checkpoint).items():
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=1e-4, atol=1e-5)
