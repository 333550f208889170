"""Background checkpoint writes: a snapshot of the moment, one write at a time, no lost error."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from scratchllm.errors import CheckpointError
from scratchllm.train import run, train
from scratchllm.train.checkpointing import CheckpointWriter, cpu_copy
from scratchllm.train.run_dir import checkpoint_dir
from scratchllm.weights.checkpoint import WEIGHTS_FILE, load_training_state, save_checkpoint


def test_cpu_copy_is_a_snapshot_of_nested_state():
    moments = torch.zeros(3)
    state = {"state": {0: {"exp_avg": moments, "step": 4}}, "groups": [(1, moments)]}
    copied = cpu_copy(state)
    moments.add_(1.0)  # the optimizer's next in-place update
    assert torch.equal(copied["state"][0]["exp_avg"], torch.zeros(3))
    assert copied["state"][0]["step"] == 4 and isinstance(copied["groups"][0], tuple)
    assert torch.equal(copied["groups"][0][1], torch.zeros(3))


def test_writes_run_one_at_a_time_and_report_the_last_complete(tmp_path):
    writer = CheckpointWriter()
    spans = []

    def job(name, seconds):
        def run():
            started = time.perf_counter()
            time.sleep(seconds)
            spans.append((name, started, time.perf_counter()))
            return tmp_path / name

        return run

    writer.submit(job("first", 0.2))
    assert writer.busy and writer.last is None  # submit returned while the write goes on
    writer.submit(job("second", 0.0))  # waits for the first
    assert writer.wait() == tmp_path / "second"
    (first, _, first_end), (second, second_start, _) = spans
    assert (first, second) == ("first", "second") and second_start >= first_end


def test_a_failed_background_write_is_raised_not_lost(tmp_path):
    writer = CheckpointWriter()
    writer.submit(lambda: tmp_path / "good")
    writer.wait()
    release = threading.Event()

    def full_disk():
        release.wait()
        raise OSError(28, "No space left on device")

    writer.submit(full_disk)
    release.set()
    with pytest.raises(CheckpointError, match="No space left on device.*newest complete one is"):
        writer.wait()
    assert writer.last == tmp_path / "good"
    assert writer.wait() == tmp_path / "good"  # raised once, then the writer is usable


def test_a_background_checkpoint_holds_the_state_of_its_own_step(make_config, monkeypatch):
    # the uninterrupted run writes step 4 while it trains steps 5-8 (a slow disk, so that it
    # surely does); a run that stops at 4 writes it with nothing training after it. Both must
    # hold the same weights and moments.
    def slow_save(*args, **kwargs):
        time.sleep(0.5)
        return save_checkpoint(*args, **kwargs)

    monkeypatch.setattr(run, "save_checkpoint", slow_save)
    full = train(make_config(name="full", keep_last=5, eval_every=4), show_progress=False)
    stopped = train(make_config(name="stopped", eval_every=4), stop_after=4, show_progress=False)
    assert full.step == 8 and stopped.step == 4
    written = load_file(checkpoint_dir(full.run_dir, 4) / WEIGHTS_FILE)
    reference = load_file(checkpoint_dir(stopped.run_dir, 4) / WEIGHTS_FILE)
    assert written.keys() == reference.keys()
    assert all(torch.equal(written[key], reference[key]) for key in written)
    moments = load_training_state(checkpoint_dir(full.run_dir, 4))["optimizer"]["state"]
    reference = load_training_state(checkpoint_dir(stopped.run_dir, 4))["optimizer"]["state"]
    assert all(
        torch.equal(moments[index]["exp_avg_sq"], reference[index]["exp_avg_sq"])
        for index in reference
    )
    final = load_file(checkpoint_dir(full.run_dir, 8) / WEIGHTS_FILE)
    assert any(not torch.equal(final[key], written[key]) for key in final)  # it did train on


def test_inline_writes_give_the_same_checkpoints(make_config):
    background = train(make_config(name="background"), show_progress=False)
    inline = train(make_config(name="inline", background_checkpoints=False), show_progress=False)
    assert [p.name for p in sorted((background.run_dir / "checkpoints").iterdir())] == [
        p.name for p in sorted((inline.run_dir / "checkpoints").iterdir())
    ]
    a = load_file(background.checkpoint / WEIGHTS_FILE)
    b = load_file(inline.checkpoint / WEIGHTS_FILE)
    assert all(torch.equal(a[key], b[key]) for key in a)
