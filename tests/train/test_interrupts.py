"""Interrupting a real `scratchllm train` process: SIGINT/SIGTERM save and exit cleanly, and
`kill -9` loses only the steps since the last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scratchllm.config import TrainConfig
from scratchllm.train import train
from scratchllm.train.metrics import MetricsLog
from scratchllm.train.run_dir import list_checkpoints
from scratchllm.weights.checkpoint import load_checkpoint, load_training_state

TIMEOUT_S = 60


def start_training(tmp_path, prepared_dir, *, checkpoint_every: int) -> subprocess.Popen:
    args = [
        sys.executable, "-m", "scratchllm", "train", "--data", str(prepared_dir),
        "--out-dir", str(tmp_path / "runs"), "--name", "run", "--model", "cpu-tiny",
        "--n-layer", "2", "--n-embd", "32", "--context-length", "16", "--batch-size", "4",
        "--max-steps", "100000", "--eval-every", "1000", "--eval-batches", "1",
        "--checkpoint-every", str(checkpoint_every), "--sample-tokens", "0", "--threads", "1",
        "--no-progress",
    ]  # fmt: skip
    log = (tmp_path / "train.log").open("w")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)


def wait_for_checkpoints(run_dir, process, count: int) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while len(list_checkpoints(run_dir)) < count:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"training made no {count} checkpoint(s): {process.returncode}")
        time.sleep(0.05)


def steps_in(run_dir) -> list[int]:
    records = MetricsLog.resume(run_dir / "metrics.jsonl", up_to_step=10**9).records
    return [record["step"] for record in records if record["kind"] == "train"]


def test_ctrl_c_saves_the_current_step_and_exits_cleanly(tmp_path, prepared_dir):
    process = start_training(tmp_path, prepared_dir, checkpoint_every=50)
    run_dir = tmp_path / "runs" / "run"
    wait_for_checkpoints(run_dir, process, 1)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=TIMEOUT_S) == 130
    log = (tmp_path / "train.log").read_text()
    assert "SIGINT: stopped at step" in log and "--resume" in log
    assert "Traceback" not in log
    step, checkpoint = list_checkpoints(run_dir)[-1]
    assert load_training_state(checkpoint)["step"] == step
    # nothing lost: the checkpoint is the last step that ran, and the metrics end there
    assert steps_in(run_dir) == list(range(1, step + 1))


def test_sigterm_stops_after_the_current_step_with_a_checkpoint(make_config):
    # the handler in-process (the subprocess test above covers the command line)
    config = make_config(max_steps=100000, eval_every=1000, checkpoint_every=20, sample_tokens=0)
    run_dir = config.out_dir + "/run"

    def terminate_after_the_first_checkpoint() -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not list_checkpoints(Path(run_dir)) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_after_the_first_checkpoint, daemon=True).start()
    result = train(config, show_progress=False)
    assert result.stopped_by == "SIGTERM" and 20 <= result.step < 100000
    assert result.checkpoint.name == f"step-{result.step:07d}"
    assert steps_in(result.run_dir) == list(range(1, result.step + 1))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again


def test_kill_9_loses_only_the_steps_since_the_last_checkpoint(tmp_path, prepared_dir):
    process = start_training(tmp_path, prepared_dir, checkpoint_every=3)
    run_dir = tmp_path / "runs" / "run"
    wait_for_checkpoints(run_dir, process, 2)
    process.kill()  # SIGKILL: no handler runs
    process.wait(timeout=TIMEOUT_S)
    step, checkpoint = list_checkpoints(run_dir)[-1]
    load_checkpoint(checkpoint)  # complete and loadable
    assert load_training_state(checkpoint)["step"] == step
    assert step % 3 == 0
    # a save cut short by the kill leaves a hidden temp folder; resuming ignores and clears it
    stale = run_dir / "checkpoints" / f".step-{step + 3:07d}.tmp"
    stale.mkdir(exist_ok=True)  # the kill may really have landed mid-save
    (stale / "model.safetensors").write_bytes(b"half a file")
    saved = json.loads((run_dir / "run.json").read_text())
    config = TrainConfig.from_toml(run_dir / "train.toml").replace(max_steps=step + 2)
    result = train(config, resume=run_dir, show_progress=False)
    assert result.step == step + 2
    assert not stale.exists()
    assert steps_in(run_dir) == list(range(1, step + 3))  # no step lost or counted twice
    assert saved["total_steps"] == 100000
