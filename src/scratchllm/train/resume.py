"""What a resumed run must match, and the optimizer state it loads back.

A run resumes only as itself: the same data, model, optimizer settings and batch. How long it
runs, how often it evaluates and where it prints may change (``RESUMABLE_CHANGES``); any other
change is refused, with ``--init-from`` (a new run from the weights) offered instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from scratchllm.config import RunOptions
from scratchllm.errors import CheckpointError, ConfigError

# What may change when a run is resumed: how long it runs, how often it reports, and where.
# Everything else (data, model, optimizer, batch) would silently make it another run.
RESUMABLE_CHANGES = frozenset(
    {"name", "out_dir", "max_steps", "epochs", "eval_every", "eval_batches", "sample_prompt",
     "sample_tokens", "checkpoint_every", "keep_last", "background_checkpoints",
     "keep_freed_memory", "device", "precision", "compile", "threads"}
)  # fmt: skip


def check_resumable(
    saved: RunOptions, config: RunOptions, *, what: str = "the run was started with"
) -> None:
    """Refuse to resume with a config that changes more than ``RESUMABLE_CHANGES``.

    ``saved`` is what the run was started with (its ``train.toml``, and the copy inside each
    checkpoint, so an edited ``train.toml`` is caught too); ``what`` says which in the message.
    """
    if type(saved) is not type(config):
        raise ConfigError(
            f"cannot resume a {type(saved).__name__} run as a {type(config).__name__} run"
        )
    changed = [
        name
        for name in config.field_names()
        if getattr(saved, name) != getattr(config, name) and name not in RESUMABLE_CHANGES
    ]
    if changed:
        details = ", ".join(
            f"{name} {getattr(saved, name)!r} -> {getattr(config, name)!r}" for name in changed
        )
        raise ConfigError(
            f"cannot change {details} when resuming ({what} the first values; changing them "
            "would make it another run); start a new run from this one's weights with "
            "--init-from instead"
        )


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: Any, where: Path) -> None:
    """Load AdamW's state, checking that every moment has its parameter's shape."""
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"{where}: its optimizer state does not fit the model ({error})"
        ) from None
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    for parameter in parameters:
        for name, value in optimizer.state.get(parameter, {}).items():
            if name != "step" and value.shape != parameter.shape:
                raise CheckpointError(
                    f"{where}: optimizer state {name} has shape {tuple(value.shape)} for a "
                    f"parameter of shape {tuple(parameter.shape)}"
                )
