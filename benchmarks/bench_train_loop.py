"""The whole training loop: ours vs the walkthrough's ``train_model_simple`` (chapter 5).

Both train GPT-2 small (context 256, qkv_bias False, untied head, dropout 0.1) on "The
Verdict" with batch 2, AdamW lr 4e-4 / weight decay 0.1, evaluating every 5 steps on 5
batches, from ``torch.manual_seed(123)``: the published chapter-5 run. Ours runs
``configs/the-verdict-gpt2-small.toml``; the peer is the walkthrough's own package
(``llms-from-scratch``: ``pip install -c constraints.txt --no-deps llms-from-scratch``).
Reported: training tokens per second of wall time over the loop (evaluations and samples
included, as each loop does them; our checkpoint writes left out, since the reference writes
none), the same over the training steps alone, the ratios, and the losses each reached.
The loops evaluate alike (every 5 steps, 5 batches) but sample differently: ours greedily
after every evaluation through the KV cache, the reference once per epoch without one; ours
also evaluates once before the first step. It also reports the tokens (and, at the loop's
average throughput, the seconds) each needs to first reach the published train loss (0.4, as
measured at evaluations); ``--extra-epochs`` lets ours train on past ``--epochs`` to get there.

``--memory`` instead measures the peak memory of one gpt2-small training step (forward,
backward, AdamW) at batch 2 and context 256 for ours and HF ``GPT2LMHeadModel``, each in a
fresh process: peak RSS growth on the CPU, ``max_memory_allocated`` on CUDA.

    python benchmarks/bench_train_loop.py               # 1 epoch each (~4 min on 2 cores)
    python benchmarks/bench_train_loop.py --epochs 10   # the full run each (~25 min)
    python benchmarks/bench_train_loop.py --epochs 10 --extra-epochs 4   # ours until ~0.4
    python benchmarks/bench_train_loop.py --memory
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

from _common import SHARED_DATA, load_average, machine_line, use_shared_tiktoken_cache

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "the-verdict-gpt2-small.toml")
PUBLISHED_TRAIN_LOSS = 0.4


def run_reference(epochs: int, text: str, seed: int = 123) -> dict:
    import tiktoken
    import torch
    from llms_from_scratch import ch05
    from llms_from_scratch.ch02 import create_dataloader_v1
    from llms_from_scratch.ch04 import GPTModel

    config = {
        "vocab_size": 50257, "context_length": 256, "emb_dim": 768, "n_heads": 12,
        "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False,
    }  # fmt: skip
    split = int(0.9 * len(text))
    loaders = [
        create_dataloader_v1(part, batch_size=2, max_length=256, stride=256, drop_last=last,
                             shuffle=last, num_workers=0)
        for part, last in ((text[:split], True), (text[split:], False))
    ]  # fmt: skip
    torch.manual_seed(seed)  # the walkthrough's 123; it also decides shuffles and dropout
    model = GPTModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
    # the walkthrough's loop, unchanged; its evaluations and samples are timed apart by
    # wrapping the two module functions it calls for them
    side_seconds = [0.0]

    def timed_side(function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                side_seconds[0] += time.perf_counter() - started

        return wrapper

    ch05.evaluate_model = timed_side(ch05.evaluate_model)
    ch05.generate_and_print_sample = timed_side(ch05.generate_and_print_sample)
    started = time.perf_counter()
    train_losses, val_losses, tokens = ch05.train_model_simple(
        model, *loaders, optimizer, torch.device("cpu"), num_epochs=epochs, eval_freq=5,
        eval_iter=5, start_context="Every effort moves you",
        tokenizer=tiktoken.get_encoding("gpt2"),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    reached = next(
        (seen for loss, seen in zip(train_losses, tokens, strict=True)
         if loss <= PUBLISHED_TRAIN_LOSS),
        None,
    )  # fmt: skip
    return {
        "seconds": seconds,
        "step_seconds": seconds - side_seconds[0],
        "tokens": epochs * 9 * 2 * 256,
        "train_loss": train_losses[-1],
        "val_loss": val_losses[-1],
        "tokens_to_published": reached,
    }


def run_ours(epochs: int, out_dir: str, seed: int = 123, extra_epochs: int = 0) -> dict:
    from scratchllm.config import TrainConfig
    from scratchllm.train import train
    from scratchllm.train.metrics import MetricsLog
    from scratchllm.train.run import Run

    # the reference loop writes no checkpoint; ours would write two of 2 GB (weights + AdamW)
    Run._save = lambda self: None

    config = TrainConfig.from_toml(CONFIG).replace(
        corpus=str(SHARED_DATA / "the-verdict.txt"), epochs=float(epochs + extra_epochs),
        out_dir=out_dir,
        checkpoint_every=10**6, threads=int(os.environ.get("BENCH_THREADS", "2")), seed=seed,
    )  # fmt: skip
    result = train(config, show_progress=False)
    records = MetricsLog.resume(result.run_dir / "metrics.jsonl", up_to_step=10**9).records
    evals = [r for r in records if r["kind"] == "eval" and r["step"] > 0]
    step_seconds = sum(r["seconds"] for r in records if r["kind"] == "train")
    reached = next(
        (r["tokens"] for r in evals if r["train_loss_eval"] <= PUBLISHED_TRAIN_LOSS), None
    )
    # the losses after `epochs` epochs: with the constant rate and a data order that depends
    # only on (seed, epoch), the first steps of a longer run are exactly those of this one
    horizon = epochs * records[0]["batches_per_epoch"]
    at_horizon = next(r for r in evals if r["step"] >= horizon)
    return {
        "seconds": result.elapsed_seconds,
        "step_seconds": step_seconds,
        "tokens": result.tokens_seen,
        "train_loss": at_horizon["train_loss_eval"],
        "val_loss": at_horizon["val_loss"],
        "tokens_to_published": reached,
    }


def memory_child(peer: str) -> None:
    """One training step in this (fresh) process; prints the peak memory it added."""
    import torch
    import torch.nn.functional as F

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if peer == "ours":
        from scratchllm.config import GPTConfig
        from scratchllm.model.gpt import GPT

        model = GPT(GPTConfig(context_length=256, dropout=0.0))

        def forward(ids):
            return model(ids)
    else:
        import transformers

        hf_config = transformers.GPT2Config(
            n_positions=256, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            tie_word_embeddings=False,
        )  # fmt: skip
        model = transformers.GPT2LMHeadModel(hf_config)

        def forward(ids):
            return model(input_ids=ids, use_cache=False).logits

    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
    ids = torch.randint(0, 50257, (2, 257), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):  # the second step has AdamW's state allocated
        loss = F.cross_entropy(forward(ids[:, :-1]).flatten(0, 1).float(), ids[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    print(f"{peak:.0f}")


def memory_benchmark() -> None:
    peaks = {}
    for peer in ("ours", "HF GPT2LMHeadModel"):
        output = subprocess.run(
            [sys.executable, __file__, "--memory-child", "ours" if peer == "ours" else "hf"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        peaks[peer] = float(output.stdout.strip().splitlines()[-1])
    print("peak memory of a gpt2-small training step (batch 2, context 256, fp32, AdamW):")
    for peer, mib in peaks.items():
        print(f"  {peer:<20} {mib:8.0f} MiB")
    print(f"  HF / ours: {peaks['HF GPT2LMHeadModel'] / peaks['ours']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per loop (default 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seed", type=int, default=123, help="seeds both runs (default 123, the published one)"
    )
    parser.add_argument(
        "--only", choices=("ours", "reference"), help="run one of the two loops (default both)"
    )
    parser.add_argument(
        "--extra-epochs",
        type=int,
        default=0,
        help="ours trains this many epochs past --epochs, to see when it reaches the published "
        "train loss; its losses are still reported at --epochs (default 0)",
    )
    parser.add_argument("--memory", action="store_true", help="peak memory of one step instead")
    parser.add_argument("--memory-child", choices=("ours", "hf"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["BENCH_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    load_before = load_average()
    if args.memory:
        memory_benchmark()
        print(machine_line(args.threads, load_before))
        return
    use_shared_tiktoken_cache()
    text = (SHARED_DATA / "the-verdict.txt").read_text(encoding="utf-8")
    results = {}
    # the reference first: our loop tunes the process's malloc (runtime.keep_freed_memory),
    # which would otherwise carry over to the reference's run
    if args.only != "ours":
        try:
            results["llms-from-scratch"] = run_reference(args.epochs, text, args.seed)
        except ImportError as error:
            print(f"llms-from-scratch: skipped ({error})")
    if args.only != "reference":
        with tempfile.TemporaryDirectory() as out_dir:
            results["ours"] = run_ours(args.epochs, out_dir, args.seed, args.extra_epochs)
    print(
        f"\nchapter-5 run, {args.epochs} epoch(s) of 9 steps x 512 tokens, gpt2-small, CPU, "
        f"seed {args.seed}:"
    )
    for name, result in results.items():
        reached = result["tokens_to_published"]
        # time to the published loss at the loop's average throughput (evaluations included)
        reach = (
            "not reached"
            if reached is None
            else f"{reached:,} tokens, ~{reached * result['seconds'] / result['tokens']:.0f} s"
        )
        print(
            f"  {name:<18} loop {result['seconds']:6.1f} s "
            f"({result['tokens'] / result['seconds']:4.0f} tok/s), training steps alone "
            f"{result['step_seconds']:6.1f} s ({result['tokens'] / result['step_seconds']:4.0f}"
            f" tok/s); train loss {result['train_loss']:.3f}, val loss {result['val_loss']:.3f}"
            f" after {args.epochs} epochs; train loss <= {PUBLISHED_TRAIN_LOSS}: {reach}"
        )
    if len(results) == 2:
        ours, reference = results["ours"], results["llms-from-scratch"]

        def speedup(key: str) -> float:  # tokens per second, ours over the reference's
            return (ours["tokens"] / ours[key]) / (reference["tokens"] / reference[key])

        print(
            f"  throughput ours / reference: loop {speedup('seconds'):.2f}x, "
            f"training steps {speedup('step_seconds'):.2f}x"
        )
    print(machine_line(args.threads, load_before))


if __name__ == "__main__":
    main()
