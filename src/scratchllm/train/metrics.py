"""The run's metrics file: one JSON object per line, kept consistent with the checkpoints.

Records are ``{"kind": "start", ...}`` once (sizes, the unigram baseline), ``{"kind":
"train", "step", "tokens", "loss", "lr", "grad_norm", "tokens_per_second", ...}`` per step,
and ``{"kind": "eval", "step", "tokens", "val_loss", "val_perplexity", "train_loss_eval",
"sample"}`` per evaluation. The whole file is rewritten atomically at each evaluation and
checkpoint (a few hundred kB at most), so after a crash it ends where the last checkpoint
ends; a resumed run drops any record past its checkpoint and appends from there.

``curves`` gives what the loss plot draws.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scratchllm.errors import CheckpointError
from scratchllm.io import atomic_write_text


@dataclass
class MetricsLog:
    """Metric records in memory, written to ``path`` by ``flush`` (``path=None``: never)."""

    path: Path | None
    records: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def resume(cls, path: Path, *, up_to_step: int) -> MetricsLog:
        """The records of ``path`` up to and including ``up_to_step`` (a missing file is empty)."""
        if not path.is_file():
            return cls(path)
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
            except ValueError:
                raise CheckpointError(f"{path} line {number} is not JSON: {line[:60]!r}") from None
            if record.get("step", 0) <= up_to_step:
                records.append(record)
        return cls(path, records)

    def append(self, kind: str, **values: Any) -> dict[str, Any]:
        record = {"kind": kind, **values}
        self.records.append(record)
        return record

    def flush(self) -> None:
        if self.path is not None:
            lines = (json.dumps(record, allow_nan=True) for record in self.records)
            atomic_write_text(self.path, "".join(line + "\n" for line in lines))

    def losses(self) -> list[float]:
        """The training loss of every step, in order (what the resume tests compare)."""
        return [record["loss"] for record in self.records if record["kind"] == "train"]

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        """``(tokens seen, loss)`` points: ``train`` (each step), ``train_eval`` and ``val``
        (each evaluation); non-finite losses are left out."""
        points: dict[str, list[tuple[int, float]]] = {"train": [], "train_eval": [], "val": []}
        for record in self.records:
            for key, name in (("loss", "train"), ("train_loss_eval", "train_eval")):
                if record["kind"] in ("train", "eval") and key in record:
                    _add(points[name], record["tokens"], record[key])
            if record["kind"] == "eval":
                _add(points["val"], record["tokens"], record.get("val_loss"))
        return points


def _add(points: list[tuple[int, float]], tokens: int, value: float | None) -> None:
    if value is not None and math.isfinite(value):
        points.append((tokens, value))
