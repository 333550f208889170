"""``generate``: continue a prompt with a checkpoint, over a KV cache."""

from __future__ import annotations

import argparse

from scratchllm.cli import options
from scratchllm.cli.config_flags import add_config_flags, given_fields
from scratchllm.config import SamplingConfig


def add_commands(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser(
        "generate",
        help="continue a prompt with a model",
        description="Generate text from a checkpoint, one token at a time over a KV cache. "
        "Temperature 0 is greedy (deterministic); raise it and add --top-k/--top-p for variety.",
    )
    options.add_checkpoint_option(generate)
    generate.add_argument(
        "--prompt",
        default="",
        help="text to continue (default: empty); with a checkpoint finetuned on instructions, "
        "the instruction, put into its prompt format",
    )
    generate.add_argument(
        "--input", default="", help="with an instruction checkpoint: the instruction's input"
    )
    generate.add_argument(
        "--raw",
        action="store_true",
        help="continue --prompt as it is, even when the checkpoint has a prompt format",
    )
    add_config_flags(
        generate.add_argument_group("sampling (SamplingConfig fields)"), SamplingConfig
    )
    generate.add_argument("--stream", action="store_true", help="print tokens as they are produced")
    generate.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace) -> None:
    from scratchllm.finetune.prompts import get_prompt_format
    from scratchllm.generate import generate_with_config
    from scratchllm.weights.checkpoint import read_checkpoint

    given = given_fields(args, SamplingConfig)
    sampling = SamplingConfig(**given)
    unused = [name for name in ("top_k", "top_p", "seed") if name in given]
    if sampling.temperature == 0 and unused:
        options.warn(
            f"{options.flags(unused)} {'does' if len(unused) == 1 else 'do'} nothing at "
            "temperature 0, which always picks the most likely token; give --temperature "
            "above 0 to sample"
        )
    checkpoint = read_checkpoint(options.checkpoint_path(args.checkpoint))
    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    if checkpoint.prompt_format is not None and not args.raw:
        # an instruction model answers its prompt format: the text is the instruction
        prompt_format = get_prompt_format(checkpoint.prompt_format)
        prompt = prompt_format.prompt(args.prompt, args.input)
        pieces = generate_with_config(model, tokenizer, prompt, sampling)
        print("".join(pieces).strip())
        return
    if args.input:
        options.warn("--input is for checkpoints with a prompt format; this one has none")
    pieces = generate_with_config(model, tokenizer, args.prompt, sampling)
    if args.stream:
        print(args.prompt, end="", flush=True)
        for piece in pieces:
            print(piece, end="", flush=True)
        print()
    else:
        print(args.prompt + "".join(pieces))
