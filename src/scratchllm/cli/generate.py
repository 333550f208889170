"""``generate``: continue a prompt with a checkpoint, over a KV cache."""

from __future__ import annotations

import argparse

from scratchllm.cli import options


def add_commands(commands: argparse._SubParsersAction) -> None:
    from scratchllm.generate import SamplingConfig

    defaults = SamplingConfig()
    generate = commands.add_parser(
        "generate",
        help="continue a prompt with a model",
        description="Generate text from a checkpoint, one token at a time over a KV cache. "
        "Temperature 0 is greedy (deterministic); raise it and add --top-k/--top-p for variety.",
    )
    options.add_checkpoint_option(generate)
    generate.add_argument("--prompt", default="", help="text to continue (default: empty)")
    generate.add_argument(
        "--max-new-tokens",
        type=int,
        default=defaults.max_new_tokens,
        help=f"at most this many tokens (default {defaults.max_new_tokens})",
    )
    generate.add_argument(
        "--temperature",
        type=float,
        default=defaults.temperature,
        help=f"0 = greedy (default {defaults.temperature})",
    )
    generate.add_argument("--top-k", type=int, help="sample among the k most likely tokens")
    generate.add_argument(
        "--top-p", type=float, help="sample among the most likely tokens summing to p (nucleus)"
    )
    generate.add_argument("--seed", type=int, help="seed the sampler for reproducible output")
    generate.add_argument(
        "--stop", action="append", metavar="TEXT", help="stop before this text (repeatable)"
    )
    generate.add_argument("--stream", action="store_true", help="print tokens as they are produced")
    generate.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace) -> None:
    from scratchllm.generate import SamplingConfig, generate_with_config
    from scratchllm.weights.checkpoint import load_checkpoint

    sampling = SamplingConfig(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        stop_strings=tuple(args.stop or ()),
    )
    model, tokenizer = load_checkpoint(options.checkpoint_path(args.checkpoint))
    pieces = generate_with_config(model, tokenizer, args.prompt, sampling)
    if args.stream:
        print(args.prompt, end="", flush=True)
        for piece in pieces:
            print(piece, end="", flush=True)
        print()
    else:
        print(args.prompt + "".join(pieces))
