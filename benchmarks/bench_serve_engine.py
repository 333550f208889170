"""Serving throughput: 8 requests through the continuous-batching ``Engine`` at 1, 4 and 8
concurrent streams, against the same 8 requests served one after another with
``generate_tokens`` (the single-sequence generator, its KV cache on).

The model is a gpt2-small-shaped random GPT (fp32, ``qkv_bias=True``, tied head, no dropout;
``--layers`` makes it shallower if 12 layers are too slow). Each request has a prompt of about
``--prompt-tokens`` random ids (lengths vary by a few tokens, as real prompts do) and asks for
``--new-tokens`` greedy tokens with no stop id, so every run produces the same number of
tokens. All 8 requests arrive at once (time 0):

- *sequential*: ``generate_tokens`` for request 1, then request 2, ...; a request's first token
  waits for every request before it;
- *engine, N streams*: ``Engine(max_batch=N)``; all 8 are submitted at time 0 and a loop calls
  ``step()`` until done, so at most N are decoded together and the rest queue.

Reported per run: wall time of the whole batch, aggregate tokens/s (all new tokens / wall
time), the speed-up over sequential, time to first token (from time 0, p50 / p90 over the 8
requests), and the per-token latency (the gap between two consecutive tokens of one request,
p50 / p90 over all gaps). The engine's tokens are checked equal to the sequential ones.

Runs take turns in every repeat (sequential, 1, 4, 8, sequential, ...) and the best wall time
of each is kept, so load from elsewhere hits all of them.

    python benchmarks/bench_serve_engine.py                # gpt2-small, 8 x (32 + 64), greedy
    python benchmarks/bench_serve_engine.py --quick        # 2 layers, 16 new tokens, one repeat
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_average, machine_line, pin_threads, print_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument(
        "--streams", default="1,4,8", help="engine max_batch values, comma-separated"
    )
    parser.add_argument("--layers", type=int, default=12, help="gpt2-small has 12")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 layers, 16 new tokens, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.layers, args.new_tokens, args.repeats = 2, 16, 1
    threads = pin_threads(args.threads)
    load_before = load_average()

    import torch

    from scratchllm.config import GPTConfig
    from scratchllm.model.gpt import GPT

    torch.set_num_threads(threads)
    config = GPTConfig.from_name(
        "gpt2-small", qkv_bias=True, tie_weights=True, dropout=0.0, n_layer=args.layers
    )
    model = GPT(config, generator=torch.Generator().manual_seed(0)).eval()
    generator = torch.Generator().manual_seed(1)
    prompts = [
        torch.randint(
            0, config.vocab_size, (args.prompt_tokens - 4 + index % 9,), generator=generator
        ).tolist()
        for index in range(args.requests)
    ]
    streams = [int(value) for value in args.streams.split(",")]
    runners = {"sequential (generate_tokens)": lambda: serve_sequentially(model, prompts, args)}
    for count in streams:
        runners[f"engine, {count} streams"] = lambda count=count: serve_with_engine(
            model, prompts, args, count
        )

    serve_with_engine(model, prompts[:2], argparse.Namespace(new_tokens=4), 2)  # warm-up
    serve_sequentially(model, prompts[:1], argparse.Namespace(new_tokens=4))
    best: dict[str, Timings] = {}
    for _ in range(args.repeats):
        for name, runner in runners.items():
            timings = runner()
            if name not in best or timings.wall < best[name].wall:
                best[name] = timings

    reference = best["sequential (generate_tokens)"]
    total_tokens = args.requests * args.new_tokens
    rows = []
    for name, timings in best.items():
        first = sorted(timings.first_token)
        gaps = sorted(timings.gaps)
        rows.append(
            [
                name,
                f"{timings.wall:.2f}",
                f"{total_tokens / timings.wall:.1f}",
                f"{reference.wall / timings.wall:.2f}x",
                f"{1000 * percentile(first, 50):.0f} / {1000 * percentile(first, 90):.0f}",
                f"{1000 * percentile(gaps, 50):.1f} / {1000 * percentile(gaps, 90):.1f}",
                "all" if timings.tokens == reference.tokens else "DIFFER",
            ]
        )
    parameters = sum(parameter.numel() for parameter in model.parameters())
    print(
        f"serving, gpt2-small shape with {config.n_layer} layers ({parameters:,} parameters, "
        f"fp32, random weights), {args.requests} requests arriving together, prompts "
        f"{min(map(len, prompts))}-{max(map(len, prompts))} tokens, {args.new_tokens} new "
        f"tokens each, greedy; best of {args.repeats}"
    )
    print_table(
        [
            "run",
            "seconds",
            "tokens/s",
            "vs sequential",
            "first token ms p50 / p90",
            "per-token ms p50 / p90",
            "ids equal",
        ],
        rows,
    )
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, torch threads {torch.get_num_threads()}")
    print(machine_line(threads, load_before))


class Timings:
    """One run: wall time, each request's time to first token (from time 0), the gaps between
    consecutive tokens of a request, and the tokens (to compare runs)."""

    def __init__(self, wall: float, stamps: list[list[float]], tokens: list[list[int]]) -> None:
        self.wall = wall
        self.first_token = [times[0] for times in stamps]
        self.gaps = [
            later - earlier
            for times in stamps
            for earlier, later in zip(times, times[1:], strict=False)
        ]
        self.tokens = tokens


def serve_sequentially(model, prompts, args) -> Timings:
    from scratchllm.generate import generate_tokens

    stamps: list[list[float]] = []
    tokens: list[list[int]] = []
    start = time.perf_counter()
    for prompt in prompts:
        times, ids = [], []
        for token in generate_tokens(model, prompt, max_new_tokens=args.new_tokens):
            times.append(time.perf_counter() - start)
            ids.append(token)
        stamps.append(times)
        tokens.append(ids)
    return Timings(time.perf_counter() - start, stamps, tokens)


def serve_with_engine(model, prompts, args, max_batch: int) -> Timings:
    from scratchllm.generate import Engine, SamplingParams

    longest = max(map(len, prompts)) + args.new_tokens
    engine = Engine(model, max_batch=max_batch, max_length=longest)  # caches built untimed
    params = SamplingParams(max_new_tokens=args.new_tokens)
    start = time.perf_counter()
    order = {engine.submit(prompt, params): index for index, prompt in enumerate(prompts)}
    stamps: list[list[float]] = [[] for _ in prompts]
    tokens: list[list[int]] = [[] for _ in prompts]
    while engine.has_work:
        events = engine.step()
        now = time.perf_counter() - start
        for event in events:
            if event.token is not None:
                stamps[order[event.request_id]].append(now)
                tokens[order[event.request_id]].append(event.token)
    return Timings(time.perf_counter() - start, stamps, tokens)


def percentile(sorted_values: list[float], percent: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(percent / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def cpu_model() -> str:
    """The CPU's model name, as ``lscpu`` gives it (or the platform's processor string)."""
    import platform
    import subprocess

    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
