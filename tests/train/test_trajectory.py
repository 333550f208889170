"""A recorded loss trajectory of the tiny config: the regression check for the training step.

After llm.c's ``train_gpt2`` test: six steps of a tiny run with everything that touches the
numbers switched on (dropout, two accumulated micro-batches, warmup + cosine, clipping, fused
AdamW with decay groups, evaluations in between), compared with the losses the code gave when
this was recorded. Any change to what a step computes, or to the order of the random draws,
moves them by far more than the tolerance; a refactoring of the loop must leave them alone.

Recorded 2026-12-04 on an AMD EPYC (AVX2), torch 2.13.0 CPU, 1 thread. The tolerance (2e-5
nats, ~4e-6 relative) leaves room for another CPU's float summation order only; the smallest
real change tried (one more random draw before the first step, which shifts every dropout
mask) moves the first loss by 1.1e-3 and the sixth by 0.075.
"""

from __future__ import annotations

import json

import pytest

from scratchllm.train import train

TRAIN_LOSSES = [
    5.7236127853393555,
    5.5706329345703125,
    5.294600963592529,
    4.996864318847656,
    4.678020477294922,
    4.499256134033203,
]
VAL_LOSSES = {0: 5.707430601119995, 3: 4.92035698890686, 6: 4.399659156799316}
TOLERANCE = 2e-5


def trajectory_config(make_config):
    model = {"dropout": 0.1, "n_layer": 2, "n_embd": 32, "n_head": 4, "context_length": 16}
    return make_config(
        max_steps=6, eval_every=3, tokens_per_step=128, sample_tokens=0, model_overrides=model
    )


def test_the_recorded_loss_trajectory(make_config):
    result = train(trajectory_config(make_config), show_progress=False)
    assert list(result.losses) == pytest.approx(TRAIN_LOSSES, abs=TOLERANCE, rel=0)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    val = {r["step"]: r["val_loss"] for r in records if r["kind"] == "eval"}
    assert val == pytest.approx(VAL_LOSSES, abs=TOLERANCE, rel=0)
