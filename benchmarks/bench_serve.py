"""Serving throughput: ``scratchllm serve`` with 1, 4 and 8 concurrent streams against the same
requests served one after another, at gpt2-small on the CPU, through HTTP.

A random gpt2-small checkpoint (GPT-2's layout and tokenizer; the weights do not change the
work) is served by a real ``scratchllm serve`` subprocess with 8 slots. Each request is a
streamed greedy completion of a ~32-token prompt, 64 new tokens, end-of-text allowed (random
weights rarely pick it; the tokens counted are those the server reports in ``usage``).

- **one after another** (the peer): the 8 requests in turn, each alone in the engine;
- **N concurrent streams**: N client threads share the same 8 requests, so up to N sequences
  decode together in one batched step.

Reported: aggregate generated tokens per second over the wall time of all 8 requests, the
ratio to one after another (the issue's target: >= 4x at 8 streams), time to first token and
the gaps between streamed chunks (per-token latency), 50th and 90th percentiles.

    python benchmarks/bench_serve.py                 # gpt2-small, 2 threads
    python benchmarks/bench_serve.py --quick         # 4 layers: a smoke run
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REPOSITORY_ROOT,
    load_average,
    machine_line,
    pin_threads,
    use_shared_tiktoken_cache,
)

PROMPTS = [
    "The history of the city begins in the early years of the nineteenth century, when a small",
    "In the morning the fishermen went down to the harbour and found that the boats had been",
    "Scientists at the university announced on Tuesday that they had discovered a new way to",
    "She opened the letter slowly, knowing that whatever it said would change the way she",
    "The committee met for three hours yesterday to discuss the budget for the coming year and",
    "After the storm had passed, the villagers gathered in the square to count the damage and",
    "The recipe calls for two cups of flour, a pinch of salt, and enough cold water to make a",
    "When the train finally arrived at the station, the passengers rushed out onto the platform",
]
NEW_TOKENS = 64


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stream_one(port: int, prompt: str) -> dict[str, float]:
    """One streamed completion: its first-token time, chunk gaps and token count."""
    body = json.dumps({"prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    connection.request("POST", "/v1/completions", body=body,
                       headers={"Content-Type": "application/json"})  # fmt: skip
    response = connection.getresponse()
    arrivals, tokens = [], 0
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        elif chunk["choices"] and chunk["choices"][0]["text"]:
            arrivals.append(time.perf_counter())
    connection.close()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    return {"ttft": arrivals[0] - start if arrivals else float("nan"), "gaps": gaps,
            "tokens": tokens}  # fmt: skip


def run_scenario(port: int, streams: int) -> dict[str, object]:
    """The 8 requests over ``streams`` client threads: wall time and every request's timings."""
    pending = list(PROMPTS)
    lock = threading.Lock()
    results: list[dict[str, float]] = []

    def client() -> None:
        while True:
            with lock:
                if not pending:
                    return
                prompt = pending.pop(0)
            result = stream_one(port, prompt)
            with lock:
                results.append(result)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    tokens = sum(r["tokens"] for r in results)
    return {"wall": wall, "tokens": tokens, "results": results}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 layers instead of 12")
    args = parser.parse_args()
    threads = pin_threads(args.threads)
    use_shared_tiktoken_cache()
    load_before = load_average()

    import torch

    from scratchllm.config import GPTConfig
    from scratchllm.model.gpt import GPT
    from scratchllm.tokenizer import get_tokenizer
    from scratchllm.weights.checkpoint import save_checkpoint

    layers = 4 if args.quick else 12
    config = GPTConfig.from_name("gpt2-small", qkv_bias=True, tie_weights=True, dropout=0.0,
                                 n_layer=layers)  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-")) / "gpt2-small-random"
    save_checkpoint(folder, GPT(config, generator=torch.Generator().manual_seed(0)),
                    get_tokenizer("gpt2"))  # fmt: skip
    port = free_port()
    path = f"{REPOSITORY_ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": path}
    server = subprocess.Popen(
        [sys.executable, "-m", "scratchllm", "serve", "--checkpoint", str(folder), "--port",
         str(port), "--max-batch", "8", "--device", "cpu"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        stream_one(port, PROMPTS[0])  # warm up (allocations, first-call overheads)
        scenarios = {"one after another": 1, "4 concurrent streams": 4,
                     "8 concurrent streams": 8}  # fmt: skip
        measured = {name: run_scenario(port, streams) for name, streams in scenarios.items()}
    finally:
        server.terminate()
        server.wait(timeout=30)

    words = len(PROMPTS[0].split())
    print(f"scratchllm serve, random gpt2-small ({layers} layers), greedy, 8 requests x "
          f"{NEW_TOKENS} new tokens, ~{words}-word prompts, 8 slots, fp32 CPU")  # fmt: skip
    base = measured["one after another"]
    base_rate = base["tokens"] / base["wall"]
    print(f"{'scenario':<22} {'tokens':>6} {'wall s':>7} {'tok/s':>7} {'vs 1-by-1':>9} "
          f"{'TTFT p50':>9} {'p90':>6} {'gap p50':>8} {'p90':>6}")  # fmt: skip
    for name, result in measured.items():
        rate = result["tokens"] / result["wall"]
        ttft = [r["ttft"] for r in result["results"]]
        gaps = [g for r in result["results"] for g in r["gaps"]]
        print(f"{name:<22} {result['tokens']:>6} {result['wall']:>7.2f} {rate:>7.1f} "
              f"{rate / base_rate:>8.2f}x {percentile(ttft, 50) * 1e3:>7.0f}ms "
              f"{percentile(ttft, 90) * 1e3:>4.0f}ms {percentile(gaps, 50) * 1e3:>6.0f}ms "
              f"{percentile(gaps, 90) * 1e3:>4.0f}ms")  # fmt: skip
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info
                    if line.startswith("model name")), "unknown CPU")  # fmt: skip
    print(f"CPU: {cpu}; {machine_line(threads, load_before)}")


if __name__ == "__main__":
    main()
