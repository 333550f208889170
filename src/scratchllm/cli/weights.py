"""Weights in and out: ``download`` (GPT-2's released weights) and ``convert`` (to and from
Hugging Face's GPT-2 layout)."""

from __future__ import annotations

import argparse
from pathlib import Path

from scratchllm.cli import options


def add_commands(commands: argparse._SubParsersAction) -> None:
    download = commands.add_parser(
        "download",
        help="download GPT-2's released weights as a checkpoint",
        description="Fetch one of OpenAI's GPT-2 models from the Hugging Face Hub at a pinned "
        "commit (through Hugging Face's cache: resumed transfers, HF_ENDPOINT, HF_HUB_OFFLINE), "
        "check model.safetensors by SHA-256, and convert it into a scratchllm checkpoint. "
        "Afterwards the name works wherever a checkpoint is accepted, e.g. `scratchllm "
        "generate --checkpoint gpt2`.",
        epilog="Sizes: gpt2 124M parameters (548 MB to download), gpt2-medium 355M (~1.5 GB), "
        "gpt2-large 774M (~3.25 GB), gpt2-xl 1.56B (~6.4 GB); docs/pretrained-weights.md has "
        "the memory each needs.",
    )
    download.add_argument("name", choices=options.PRETRAINED_NAMES, help="which model")
    options.add_output_option(
        download,
        what="the checkpoint folder to write",
        default_text="<cache>/models/NAME, where the name finds it; the cache is "
        "$SCRATCHLLM_CACHE_DIR, else $XDG_CACHE_HOME/scratchllm, else ~/.cache/scratchllm",
    )
    download.add_argument(
        "--revision",
        metavar="COMMIT",
        help="a commit of the Hub repository instead of the pinned one (checked against the "
        "Hub's own SHA-256 only)",
    )
    download.add_argument("--no-progress", action="store_true", help="no progress bars")
    download.set_defaults(run=run_download)

    convert = commands.add_parser(
        "convert",
        help="convert weights from or to Hugging Face's GPT-2 layout",
        description="--from hf SRC: a Hugging Face GPT-2 folder (config.json + model.safetensors "
        "or pytorch_model.bin, with its tokenizer files), or a single model.safetensors / "
        "pytorch_model.bin (read without unpickling code), into a scratchllm checkpoint. "
        "--to hf CHECKPOINT: a scratchllm checkpoint into a folder that transformers' "
        "AutoModelForCausalLM and AutoTokenizer load with no scratchllm code.",
        epilog="Examples: scratchllm convert --from hf ./gpt2-hf -o out/gpt2;  "
        "scratchllm convert --to hf out/runs/RUN -o out/hf-export",
    )
    direction = convert.add_mutually_exclusive_group(required=True)
    direction.add_argument("--from", dest="source_format", choices=("hf",), help="import")
    direction.add_argument("--to", dest="target_format", choices=("hf",), help="export")
    convert.add_argument(
        "source",
        metavar="SRC",
        help="with --from hf: a Hugging Face folder or weights file; with --to hf: a checkpoint "
        "folder, a run folder (its latest checkpoint) or a pretrained name",
    )
    options.add_output_option(convert, what="the folder to write (must not hold files)")
    convert.add_argument(
        "--tokenizer",
        metavar="SPEC",
        help="with --from hf: the tokenizer when the source has none ('gpt2', 'gpt2:PATH' or a "
        "saved tokenizer folder; default: the source's files, else GPT-2's for a 50,257 "
        "vocabulary)",
    )
    convert.add_argument(
        "--n-head",
        type=options.positive_int,
        metavar="N",
        help="with --from hf and a bare weights file: attention heads (default width / 64)",
    )
    convert.set_defaults(run=run_convert)


def run_download(args: argparse.Namespace) -> None:
    from scratchllm.weights.hub import download_pretrained

    path = download_pretrained(
        args.name,
        args.output,
        revision=args.revision,
        show_progress=not args.no_progress,
        log=print,
    )
    print(f"{args.name}: checkpoint in {path}")
    hint = args.name if args.output is None else str(path)
    print(f'try: scratchllm generate --checkpoint {hint} --prompt "Every effort moves you"')


def run_convert(args: argparse.Namespace) -> None:
    from scratchllm.weights.convert import convert_from_hf, convert_to_hf

    if args.source_format == "hf":
        path = convert_from_hf(
            Path(args.source), args.output, tokenizer=args.tokenizer, n_head=args.n_head, log=print
        )
        print(f"wrote the checkpoint {path}")
        return
    for name, value in (("--tokenizer", args.tokenizer), ("--n-head", args.n_head)):
        if value is not None:
            options.warn(f"{name} is for --from hf; the checkpoint brings its own")
    checkpoint = options.checkpoint_path(args.source)
    path = convert_to_hf(checkpoint, args.output)
    print(f"wrote {path}: transformers.AutoModelForCausalLM.from_pretrained({str(path)!r})")
