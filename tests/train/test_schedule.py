"""The learning-rate schedule against values worked out by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchllm.errors import ConfigError
from scratchllm.train.schedule import learning_rate


def lr(step, **options):
    settings = dict(max_lr=6e-4, min_lr=6e-5, warmup_steps=10, total_steps=110)
    settings.update(options)
    return learning_rate(step, **settings)


def test_warmup_is_linear_and_reaches_the_peak_on_its_last_step():
    assert lr(0) == pytest.approx(6e-5)  # 6e-4 * 1/10
    assert lr(4) == pytest.approx(3e-4)  # 6e-4 * 5/10
    assert lr(9) == pytest.approx(6e-4)


def test_cosine_decay_by_hand():
    # 100 decay steps after the warmup: step 10 is the peak, 60 halfway, 110 the floor
    assert lr(10) == pytest.approx(6e-4)
    assert lr(60) == pytest.approx((6e-4 + 6e-5) / 2)
    # a quarter of the way: min + (max - min) * (1 + cos(pi/4)) / 2
    assert lr(35) == pytest.approx(6e-5 + 5.4e-4 * (1 + math.sqrt(0.5)) / 2)
    assert lr(110) == pytest.approx(6e-5)
    assert lr(10_000) == pytest.approx(6e-5)


def test_constant_and_no_warmup():
    assert lr(0, warmup_steps=0, schedule="constant") == 6e-4
    assert lr(500, warmup_steps=0, schedule="constant") == 6e-4
    assert lr(0, warmup_steps=0) == pytest.approx(6e-4)  # cosine starts at the peak


def test_warmup_longer_than_the_run_never_decays():
    assert lr(4, warmup_steps=10, total_steps=5) == pytest.approx(3e-4)
    assert lr(12, warmup_steps=10, total_steps=5) == 6e-5


def test_unknown_schedule():
    with pytest.raises(ConfigError, match="schedule"):
        lr(0, schedule="linear")


@given(st.integers(0, 300), st.integers(0, 50), st.integers(1, 300))
def test_stays_between_the_floor_and_the_peak_and_never_rises_after_warmup(step, warmup, total):
    value = lr(step, warmup_steps=warmup, total_steps=total)
    assert 0 < value <= 6e-4 * (1 + 1e-12)
    if step >= warmup:
        assert value >= 6e-5 * (1 - 1e-12)
        assert lr(step + 1, warmup_steps=warmup, total_steps=total) <= value * (1 + 1e-12)
