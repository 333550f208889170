"""Text to tokens: ``corpora``, ``train-tokenizer``, ``tokenize`` and ``prepare``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scratchllm.cli import options
from scratchllm.cli.config_flags import add_config_flags, given_fields
from scratchllm.config import DEFAULT_BPE_VOCAB, TrainConfig
from scratchllm.errors import ScratchLLMError

_RUN_PREFIX = "run_"


def add_commands(commands: argparse._SubParsersAction) -> None:
    corpora = commands.add_parser("corpora", help="list the named corpora")
    corpora.set_defaults(run=run_corpora)

    train = commands.add_parser(
        "train-tokenizer",
        help="train a tokenizer on a corpus and save it",
        description="Train our byte-level BPE (or the word-level tokenizer) on a corpus and save "
        "it to a folder that --tokenizer accepts everywhere.",
    )
    options.add_corpus_options(train)
    train.add_argument("--kind", choices=("bpe", "simple"), default="bpe", help="default: bpe")
    # no defaults here: --kind simple refuses them, so the command must see what was given
    train.add_argument(
        "--vocab-size",
        type=options.positive_int,
        metavar="N",
        help="BPE vocabulary size: 256 bytes + merges + special tokens "
        f"(default {DEFAULT_BPE_VOCAB})",
    )
    train.add_argument(
        "--pattern",
        help="BPE pre-tokenisation regex: 'gpt2', 'gpt4' or a custom regex (default gpt2)",
    )
    train.add_argument(
        "--special",
        action="append",
        metavar="TOKEN",
        help="special token, repeatable (default: <|endoftext|>; the simple tokenizer also "
        "gets <|unk|>)",
    )
    options.add_output_option(train, what="folder to save into")
    train.set_defaults(run=run_train_tokenizer)

    tokenize = commands.add_parser(
        "tokenize",
        help="show how a tokenizer splits text",
        description="Encode text and print its ids, tokens and counts. Text comes from the "
        "argument, --file, or standard input.",
    )
    tokenize.add_argument("text", nargs="?", help="text to encode (default: standard input)")
    tokenize.add_argument("--file", type=Path, help="read the text from this file")
    options.add_tokenizer_option(tokenize, default="gpt2")
    tokenize.add_argument(
        "--no-special",
        action="store_true",
        help="treat special-token text such as <|endoftext|> as plain text",
    )
    tokenize.add_argument("--json", action="store_true", help="machine-readable output")
    tokenize.set_defaults(run=run_tokenize)

    prepare = commands.add_parser(
        "prepare",
        help="tokenize a corpus into train/val token files",
        description="Tokenize a corpus once into train.bin / val.bin (with a header and the "
        "tokenizer's fingerprint), save the tokenizer beside them, and show a few windows.",
    )
    options.add_corpus_options(prepare)
    options.add_tokenizer_option(prepare, default=f"bpe:{DEFAULT_BPE_VOCAB}", trains=True)
    # the split a training run would make of the same corpus: TrainConfig's own fields (their
    # own namespace: --corpus and --tokenizer above are not TrainConfig's flags here)
    add_config_flags(prepare, TrainConfig, only={"val_fraction", "split"}, dest_prefix=_RUN_PREFIX)
    prepare.add_argument(
        "--show-windows",
        type=int,
        default=3,
        metavar="N",
        help="decode the first N training windows (default 3)",
    )
    prepare.add_argument(
        "--max-length", type=int, default=32, help="window length for --show-windows (default 32)"
    )
    options.add_output_option(
        prepare, what="output folder", default_text=f"{options.DEFAULT_OUT}/prepared/CORPUS"
    )
    prepare.set_defaults(run=run_prepare)


def run_corpora(args: argparse.Namespace) -> None:
    from scratchllm.corpora import DEFAULT_CORPUS, list_corpora, list_datasets

    for info in list_corpora():
        marker = "*" if info.name == DEFAULT_CORPUS else " "
        print(f"{marker} {info.name:<14} {info.source:<9} {info.description}")
    print("(* default; any text file, folder or glob of .txt/.md files also works as --corpus)")
    from scratchllm.finetune.labelled import NAMED_DATASETS as LABELLED

    datasets = list_datasets()
    print("labelled datasets (`finetune classify --data`):")
    for info in datasets:
        if info.name in LABELLED:
            print(f"  {info.name:<22} {info.source:<9} {info.description}")
    print("instruction datasets (`finetune instruct|dpo --data`, `respond --data`):")
    for info in datasets:
        if info.name not in LABELLED:
            print(f"  {info.name:<22} {info.source:<9} {info.description}")


def run_train_tokenizer(args: argparse.Namespace) -> None:
    from scratchllm.tokenizer.base import TOKENIZER_FILE

    bpe_only = [name for name in ("vocab_size", "pattern") if getattr(args, name) is not None]
    if args.kind == "simple" and bpe_only:
        raise ScratchLLMError(
            f"--kind simple takes no {options.flags(bpe_only)}: the word-level tokenizer's "
            "vocabulary is every word of the corpus; use --kind bpe, or leave "
            f"{'it' if len(bpe_only) == 1 else 'them'} out"
        )
    options.check_output_folder(args.output, marker=TOKENIZER_FILE, kind="tokenizer")
    corpus = options.load_corpus(args)
    tokenizer = _train_tokenizer(
        args.kind,
        corpus,
        vocab_size=args.vocab_size or DEFAULT_BPE_VOCAB,
        pattern=args.pattern,
        special=args.special,
    )
    with options.writing_output(args.output):
        tokenizer.save(args.output)
    print(f"saved {tokenizer.describe()} to {args.output}")


def _train_tokenizer(kind: str, corpus, *, vocab_size: int, pattern: str | None, special):
    from scratchllm.tokenizer import ENDOFTEXT, UNK, BPETokenizer, SimpleTokenizer

    texts = (document.text for document in corpus.documents())
    if kind == "simple":
        return SimpleTokenizer.train(texts, special_tokens=tuple(special or (ENDOFTEXT, UNK)))
    # without --pattern, BPETokenizer.train's own default
    patterns = {} if pattern is None else {"pattern": pattern}
    print(f"training a BPE tokenizer (vocab {vocab_size:,}) on {corpus.name}")
    return BPETokenizer.train(
        corpus,
        vocab_size,
        special_tokens=tuple(special or (ENDOFTEXT,)),
        show_progress=True,
        **patterns,
    )


def run_tokenize(args: argparse.Namespace) -> None:
    if args.file is not None:
        text = options.read_text(args.file)
    elif args.text is not None:
        text = args.text
    else:
        text = sys.stdin.read()
    tokenizer = options.resolve_tokenizer(args.tokenizer, corpus=None)
    if args.no_special:
        ids = tokenizer.encode_ordinary(text)
    else:
        ids = tokenizer.encode(text, allowed_special="all")
    tokens = [tokenizer.decode([token_id]) for token_id in ids]
    if args.json:
        print(
            json.dumps(
                {
                    "ids": ids,
                    "tokens": tokens,
                    "tokens_count": len(ids),
                    "characters": len(text),
                    "vocab_size": tokenizer.vocab_size,
                }
            )
        )
        return
    print(f"{len(text):,} characters -> {len(ids):,} tokens ({tokenizer.describe()})")
    print("ids:   ", ids)
    print("tokens:", tokens)


def run_prepare(args: argparse.Namespace) -> None:
    from scratchllm.data.prepare import META_FILE, prepare
    from scratchllm.data.windows import SlidingWindowDataset

    # val_fraction and split, validated, with a training run's defaults
    run = TrainConfig().replace(**given_fields(args, TrainConfig, dest_prefix=_RUN_PREFIX))
    kind = "prepared data folder"
    if args.output is not None:  # checked before the corpus is read (or downloaded)
        options.check_output_folder(args.output, marker=META_FILE, kind=kind)
    corpus = options.load_corpus(args)
    output = args.output
    if output is None:
        output = options.DEFAULT_OUT / "prepared" / options.slug(corpus.name)
        options.check_output_folder(output, marker=META_FILE, kind=kind)
    tokenizer = options.resolve_tokenizer(args.tokenizer, corpus=corpus)
    with options.writing_output(output):
        report = prepare(corpus, tokenizer, output, val_fraction=run.val_fraction, split=run.split)
    print(report.summary())
    if args.show_windows > 0:
        from scratchllm.data.shards import read_tokens

        train = read_tokens(Path(output) / "train.bin").tokens
        dataset = SlidingWindowDataset(train, max_length=args.max_length, stride=args.max_length)
        print(f"first {args.show_windows} training windows (max_length {args.max_length}):")
        for index in range(min(args.show_windows, len(dataset))):
            inputs, _ = dataset[index]
            print(f"  [{index}] {tokenizer.decode(inputs.tolist())!r}")
