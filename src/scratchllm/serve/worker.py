"""The engine's thread: decode steps for every request at once, tokens handed to each request.

The continuous-batching ``Engine`` (``generate/engine.py``) is not thread-safe beyond its
``submit`` and ``cancel``; one thread steps it. ``EngineWorker`` is that thread and the bridge
to the server's asyncio event loop:

- ``submit`` (on the event loop) hands the engine a request's sequences and returns one
  ``asyncio.Queue`` on which their ``TokenEvent`` s arrive;
- the thread loops: while the engine has work it takes a step (admitting waiting sequences
  into free slots, one batched decode step for all active ones) and puts each event on its
  request's queue with ``call_soon_threadsafe``; idle, it sleeps until the next submission;
- ``cancel`` (a client gone, a stop string reached) frees a sequence's slot at the next step.

It also keeps the counters ``/metrics`` reports. A failure inside a step is not swallowed: it
reaches every waiting request as an ``EngineFailure`` on its queue (the server answers 500) and
the thread goes on with the next requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scratchllm.serve.protocol import APIError

TOKENS_PER_SECOND_WINDOW = 10.0  # seconds of recent tokens the tokens/s gauge averages


class EngineFailure(Exception):
    """A decode step raised; the request cannot finish."""


@dataclass
class Counters:
    """What ``/metrics`` reports (monotonic counters, plus the recent token times)."""

    requests: dict[str, int] = field(default_factory=dict)  # by endpoint
    errors: dict[int, int] = field(default_factory=dict)  # by HTTP status
    prompt_tokens: int = 0
    generated_tokens: int = 0
    cancellations: int = 0
    recent: deque[tuple[float, int]] = field(default_factory=deque)  # (time, tokens) per step

    def tokens_per_second(self, now: float) -> float:
        while self.recent and self.recent[0][0] < now - TOKENS_PER_SECOND_WINDOW:
            self.recent.popleft()
        return sum(tokens for _, tokens in self.recent) / TOKENS_PER_SECOND_WINDOW


class EngineWorker:
    """One thread stepping the engine; see the module docstring."""

    def __init__(self, engine: Any, *, max_queue: int = 64) -> None:
        self.engine = engine
        self.max_queue = max_queue
        self.counters = Counters()
        self._lock = threading.Lock()
        self._targets: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="scratchllm-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)

    @property
    def queue_depth(self) -> int:
        """Sequences waiting for a slot."""
        return self.engine.num_waiting

    @property
    def active(self) -> int:
        """Sequences being decoded."""
        return self.engine.num_active

    def submit(
        self, prompts: Sequence[tuple[Sequence[int], Any]]
    ) -> tuple[list[int], asyncio.Queue]:
        """Submit one request's sequences (``(prompt_ids, SamplingParams)`` each); their events
        arrive on the returned queue. 429 when the waiting queue is full."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        with self._lock:
            if self.engine.num_waiting + len(prompts) > self.max_queue:
                raise APIError(
                    429,
                    f"the server is busy: {self.engine.num_waiting} sequences are waiting for "
                    f"one of its {self.engine.max_batch} slots (at most {self.max_queue} may "
                    "wait); retry shortly",
                    type="server_error",
                    code="queue_full",
                )
            ids = []
            for prompt_ids, params in prompts:
                request_id = self.engine.submit(prompt_ids, params)
                self._targets[request_id] = (loop, queue)
                ids.append(request_id)
        self._wake.set()
        return ids, queue

    def cancel(self, request_ids: Sequence[int]) -> None:
        """Stop these sequences (those still running); counted once per request."""
        with self._lock:
            running = [rid for rid in request_ids if rid in self._targets]
            for request_id in running:
                self.engine.cancel(request_id)
        if running:
            self._wake.set()

    def note_cancellation(self) -> None:
        self.counters.cancellations += 1

    def _run(self) -> None:
        while not self._stopping:
            if not self.engine.has_work:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                continue
            try:
                events = self.engine.step()
            except Exception as error:  # noqa: BLE001 - every waiting request must hear of it
                self._fail_all(error)
                continue
            tokens = sum(event.token is not None for event in events)
            if tokens:
                self.counters.generated_tokens += tokens
                self.counters.recent.append((time.monotonic(), tokens))
            with self._lock:
                for event in events:
                    target = self._targets.get(event.request_id)
                    if event.finish_reason is not None:
                        self._targets.pop(event.request_id, None)
                    if target is not None:
                        loop, queue = target
                        loop.call_soon_threadsafe(queue.put_nowait, event)

    def _fail_all(self, error: Exception) -> None:
        with self._lock:
            targets, self._targets = self._targets, {}
            for request_id in targets:
                with contextlib.suppress(Exception):  # already failing
                    self.engine.cancel(request_id)
        failure = EngineFailure(f"a decode step failed: {type(error).__name__}: {error}")
        for loop, queue in {id(q): (loop, q) for loop, q in targets.values()}.values():
            loop.call_soon_threadsafe(queue.put_nowait, failure)
        # the engine's state after a failed step is unknown: drain it so the next requests start
        # clean (the cancellations above are emitted by the next step)
        with contextlib.suppress(Exception):  # nothing more to do for these
            while self.engine.has_work:
                self.engine.step()
