"""The batch plan: every window once per epoch, a position that is a function of the step,
and data-parallel shards that add up to the single-process batch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchllm.errors import DataLengthError
from scratchllm.train.batches import BatchPlan, epoch_order


def test_each_epoch_reads_each_window_at_most_once_in_a_new_order():
    plan = BatchPlan(num_windows=10, batch_size=3, seed=5)
    assert plan.batches_per_epoch == 3  # the 10th window is dropped, as with drop_last=True
    epoch0 = np.concatenate([plan.window_indices(m) for m in range(3)])
    epoch1 = np.concatenate([plan.window_indices(m) for m in range(3, 6)])
    assert len(set(epoch0.tolist())) == 9 and len(set(epoch1.tolist())) == 9
    assert epoch0.tolist() != epoch1.tolist()
    assert plan.position(3) == (1, 0)


def test_same_seed_same_order_other_seed_other_order():
    assert (epoch_order(100, seed=1, epoch=2) == epoch_order(100, seed=1, epoch=2)).all()
    assert not (epoch_order(100, seed=1, epoch=2) == epoch_order(100, seed=2, epoch=2)).all()


@given(
    st.integers(1, 4),  # world size
    st.integers(1, 5),  # per-process batch
    st.integers(0, 40),  # micro-batch
)
def test_shards_of_all_ranks_are_the_single_process_batch(world_size, batch_size, micro_batch):
    windows = 60
    sharded = BatchPlan(windows, batch_size, world_size, seed=3)
    single = BatchPlan(windows, batch_size * world_size, 1, seed=3)
    shards = [sharded.window_indices(micro_batch, rank=rank) for rank in range(world_size)]
    assert np.concatenate(shards).tolist() == single.window_indices(micro_batch).tolist()


def test_too_few_windows_for_one_batch():
    with pytest.raises(DataLengthError, match="fewer than one global batch of 8"):
        BatchPlan(num_windows=7, batch_size=4, world_size=2)
