"""The learning-rate schedule: linear warmup, then cosine decay to a floor (or constant).

Warmup lets AdamW's moment estimates settle before full-size updates; cosine decay then lowers
the rate smoothly so the last steps refine rather than jump (Loshchilov & Hutter 2017, as
GPT-3 and nanoGPT train). A pure function of the step, so a resumed run needs no scheduler
state beyond the step itself.
"""

from __future__ import annotations

import math

from scratchllm.errors import ConfigError


def learning_rate(
    step: int,
    *,
    max_lr: float,
    min_lr: float,
    warmup_steps: int,
    total_steps: int,
    schedule: str = "cosine",
) -> float:
    """The learning rate of optimizer update ``step`` (counted from 0) of ``total_steps``.

    - warmup, ``step < warmup_steps``: ``max_lr * (step + 1) / warmup_steps``, so the first
      update is not wasted at 0 and the last warmup update runs at ``max_lr``;
    - then ``"constant"``: ``max_lr``; ``"cosine"``: from ``max_lr`` down a half cosine,
      reaching ``min_lr`` at ``total_steps`` (and staying there beyond it).

    >>> [learning_rate(s, max_lr=1.0, min_lr=0.0, warmup_steps=4, total_steps=8)
    ...  for s in range(9)]
    [0.25, 0.5, 0.75, 1.0, 1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 0.0]
    >>> learning_rate(3, max_lr=4e-4, min_lr=0.0, warmup_steps=0, total_steps=90,
    ...               schedule="constant")
    0.0004
    """
    if schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return max_lr
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 0 or step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / decay_steps  # 0 at the peak, -> 1 at total_steps
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
