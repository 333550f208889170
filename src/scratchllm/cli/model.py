"""The model itself: ``model`` (a preset's size, an untrained checkpoint) and ``attention``."""

from __future__ import annotations

import argparse
from pathlib import Path

from scratchllm.cli import options
from scratchllm.config import PRESETS, GPTConfig


def add_commands(commands: argparse._SubParsersAction) -> None:
    model = commands.add_parser(
        "model",
        help="describe a model preset (parameters, memory); optionally save it untrained",
        description="Print a preset's shape, parameter count (untied and with the output head "
        "tied to the token embedding) and memory footprint. With --save, also write a randomly "
        "initialised checkpoint that `generate` and `attention` accept.",
    )
    model.add_argument(
        "--preset", default="gpt2-small", choices=list(PRESETS), help="default gpt2-small"
    )
    model.add_argument("--save", type=Path, metavar="DIR", help="write an untrained checkpoint")
    options.add_tokenizer_option(
        model,
        default="gpt2",
        purpose="with --save: the tokenizer to store, whose size sets vocab_size: ",
    )
    options.add_seed_option(model, default=123, seeds="the initial weights of --save")
    model.set_defaults(run=run_model)

    attention = commands.add_parser(
        "attention",
        help="draw one head's attention weights for a prompt as a heatmap",
        description="Run a model on a prompt and draw the attention weights of one head of "
        "one layer (tokens on both axes) to an image. Without --checkpoint it uses an untrained "
        "cpu-tiny model with GPT-2's tokenizer (near-uniform causal weights).",
    )
    attention.add_argument("--prompt", required=True, help="the text to attend over")
    options.add_checkpoint_option(
        attention, without="an untrained cpu-tiny model with GPT-2's tokenizer"
    )
    attention.add_argument("--layer", type=int, default=0, help="layer, from 0 (default 0)")
    attention.add_argument("--head", type=int, default=0, help="head, from 0 (default 0)")
    options.add_output_option(
        attention, what=options.IMAGE_OUTPUT_HELP, default=Path("attention.png")
    )
    attention.set_defaults(run=run_attention)


def run_model(args: argparse.Namespace) -> None:
    from scratchllm.model.gpt import describe_model

    if args.save is None:
        print(describe_model(args.preset))
        return
    from scratchllm.weights.checkpoint import CONFIG_FILE

    options.check_output_folder(args.save, marker=CONFIG_FILE, kind="checkpoint")
    tokenizer = options.resolve_tokenizer(args.tokenizer, corpus=None)
    config = GPTConfig.from_name(args.preset, vocab_size=tokenizer.vocab_size)
    # the figures of the model saved, sized to its tokenizer; describe_model calls a config
    # that is not a preset "custom", so it gets the preset's name back
    print(args.preset + describe_model(config).removeprefix("custom"))
    with options.writing_output(args.save):
        path = _save_untrained(config, tokenizer, args.save, seed=args.seed)
    print(f"saved an untrained {args.preset} (vocab {config.vocab_size:,}) to {path}")


def _save_untrained(config, tokenizer, directory: Path, *, seed: int) -> Path:
    import torch

    from scratchllm.model.gpt import GPT
    from scratchllm.weights.checkpoint import save_checkpoint

    model = GPT(config, generator=torch.Generator().manual_seed(seed))
    return save_checkpoint(directory, model, tokenizer)


def run_attention(args: argparse.Namespace) -> None:
    from scratchllm.viz import attention_heatmap, image_format

    options.check_output_file(args.output, example="attention.png")
    image_format(args.output)  # an unsupported suffix fails now, not after the model ran
    if args.checkpoint is not None:
        from scratchllm.weights.checkpoint import load_checkpoint

        model, tokenizer = load_checkpoint(options.checkpoint_path(args.checkpoint))
    else:
        import torch

        from scratchllm.model.gpt import GPT

        tokenizer = options.resolve_tokenizer("gpt2", corpus=None)
        config = GPTConfig.from_name("cpu-tiny", vocab_size=tokenizer.vocab_size)
        model = GPT(config, generator=torch.Generator().manual_seed(123))
    with options.writing_output(args.output):
        path = attention_heatmap(
            args.prompt,
            tokenizer=tokenizer,
            model=model,
            layer=args.layer,
            head=args.head,
            output=args.output,
        )
    print(f"wrote {path}")
