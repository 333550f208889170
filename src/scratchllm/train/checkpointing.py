"""Checkpoints written in the background, so that training goes on while the disk works.

A gpt2-small checkpoint is 2 GB: the weights and AdamW's two moments. A disk that takes it at
~100 MB/s (this project's test machine, once the page cache is full) needs ~20 s, and the
chapter-5 run saves about ten times. ``CheckpointWriter.submit`` takes a job that writes one
checkpoint from a *copy* of the state (``cpu_copy``: ~1 s of memory copying), runs it in a
thread, and returns; the next step trains meanwhile, while the thread mostly waits on the
disk (measured on the chapter-5 config: the run with its checkpoints took no longer than the
benchmark loop that writes none).

Nothing is lost, and nothing is half-written:

- the job writes into a hidden temporary folder and renames it into place (``run_dir.py``),
  so a ``kill -9`` mid-write leaves the previous checkpoint as the newest complete one;
- at most one write is in flight: ``submit`` first waits for the previous one, and the loop
  waits for the last one before it returns;
- a failed write (a full disk) is raised from the next ``submit`` or ``wait`` as a
  ``CheckpointError``, never dropped;
- the thread is not a daemon: a Python exit waits for a write in progress.

``background=False`` runs each job in ``submit`` itself: no copy, the same files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from scratchllm.errors import CheckpointError


def cpu_copy(value: Any) -> Any:
    """``value`` (tensors in nested dicts, lists and tuples) with every tensor copied to CPU
    memory: a snapshot that later in-place updates of the originals do not reach."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: cpu_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(item) for item in value)
    return value


class CheckpointWriter:
    """Runs checkpoint-writing jobs one at a time, each in a thread (or inline)."""

    def __init__(self, *, background: bool = True) -> None:
        self.background = background
        self.last: Path | None = None  # the newest checkpoint known to be complete
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._result: Path | None = None

    def submit(self, job: Callable[[], Path]) -> None:
        """Start ``job`` (which writes a checkpoint and returns its folder) once the previous
        job is done; inline when not in the background."""
        self.wait()
        if not self.background:
            self.last = job()
            return
        self._thread = threading.Thread(target=self._run, args=(job,), name="checkpoint-writer")
        self._thread.start()

    def wait(self) -> Path | None:
        """Block until no write is in flight; the newest complete checkpoint (or None)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            error, self._error = self._error, None
            if error is not None:
                raise CheckpointError(
                    f"writing a checkpoint failed ({type(error).__name__}: {error}); the newest "
                    f"complete one is {self.last}"
                ) from error
            self.last = self._result
        return self.last

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, job: Callable[[], Path]) -> None:
        try:
            self._result = job()
        except BaseException as error:  # handed to the main thread by wait()
            self._error = error
