"""Memory of the sliding-window dataset: ours (zero-copy) vs the walkthrough's GPTDatasetV1.

The walkthrough's dataset builds two tensors per window up front, so it holds about
``2 * max_length / stride`` int64 copies of the corpus (plus a Python and a tensor object per
tensor). ``SlidingWindowDataset`` holds only the token array and cuts windows on demand.

Corpus: ``python-stdlib`` tokenized with GPT-2's BPE (tiktoken) through ``prepare`` and cached
in a temporary folder, so later runs skip tokenization.

Method: every measurement runs in a fresh subprocess that imports everything and loads the
tokens first, then reads ``/proc/self/statm`` before and after building the dataset (and after
one full pass over it, for ours: reading a memmap brings its pages in). "RSS" is the growth of
the resident set; "anon" is resident minus shared, i.e. without file-backed pages such as the
memmap's, which the kernel can drop at will. "storage" adds up tensor storage bytes (the
peer) or the token array's bytes (ours), an analytic check on the RSS figure.

Rows marked "slice" build the peer on the first tokens only, because the full corpus would not
fit in memory; bytes per token are then extrapolated linearly (the peer's memory is exactly
proportional to its window count), and the table says so.

    python benchmarks/bench_window_memory.py            # the full run (a minute or two)
    python benchmarks/bench_window_memory.py --quick    # a slice of the corpus, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
# offline: use the GPT-2 vocabulary in the shared test data when tiktoken has no cache of its own
SHARED_TIKTOKEN_CACHE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tiktoken-cache"
if SHARED_TIKTOKEN_CACHE.is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED_TIKTOKEN_CACHE))
CACHE_DIR = (
    Path(tempfile.gettempdir())
    / "scratchllm-bench"
    / f"python-stdlib-gpt2-py{sys.version_info[0]}{sys.version_info[1]}"
)


# ---- the peer: the walkthrough's dataset, as written there ---------------------------------------


def build_book_dataset(token_ids: list[int], max_length: int, stride: int):
    """The walkthrough's GPTDatasetV1 storage: one input and one target tensor per window."""
    import torch

    input_ids, target_ids = [], []
    for i in range(0, len(token_ids) - max_length, stride):
        input_ids.append(torch.tensor(token_ids[i : i + max_length]))
        target_ids.append(torch.tensor(token_ids[i + 1 : i + max_length + 1]))
    return input_ids, target_ids


# ---- measuring, in a fresh process --------------------------------------------------------------


def resident_bytes() -> tuple[int, int]:
    """(resident, resident minus shared) of this process, in bytes, from /proc/self/statm.

    Garbage is collected and freed heap memory handed back to the kernel first, so memory
    freed earlier neither hides new allocations (by being reused) nor counts as held.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    fields = Path("/proc/self/statm").read_text().split()
    resident, shared = int(fields[1]), int(fields[2])
    return resident * PAGE_BYTES, (resident - shared) * PAGE_BYTES


def measure(implementation: str, max_length: int, stride: int, token_count: int) -> dict:
    """Build one dataset over the first ``token_count`` cached tokens and report its memory."""
    import numpy as np
    import torch

    from scratchllm.data import SlidingWindowDataset, read_tokens

    tokens = read_tokens(CACHE_DIR / "train.bin").tokens[:token_count]
    # the input each implementation starts from is made before the baseline: the walkthrough
    # receives a list of ids (and drops it after __init__), ours a memmap or an int64 array
    source = tokens.tolist() if implementation == "book" else tokens
    # warm-up: run both code paths once, so that library code pages faulted in on first use
    # (file-backed, so they count in RSS) land before the baseline
    warm_up = np.arange(300, dtype=np.uint16)
    build_book_dataset(warm_up.tolist(), 4, 1)
    SlidingWindowDataset(warm_up, max_length=4, stride=1)[0]
    SlidingWindowDataset(warm_up[:8], max_length=4, stride=1)[0]
    before, before_anon = resident_bytes()
    after_pass = after_pass_anon = None
    if implementation == "book":
        inputs, targets = build_book_dataset(source, max_length, stride)
        windows = len(inputs)
        storage = sum(t.untyped_storage().nbytes() for t in inputs + targets)
    else:
        if implementation == "ours-int64":
            # what create_dataloader_from_text holds: the ids as one in-memory int64 array
            source = np.array(source, dtype=np.int64)
        dataset = SlidingWindowDataset(source, max_length=max_length, stride=stride)
        windows = len(dataset)
        storage = dataset.tokens.nbytes
    after, after_anon = resident_bytes()
    if implementation != "book":
        for index in range(windows):  # one epoch: every page of the array is read once
            dataset[index]
        after_pass, after_pass_anon = resident_bytes()
        after_pass, after_pass_anon = after_pass - before, after_pass_anon - before_anon
    return {
        "implementation": implementation,
        "max_length": max_length,
        "stride": stride,
        "tokens": token_count,
        "windows": windows,
        "rss": after - before,
        "anon": after_anon - before_anon,
        "rss_after_pass": after_pass,
        "anon_after_pass": after_pass_anon,
        "storage": storage,
        "torch_threads": torch.get_num_threads(),
    }


def run_child(implementation: str, max_length: int, stride: int, token_count: int) -> dict:
    command = [sys.executable, __file__, "--child", implementation, str(max_length), str(stride)]
    result = subprocess.run(
        [*command, str(token_count)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"measurement {command[3:]} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---- the corpus cache ---------------------------------------------------------------------------


def ensure_tokens() -> int:
    """Tokenize python-stdlib once into CACHE_DIR; returns its token count."""
    from scratchllm.corpora import load_corpus
    from scratchllm.data import load_prepared, prepare
    from scratchllm.errors import ScratchLLMError
    from scratchllm.tokenizer import get_tokenizer

    tokenizer = get_tokenizer("gpt2")
    try:
        prepared = load_prepared(CACHE_DIR)
        if prepared.tokenizer.fingerprint == tokenizer.fingerprint:
            return len(prepared.train)
    except ScratchLLMError:
        pass  # no cache yet, or a damaged one: make it again
    print(f"tokenizing python-stdlib with GPT-2 BPE into {CACHE_DIR} (once) ...", flush=True)
    report = prepare(
        load_corpus("python-stdlib"),
        get_tokenizer("gpt2"),
        CACHE_DIR,
        val_fraction=0.0,
        show_progress=sys.stderr.isatty(),
    )
    print(
        f"  {report.documents:,} documents, {report.characters:,} characters, "
        f"{report.tokens:,} tokens in {report.elapsed_seconds:.1f} s",
        flush=True,
    )
    return report.tokens


# ---- the report ---------------------------------------------------------------------------------


def machine_line() -> str:
    import torch

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"load average {load}; python {sys.version.split()[0]}, torch {torch.__version__}"
    )


def megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 200k-token slice, seconds")
    parser.add_argument(
        "--stride-one-tokens",
        type=int,
        default=100_000,
        help="tokens for the peer at stride 1 (its memory is extrapolated from this slice)",
    )
    args = parser.parse_args()

    total = ensure_tokens()
    corpus_tokens = min(total, 200_000) if args.quick else total
    stride_one_tokens = min(args.stride_one_tokens, 20_000 if args.quick else total)
    print(machine_line())
    print(f"corpus: python-stdlib, {total:,} GPT-2 tokens; measured on {corpus_tokens:,}")
    print("each row: a fresh subprocess; growth of /proc/self/statm after building the dataset")
    print()

    runs = [
        ("book", 256, 128, corpus_tokens),
        ("ours-memmap", 256, 128, corpus_tokens),
        ("ours-int64", 256, 128, corpus_tokens),
        ("book", 256, 1, stride_one_tokens),
        ("ours-memmap", 256, 1, corpus_tokens),
    ]
    rows = [run_child(*run) for run in runs]

    header = (
        f"{'implementation':<20} {'stride':>6} {'tokens':>10} {'windows':>10} {'built MB':>9} "
        f"{'epoch MB':>9} {'anon MB':>8} {'storage MB':>10} {'B/tok RSS':>10} {'B/tok stor':>10}"
    )
    print(header)
    print("-" * len(header))
    rss_per_token: dict[tuple[str, int], float] = {}
    storage_per_token: dict[tuple[str, int], float] = {}
    for row in rows:
        key = row["implementation"], row["stride"]
        # what the dataset holds at its largest: for ours, after an epoch has paged the array in
        held = max(row["rss"], row["rss_after_pass"] or 0)
        rss_per_token[key] = held / row["tokens"]
        storage_per_token[key] = row["storage"] / row["tokens"]
        anon = max(row["anon"], row["anon_after_pass"] or 0)
        name = row["implementation"] + (" (slice)" if row["tokens"] < corpus_tokens else "")
        print(
            f"{name:<20} {row['stride']:>6} {row['tokens']:>10,} {row['windows']:>10,} "
            f"{megabytes(row['rss']):>9} {megabytes(row['rss_after_pass']):>9} "
            f"{megabytes(anon):>8} {megabytes(row['storage']):>10} "
            f"{rss_per_token[key]:>10,.1f} {storage_per_token[key]:>10,.1f}"
        )
    print()
    print(
        "built / epoch: RSS growth after building the dataset / after one pass over all windows\n"
        "anon: the larger of the two without file-backed pages (the memmap's are file-backed)\n"
        "B/tok RSS: the larger RSS growth per token; B/tok stor: tensor storage (walkthrough) or\n"
        "the token array (ours) per token."
    )
    print()
    for stride in (128, 1):
        book_key, ours_key = ("book", stride), ("ours-memmap", stride)
        line = (
            f"stride {stride:>3}: walkthrough / ours-memmap = "
            f"{rss_per_token[book_key] / rss_per_token[ours_key]:,.0f}x by RSS, "
            f"{storage_per_token[book_key] / storage_per_token[ours_key]:,.0f}x by storage"
        )
        if ("ours-int64", stride) in rss_per_token:
            ratio = rss_per_token[book_key] / rss_per_token["ours-int64", stride]
            line += f"; walkthrough / ours-int64 = {ratio:,.0f}x by RSS"
        print(line)
        if stride == 1:
            extrapolated = rss_per_token[book_key] * total / 2**30
            print(
                f"  the walkthrough at stride 1 on all {total:,} tokens would need about "
                f"{extrapolated:,.1f} GiB (extrapolated linearly from its "
                f"{stride_one_tokens:,}-token slice; not run)"
            )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        implementation, *numbers = sys.argv[2:]
        print(json.dumps(measure(implementation, *(int(n) for n in numbers))))
    else:
        main()
