"""Helpers shared by the benchmark scripts: threads, machine state, timing, corpora, tables.

Every benchmark prints, next to its table, the thread count it pinned, whether the machine was
quiet (1-minute load average below half the cores before the run, and after it apart from the
benchmark's own threads) and the corpus sizes, so that a number is never read without its
conditions.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPOSITORY_ROOT.parent / "shared" / "data"

T = TypeVar("T")


def pin_threads(threads: int = 1) -> int:
    """Make Rust and C peers (tiktoken, HF tokenizers, BLAS) use ``threads`` threads.

    Must run before those libraries start their thread pools, i.e. before importing them.
    """
    os.environ["RAYON_NUM_THREADS"] = str(threads)  # tiktoken's and tokenizers' rayon pools
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads


def use_shared_tiktoken_cache() -> None:
    """Read GPT-2's vocabulary from the shared data folder when tiktoken has no cache set."""
    cache = SHARED_DATA / "tiktoken-cache"
    if "TIKTOKEN_CACHE_DIR" not in os.environ and cache.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


def load_average() -> float:
    """The 1-minute load average (0.0 where the OS cannot tell)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def machine_line(threads: int, load_before: float) -> str:
    """One line on the conditions: threads, cores, load before and after, quiet or not."""
    cores = os.cpu_count() or 1
    load_after = load_average()
    # quiet: under half the cores busy before we started, and after, besides our own threads
    quiet = load_before < cores / 2 and load_after < cores / 2 + threads
    verdict = "quiet" if quiet else "BUSY (other work was running: timings are noisy)"
    return (
        f"threads: {threads} (RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS')}, "
        f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM')}); cores: {cores}; "
        f"load average {load_before:.2f} before, {load_after:.2f} after: {verdict}; "
        f"Python {sys.version.split()[0]}"
    )


def timed(function: Callable[[], T]) -> tuple[float, T]:
    """Run ``function`` once: (seconds, result). The garbage collector stays on, as in use."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def best_time(
    function: Callable[[], T], *, repeats: int = 3, setup: Callable[[], Any] | None = None
) -> tuple[float, T]:
    """The fastest of ``repeats`` runs of ``function`` (seconds) and its last result.

    ``setup`` runs before each repeat, untimed (e.g. to start from a cold cache).
    """
    return round_robin({"only": function}, repeats=repeats, setup=setup)["only"]


def round_robin(
    functions: dict[str, Callable[[], Any]],
    *,
    repeats: int = 3,
    setup: Callable[[], Any] | None = None,
) -> dict[str, tuple[float, Any]]:
    """Best time and last result of each function, running them in turn in every round.

    Interleaving puts ours and the peer under the same conditions on a shared machine, where
    the load changes from one second to the next. ``setup`` runs untimed before each round.
    """
    best: dict[str, tuple[float, Any]] = {}
    for _ in range(repeats):
        if setup is not None:
            setup()
        for name, function in functions.items():
            seconds, result = timed(function)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, result)
            else:
                best[name] = (best[name][0], result)
    return best


def corpus_documents(name: str, *, max_bytes: int | None = None) -> list[str]:
    """The documents of ``python-docs`` or ``python-stdlib``, the first ``max_bytes`` of them.

    Uses ``scratchllm.corpora.load_corpus``: python-docs is ``pydoc_data.topics`` in sorted key
    order; python-stdlib the interpreter's stdlib ``.py`` files without tests, sorted by path.
    With ``max_bytes`` the last document kept is cut short (at a character) to fit.
    """
    from scratchllm.corpora import load_corpus

    documents = []
    room = max_bytes
    for document in load_corpus(name).documents():
        if room is not None and room <= 0:
            break
        data = document.text.encode("utf-8")
        if room is not None:
            data = data[:room]
            room -= len(data)
        documents.append(data.decode("utf-8", errors="ignore"))  # a cut character is dropped
    return documents


def megabytes(text: str | Sequence[str]) -> float:
    """UTF-8 size in MB (10**6 bytes)."""
    texts = [text] if isinstance(text, str) else text
    return sum(len(part.encode("utf-8")) for part in texts) / 1e6


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table (pastes into benchmarks/README.md as is)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
