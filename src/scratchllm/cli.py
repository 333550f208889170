"""The ``scratchllm`` command line: each subcommand is a thin wrapper over a library function.

Run ``scratchllm --help`` for the list and ``scratchllm COMMAND --help`` for each one. User
mistakes (a wrong path, a corrupt file, an unknown word) print one ``error:`` line and exit with
status 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from scratchllm.errors import ScratchLLMError

DEFAULT_OUT = Path("out")
DEFAULT_BPE_VOCAB = 4096

TOKENIZER_SPEC_HELP = (
    "'gpt2' (GPT-2's BPE via tiktoken), 'gpt2:PATH' (GPT-2's vocabulary from a .tiktoken file "
    "or a folder with encoder.json + vocab.bpe), the folder of a saved tokenizer, "
    "'bpe:N' (train our byte-level BPE with vocabulary N on the corpus) or "
    "'simple' (train the word-level tokenizer on the corpus)"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        args.run(args)
    except ScratchLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `scratchllm tokenize ... | head`
        sys.stderr.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scratchllm",
        description="A GPT-2 style LLM built from scratch. Pipeline so far: "
        "corpus -> tokenizer -> token files -> sliding windows -> embeddings.",
        epilog="Start with `scratchllm prepare` (no arguments): it trains a BPE tokenizer on "
        "the embedded python-docs corpus and writes train/val token files under out/.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    corpora = commands.add_parser("corpora", help="list the named corpora")
    corpora.set_defaults(run=run_corpora)

    train = commands.add_parser(
        "train-tokenizer",
        help="train a tokenizer on a corpus and save it",
        description="Train our byte-level BPE (or the word-level tokenizer) on a corpus and save "
        "it to a folder that --tokenizer accepts everywhere.",
    )
    _add_corpus_arguments(train)
    train.add_argument("--kind", choices=("bpe", "simple"), default="bpe", help="default: bpe")
    train.add_argument(
        "--vocab-size",
        type=int,
        default=DEFAULT_BPE_VOCAB,
        help="BPE vocabulary size: 256 bytes + merges + special tokens "
        f"(default {DEFAULT_BPE_VOCAB})",
    )
    train.add_argument(
        "--pattern",
        default="gpt2",
        help="BPE pre-tokenisation regex: 'gpt2', 'gpt4' or a custom regex (default gpt2)",
    )
    train.add_argument(
        "--special",
        action="append",
        metavar="TOKEN",
        help="special token, repeatable (default: <|endoftext|>; the simple tokenizer also "
        "gets <|unk|>)",
    )
    train.add_argument("-o", "--output", type=Path, required=True, help="folder to save into")
    train.set_defaults(run=run_train_tokenizer)

    tokenize = commands.add_parser(
        "tokenize",
        help="show how a tokenizer splits text",
        description="Encode text and print its ids, tokens and counts. Text comes from the "
        "argument, --file, or standard input.",
    )
    tokenize.add_argument("text", nargs="?", help="text to encode (default: standard input)")
    tokenize.add_argument("--file", type=Path, help="read the text from this file")
    tokenize.add_argument(
        "--tokenizer",
        default="gpt2",
        help="'gpt2', 'gpt2:PATH' or the folder of a saved tokenizer (default gpt2)",
    )
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
    _add_corpus_arguments(prepare)
    prepare.add_argument(
        "--tokenizer",
        default=f"bpe:{DEFAULT_BPE_VOCAB}",
        help=f"{TOKENIZER_SPEC_HELP} (default bpe:{DEFAULT_BPE_VOCAB})",
    )
    prepare.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of tokens held out for validation, split at document boundaries where "
        "possible (default 0.1)",
    )
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
    prepare.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output folder (default out/prepared/CORPUS)",
    )
    prepare.set_defaults(run=run_prepare)
    return parser


def _add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    from scratchllm.corpora import DEFAULT_CORPUS

    parser.add_argument(
        "--corpus",
        default=DEFAULT_CORPUS,
        help="a named corpus (see `scratchllm corpora`), a text file, a folder or a glob of "
        f".txt/.md files (default {DEFAULT_CORPUS})",
    )
    parser.add_argument(
        "--replace-invalid-utf8",
        action="store_true",
        help="replace undecodable bytes instead of stopping with an error",
    )


# ---- commands ------------------------------------------------------------------------------


def run_corpora(args: argparse.Namespace) -> None:
    from scratchllm.corpora import DEFAULT_CORPUS, list_corpora

    for info in list_corpora():
        marker = "*" if info.name == DEFAULT_CORPUS else " "
        print(f"{marker} {info.name:<14} {info.source:<9} {info.description}")
    print("(* default; any text file, folder or glob of .txt/.md files also works as --corpus)")


def run_train_tokenizer(args: argparse.Namespace) -> None:
    corpus = _load_corpus(args)
    tokenizer = _train_tokenizer(
        args.kind, corpus, vocab_size=args.vocab_size, pattern=args.pattern, special=args.special
    )
    tokenizer.save(args.output)
    print(f"saved {tokenizer.describe()} to {args.output}")


def run_tokenize(args: argparse.Namespace) -> None:
    if args.file is not None:
        text = _read_text(args.file)
    elif args.text is not None:
        text = args.text
    else:
        text = sys.stdin.read()
    tokenizer = _resolve_tokenizer(args.tokenizer, corpus=None)
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
    from scratchllm.data.prepare import prepare
    from scratchllm.data.windows import SlidingWindowDataset

    corpus = _load_corpus(args)
    tokenizer = _resolve_tokenizer(args.tokenizer, corpus=corpus)
    output = args.output or DEFAULT_OUT / "prepared" / _slug(corpus.name)
    report = prepare(corpus, tokenizer, output, val_fraction=args.val_fraction)
    print(report.summary())
    if args.show_windows > 0:
        from scratchllm.data.shards import read_tokens

        train = read_tokens(Path(output) / "train.bin").tokens
        dataset = SlidingWindowDataset(train, max_length=args.max_length, stride=args.max_length)
        print(f"first {args.show_windows} training windows (max_length {args.max_length}):")
        for index in range(min(args.show_windows, len(dataset))):
            inputs, _ = dataset[index]
            print(f"  [{index}] {tokenizer.decode(inputs.tolist())!r}")


# ---- helpers -------------------------------------------------------------------------------


def _load_corpus(args: argparse.Namespace):
    from scratchllm.corpora import load_corpus

    return load_corpus(args.corpus, errors="replace" if args.replace_invalid_utf8 else "strict")


def _resolve_tokenizer(spec: str, *, corpus):
    """Turn a --tokenizer spec into a tokenizer, training one on ``corpus`` if asked."""
    from scratchllm.tokenizer import get_tokenizer

    kind, _, argument = spec.partition(":")
    if kind == "gpt2" and argument:
        return get_tokenizer("gpt2", path=argument)
    if kind in ("bpe", "simple") and not Path(spec).exists():
        if corpus is None:
            raise ScratchLLMError(
                f"--tokenizer {spec} trains a tokenizer on a corpus, which this command does not "
                f"take; train one with `scratchllm train-tokenizer` and pass its folder"
            )
        vocab_size = DEFAULT_BPE_VOCAB
        if argument:
            try:
                vocab_size = int(argument)
            except ValueError:
                raise ScratchLLMError(f"--tokenizer {spec}: {argument!r} is not a number") from None
        return _train_tokenizer(kind, corpus, vocab_size=vocab_size, pattern="gpt2", special=None)
    return get_tokenizer(spec)


def _train_tokenizer(kind: str, corpus, *, vocab_size: int, pattern: str, special):
    from scratchllm.tokenizer import ENDOFTEXT, UNK, BPETokenizer, SimpleTokenizer

    texts = (document.text for document in corpus.documents())
    if kind == "simple":
        return SimpleTokenizer.train(texts, special_tokens=tuple(special or (ENDOFTEXT, UNK)))
    print(f"training a BPE tokenizer (vocab {vocab_size:,}, pattern {pattern}) on {corpus.name}")
    return BPETokenizer.train(
        corpus,
        vocab_size,
        special_tokens=tuple(special or (ENDOFTEXT,)),
        pattern=pattern,
        show_progress=True,
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScratchLLMError(f"no such file: {path}") from None
    except UnicodeDecodeError as error:
        raise ScratchLLMError(f"{path} is not UTF-8 (byte offset {error.start})") from None


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name) or "corpus"
