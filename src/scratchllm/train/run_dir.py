"""The run folder: one training run's config, data, metrics, plot and checkpoints.

::

    out/runs/<name>/
      train.toml              the effective TrainConfig (what --resume reads back)
      run.json                what it resolved to: model config, batch sizes, steps, baseline
      data/                   token files, when the run tokenized a corpus itself
      metrics.jsonl           one JSON record per step and per evaluation
      loss.png                train and val loss against tokens seen
      checkpoints/
        step-0000500/         a checkpoint folder (weights/checkpoint.py) + training_state.pt
        step-0000600/
        best.json             {"step": 500, "val_loss": ...}: the best by val loss

A checkpoint is written into a hidden ``.step-N.tmp`` folder and renamed into place when
complete, so ``kill -9`` at any moment leaves only complete ``step-N`` folders (a stale temp
folder is cleared at the next start). The last ``keep_last`` are kept, and the best.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from scratchllm.errors import CheckpointError
from scratchllm.io import atomic_write_text
from scratchllm.weights.checkpoint import CONFIG_FILE, TRAINING_STATE_FILE

RUN_CONFIG_FILE = "train.toml"
RUN_INFO_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"
DATA_DIR = "data"
CHECKPOINTS_DIR = "checkpoints"
BEST_FILE = "best.json"
STEP_PREFIX = "step-"

C = TypeVar("C")  # a RunOptions subclass


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives (zero-padded, so names sort by step)."""
    return run_dir / CHECKPOINTS_DIR / f"{STEP_PREFIX}{step:07d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints of a run, ``(step, folder)`` by increasing step."""
    found = []
    folder = run_dir / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    for path in folder.iterdir():
        suffix = path.name.removeprefix(STEP_PREFIX)
        if path.name.startswith(STEP_PREFIX) and suffix.isdigit() and (path / CONFIG_FILE).exists():
            found.append((int(suffix), path))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's checkpoint with the highest step, or None."""
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1][1] if checkpoints else None


def publish_checkpoint(temporary: Path, final: Path) -> None:
    """Rename the finished ``temporary`` folder to ``final``: the commit point of a save."""
    if final.exists():  # the same step saved again (e.g. interrupted right after a save)
        shutil.rmtree(final)
    os.replace(temporary, final)
    _fsync_directory(final.parent)


def temporary_checkpoint_dir(run_dir: Path, step: int) -> Path:
    final = checkpoint_dir(run_dir, step)
    temporary = final.with_name(f".{final.name}.tmp")
    if temporary.exists():
        shutil.rmtree(temporary)
    return temporary


def remove_incomplete(run_dir: Path) -> None:
    """Delete temp folders that a killed run left behind."""
    folder = run_dir / CHECKPOINTS_DIR
    if folder.is_dir():
        for path in folder.glob(".*.tmp"):
            shutil.rmtree(path, ignore_errors=True)


def prune_checkpoints(run_dir: Path, *, keep_last: int) -> None:
    """Delete all but the last ``keep_last`` checkpoints and the best one."""
    best = best_checkpoint(run_dir)
    for _, path in list_checkpoints(run_dir)[:-keep_last]:
        if path != best:
            shutil.rmtree(path, ignore_errors=True)


def record_best(run_dir: Path, *, step: int, val_loss: float) -> None:
    record = {"step": step, "val_loss": val_loss, "checkpoint": checkpoint_dir(run_dir, step).name}
    atomic_write_text(run_dir / CHECKPOINTS_DIR / BEST_FILE, json.dumps(record) + "\n")


def best_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the lowest val loss so far, or None if none is recorded."""
    path = run_dir / CHECKPOINTS_DIR / BEST_FILE
    try:
        step = json.loads(path.read_text(encoding="utf-8"))["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    folder = checkpoint_dir(run_dir, step)
    return folder if (folder / CONFIG_FILE).exists() else None


def new_run_dir(out_dir: Path, name: str, *, log: Callable[[str], None] | None = None) -> Path:
    """A fresh run folder: ``out_dir/name``, or ``out_dir/<start time>`` when ``name`` is empty.

    An existing run is never overwritten: resume it, or choose another name. A folder that an
    earlier start left without any checkpoint (it failed during setup, or was killed before its
    first save) holds nothing to resume, so it is cleared and used again.
    """
    if not name:
        name = time.strftime("%Y%m%d-%H%M%S")
        base, suffix = name, 1
        while (out_dir / name).exists():  # two runs started within one second
            suffix += 1
            name = f"{base}-{suffix}"
    run_dir = out_dir / name
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} exists and is not a folder; pick another --name")
    if run_dir.exists() and any(run_dir.iterdir()):
        if not is_failed_start(run_dir):
            raise CheckpointError(
                f"run folder {run_dir} already exists; continue it with --resume {run_dir}, "
                "or pick another --name"
            )
        if log is not None:
            log(f"{run_dir} holds an earlier start that saved no checkpoint: starting it afresh")
        for path in run_dir.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


# what a run folder holds before its first checkpoint, besides an empty checkpoints/ folder
_SETUP_FILES = {RUN_CONFIG_FILE, RUN_INFO_FILE, METRICS_FILE, PLOT_FILE, DATA_DIR, CHECKPOINTS_DIR}


def is_failed_start(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a run folder that never saved a checkpoint (and nothing else)."""
    names = {path.name for path in run_dir.iterdir()}
    return names <= _SETUP_FILES and not list_checkpoints(run_dir)


def read_run_config(run_dir: Path, config_type: type[C]) -> C:
    """The config a run folder was started with (its ``train.toml``), or a clear error."""
    path = run_dir / RUN_CONFIG_FILE
    if not path.is_file():
        if run_dir.is_dir() and is_failed_start(run_dir):
            raise CheckpointError(
                f"{run_dir} holds a start that failed before its first checkpoint: nothing to "
                "resume; run the same command without --resume to start it afresh"
            )
        raise CheckpointError(
            f"{run_dir} is not a training run folder (no {RUN_CONFIG_FILE}); pass the folder "
            "that `scratchllm train` created under out/runs/"
        )
    return config_type.from_toml(path)


def is_run_dir(path: Path) -> bool:
    return (path / RUN_CONFIG_FILE).is_file()


def find_latest_run(out_dir: Path) -> Path | None:
    """The run under ``out_dir`` whose newest checkpoint was written last, or None."""
    newest, newest_time = None, -1.0
    if not out_dir.is_dir():
        return None
    for run_dir in out_dir.iterdir():
        checkpoint = latest_checkpoint(run_dir) if run_dir.is_dir() else None
        if checkpoint is not None:
            written = (checkpoint / CONFIG_FILE).stat().st_mtime
            if written > newest_time:
                newest, newest_time = run_dir, written
    return newest


def resolve_checkpoint(spec: str | os.PathLike[str]) -> Path:
    """The checkpoint a user means: a checkpoint folder as given, the latest checkpoint of a
    run folder, or for a pretrained name given as text (``gpt2`` ... ``gpt2-xl``) the
    downloaded copy (``weights/hub.py``; a missing one is an error that says how to get it)."""
    if isinstance(spec, str):
        from scratchllm.weights.hub import resolve_pretrained

        spec = resolve_pretrained(spec)
    path = Path(spec)
    if (path / CONFIG_FILE).is_file():
        return path
    if is_run_dir(path):
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            raise CheckpointError(f"run {path} has no checkpoint yet; train it for longer")
        return checkpoint
    return path  # load_checkpoint says what is wrong with it


def resumable_checkpoint(run_dir: Path) -> Path:
    """The latest checkpoint of ``run_dir`` that holds a training state."""
    if not is_run_dir(run_dir):
        raise CheckpointError(
            f"{run_dir} is not a training run folder (no {RUN_CONFIG_FILE}); pass the folder "
            "that `scratchllm train` created under out/runs/"
        )
    remove_incomplete(run_dir)
    for _, path in reversed(list_checkpoints(run_dir)):
        if (path / TRAINING_STATE_FILE).is_file():
            return path
    raise CheckpointError(
        f"run {run_dir} has no checkpoint to resume from; run the same command without "
        "--resume to start it afresh"
    )


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable across a power loss (POSIX only)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
