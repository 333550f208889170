"""The resumable training state: a round trip, and clear errors instead of unpickling."""

from __future__ import annotations

import io

import pytest
import torch

from scratchllm.errors import CheckpointError
from scratchllm.weights.checkpoint import (
    TRAINING_STATE_FILE,
    load_training_state,
    save_training_state,
)


class NotData:
    """An arbitrary class: a pickle of it could run code on load; weights_only refuses it."""


def test_round_trip_of_tensors_and_plain_values(tmp_path):
    state = {
        "step": 12, "best_val_loss": None, "rng": [{"torch": torch.get_rng_state()}],
        "optimizer": {"state": {0: {"exp_avg": torch.randn(3, 2)}}, "param_groups": [{"lr": 1e-3}]},
    }  # fmt: skip
    save_training_state(tmp_path, state)
    loaded = load_training_state(tmp_path)
    assert loaded["step"] == 12 and loaded["best_val_loss"] is None
    assert torch.equal(loaded["rng"][0]["torch"], state["rng"][0]["torch"])
    exp_avg = loaded["optimizer"]["state"][0]["exp_avg"]
    assert torch.equal(exp_avg, state["optimizer"]["state"][0]["exp_avg"])


def test_missing_state_points_to_init_from(tmp_path):
    with pytest.raises(CheckpointError, match="--init-from"):
        load_training_state(tmp_path)


def test_truncated_state(tmp_path):
    save_training_state(tmp_path, {"step": 1, "tensor": torch.zeros(100)})
    path = tmp_path / TRAINING_STATE_FILE
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_training_state(tmp_path)


def test_an_arbitrary_object_is_refused_not_unpickled(tmp_path):
    buffer = io.BytesIO()
    torch.save({"format_version": 1, "payload": NotData()}, buffer)
    (tmp_path / TRAINING_STATE_FILE).write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="not loaded, since unpickling it could run code"):
        load_training_state(tmp_path)


def test_other_format_version(tmp_path):
    buffer = io.BytesIO()
    torch.save({"format_version": 99}, buffer)
    (tmp_path / TRAINING_STATE_FILE).write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="format version 99"):
        load_training_state(tmp_path)
