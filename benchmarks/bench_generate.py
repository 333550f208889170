"""Generation speed at gpt2-small, batch 1: ours with the KV cache, ours without, and Hugging
Face's ``GPT2LMHeadModel.generate`` (with its cache).

All three run the same random weights: our ``GPT`` is built from a seed with GPT-2's own
layout (``qkv_bias=True``, tied head, no dropout) and copied into the HF model through
``scratchllm.weights.hf_gpt2`` (strict load), so the work per token is identical. Decoding is
greedy with no end-of-text stop (HF: ``do_sample=False``, ``min_new_tokens=max_new_tokens``),
so each run produces exactly the requested number of tokens; the table also says whether the
three produced the same ids (random weights have near-ties, so a late divergence from float
rounding is possible and is reported, not hidden).

Time is wall clock for the whole call (prefill + all decode steps), best of ``--repeats`` taken
in turns (ours, HF, ours, ...); the uncached loop is quadratic and runs once.
fp32, CPU, ``--threads`` torch threads.

At batch 1 a decode step is a chain of matrix-vector products that read all ~500 MB of fp32
weights once per token, so both implementations are bound by memory bandwidth, not FLOPs. Our
``GPT`` stores its ``nn.Linear`` weights input-major (see ``model/gpt.py``), the memory order of
GPT-2's ``Conv1D``, which MKL streams faster for a single row of activations.

    python benchmarks/bench_generate.py                  # 200 new tokens (the issue's setting)
    python benchmarks/bench_generate.py --quick          # 40 new tokens, no repeats
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_average, machine_line, pin_threads, print_table  # noqa: E402

PROMPT = "Every effort moves you"  # the walkthrough's generation prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-uncached", action="store_true", help="the slow quadratic loop")
    parser.add_argument("--quick", action="store_true", help="40 tokens, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.new_tokens, args.repeats = 40, 1
    threads = pin_threads(args.threads)
    load_before = load_average()

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from scratchllm.config import GPTConfig
    from scratchllm.generate import generate_tokens
    from scratchllm.model.gpt import GPT
    from scratchllm.weights.hf_gpt2 import to_hf_state_dict

    torch.set_num_threads(threads)
    config = GPTConfig.from_name("gpt2-small", qkv_bias=True, tie_weights=True, dropout=0.0)
    ours = GPT(config, generator=torch.Generator().manual_seed(0)).eval()
    hf_config = GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context_length,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        layer_norm_epsilon=config.layer_norm_eps,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
    )
    hf = GPT2LMHeadModel(hf_config).eval()
    hf.load_state_dict(to_hf_state_dict(ours.state_dict(), config), strict=True)

    prompt = [6109, 3626, 6100, 345]  # "Every effort moves you" in GPT-2's BPE
    new = args.new_tokens

    def run_ours(use_cache: bool) -> list[int]:
        return list(generate_tokens(ours, prompt, max_new_tokens=new, use_cache=use_cache))

    def run_hf() -> list[int]:
        input_ids = torch.tensor([prompt])
        with torch.inference_mode():
            output = hf.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=new,
                min_new_tokens=new,
                do_sample=False,
                use_cache=True,
                pad_token_id=config.vocab_size - 1,
            )
        return output[0, len(prompt) :].tolist()

    runners = {
        "ours, KV cache": lambda: run_ours(True),
        "HF generate, its cache": run_hf,
    }
    for runner in runners.values():  # warm-up: first-call allocations and kernel choices
        runner()
    results = best_of_interleaved(runners, args.repeats)
    if not args.skip_uncached:
        results.update(best_of_interleaved({"ours, no cache": lambda: run_ours(False)}, 1))

    reference_ids = results["HF generate, its cache"][1]
    hf_seconds = results["HF generate, its cache"][0]
    rows = []
    for name, (seconds, ids) in results.items():
        same = _same_prefix(ids, reference_ids)
        rows.append(
            [
                name,
                f"{seconds:.2f}",
                f"{1000 * seconds / new:.1f}",
                f"{new / seconds:.1f}",
                f"{hf_seconds / seconds:.2f}x",
                "all" if same == new else f"first {same}",
            ]
        )
    print(
        f"generation, gpt2-small ({sum(p.numel() for p in ours.parameters()):,} parameters, "
        f"fp32, random weights), batch 1, prompt {len(prompt)} tokens, {new} new tokens, greedy"
    )
    print_table(["run", "seconds", "ms/token", "tokens/s", "vs HF", "ids equal to HF"], rows)
    print(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}")
    print(machine_line(threads, load_before))


def best_of_interleaved(
    runners: dict[str, Callable[[], list[int]]], repeats: int
) -> dict[str, tuple[float, list[int]]]:
    """Best wall time and last ids of each runner; the runners take turns in every repeat, so
    a burst of load from elsewhere hits all of them rather than one."""
    results = {name: (float("inf"), []) for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            start = time.perf_counter()
            ids = runner()
            results[name] = (min(results[name][0], time.perf_counter() - start), ids)
    return results


def _same_prefix(first: list[int], second: list[int]) -> int:
    """How many leading ids two runs share."""
    count = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        count += 1
    return count


if __name__ == "__main__":
    main()
