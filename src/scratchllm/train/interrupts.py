"""Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM (a scheduler's "time is up").

While ``StopRequest.installed()`` is active, the first signal only records itself; the loop
finishes its step, saves a checkpoint and returns. A second signal raises
``KeyboardInterrupt`` at once (the last checkpoint stays intact: every write is atomic).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


class StopRequest:
    """Which signal asked the loop to stop (``signal`` is None until one does)."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.signal: str | None = None
        self.log = log

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signal = signal.Signals(signum).name
        self.log(f"{self.signal} received: saving a checkpoint after this step")

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM inside the block; the previous handlers come back after."""
        if threading.current_thread() is not threading.main_thread():
            yield self  # only the main thread may set signal handlers
            return
        previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
