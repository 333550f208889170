"""The metrics file (cut back to a checkpoint on resume) and the loss plot."""

from __future__ import annotations

import math
import struct

import pytest

from scratchllm.errors import CheckpointError
from scratchllm.train.metrics import MetricsLog
from scratchllm.viz import plot_losses


def test_resume_keeps_records_up_to_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.append("start", step=0, tokens=0)
    for step in range(1, 6):
        log.append("train", step=step, tokens=step * 10, loss=5.0 - step)
    log.append("eval", step=4, tokens=40, val_loss=2.5, train_loss_eval=1.5)
    log.append("eval", step=5, tokens=50, val_loss=math.nan, train_loss_eval=1.0)
    log.flush()
    resumed = MetricsLog.resume(tmp_path / "metrics.jsonl", up_to_step=4)
    assert resumed.losses() == [4.0, 3.0, 2.0, 1.0]
    curves = resumed.curves()
    assert curves["train"] == [(10, 4.0), (20, 3.0), (30, 2.0), (40, 1.0)]
    assert curves["val"] == [(40, 2.5)] and curves["train_eval"] == [(40, 1.5)]
    assert MetricsLog.resume(tmp_path / "metrics.jsonl", up_to_step=5).curves()["val"] == [
        (40, 2.5)  # a NaN val loss is not drawn
    ]


def test_a_damaged_metrics_file_is_a_clear_error(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\n{"kind": "tr')
    with pytest.raises(CheckpointError, match="line 2 is not JSON"):
        MetricsLog.resume(tmp_path / "metrics.jsonl", up_to_step=3)


def test_loss_plot_is_a_png(tmp_path):
    path = plot_losses(
        tmp_path / "loss.png", train=[(i * 64, 6.0 - i / 10) for i in range(40)],
        val=[(0, 6.0), (1280, 4.5), (2496, 4.2)], baseline=5.0, title="tiny",
    )  # fmt: skip
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (960, 600)  # 8 x 5 inches at 120 dpi
