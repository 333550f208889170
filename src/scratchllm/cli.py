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
DEFAULT_RUNS = DEFAULT_OUT / "runs"  # TrainConfig.out_dir's default
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
    status = 0
    try:
        status = args.run(args)
    except ScratchLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `scratchllm tokenize ... | head`
        sys.stderr.close()
    return status or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scratchllm",
        description="A GPT-2 style LLM built from scratch: corpus -> tokenizer -> token files "
        "-> sliding windows -> GPT -> pretraining -> generation.",
        epilog="Start with `scratchllm train` (no arguments): it trains a BPE tokenizer and a "
        "small GPT on the embedded python-docs corpus under out/runs/; then `scratchllm "
        "generate --prompt ...` continues text with the model it trained.",
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
        "--split",
        choices=("auto", "characters"),
        default="auto",
        help="'auto': at a document boundary, else inside the token stream; 'characters': cut "
        "the text at (1 - val-fraction) of its characters, as the walkthrough does (default auto)",
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

    _add_model_parser(commands)
    _add_attention_parser(commands)
    _add_generate_parser(commands)
    _add_train_parser(commands)
    _add_eval_parser(commands)
    _add_word2vec_parser(commands)
    _add_embed_plot_parser(commands)
    return parser


def _add_model_parser(commands) -> None:
    from scratchllm.config import PRESETS

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
    model.add_argument(
        "--tokenizer",
        default="gpt2",
        help="with --save: the tokenizer to store; its size sets vocab_size (default gpt2)",
    )
    model.add_argument("--seed", type=int, default=123, help="with --save: init seed (default 123)")
    model.set_defaults(run=run_model)


def _add_attention_parser(commands) -> None:
    attention = commands.add_parser(
        "attention",
        help="draw one head's attention weights for a prompt as a heatmap",
        description="Run a model on a prompt and draw the attention weights of one head of "
        "one layer (tokens on both axes) to a PNG. Without --checkpoint it uses an untrained "
        "cpu-tiny model with GPT-2's tokenizer (near-uniform causal weights).",
    )
    attention.add_argument("--prompt", required=True, help="the text to attend over")
    attention.add_argument(
        "--checkpoint", type=Path, help="a checkpoint folder, or a run folder (its latest)"
    )
    attention.add_argument("--layer", type=int, default=0, help="layer, from 0 (default 0)")
    attention.add_argument("--head", type=int, default=0, help="head, from 0 (default 0)")
    attention.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("attention.png"),
        help="PNG to write (default attention.png)",
    )
    attention.set_defaults(run=run_attention)


def _add_generate_parser(commands) -> None:
    from scratchllm.generate import SamplingConfig

    defaults = SamplingConfig()
    generate = commands.add_parser(
        "generate",
        help="continue a prompt with a model",
        description="Generate text from a checkpoint, one token at a time over a KV cache. "
        "Temperature 0 is greedy (deterministic); raise it and add --top-k/--top-p for variety.",
    )
    generate.add_argument(
        "--checkpoint",
        type=Path,
        help="a checkpoint folder, or a run folder for its latest checkpoint (default: the "
        f"latest checkpoint of the latest run under {DEFAULT_RUNS})",
    )
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
    report = prepare(corpus, tokenizer, output, val_fraction=args.val_fraction, split=args.split)
    print(report.summary())
    if args.show_windows > 0:
        from scratchllm.data.shards import read_tokens

        train = read_tokens(Path(output) / "train.bin").tokens
        dataset = SlidingWindowDataset(train, max_length=args.max_length, stride=args.max_length)
        print(f"first {args.show_windows} training windows (max_length {args.max_length}):")
        for index in range(min(args.show_windows, len(dataset))):
            inputs, _ = dataset[index]
            print(f"  [{index}] {tokenizer.decode(inputs.tolist())!r}")


def run_model(args: argparse.Namespace) -> None:
    from scratchllm.config import GPTConfig
    from scratchllm.model.gpt import describe_model

    print(describe_model(args.preset))
    if args.save is not None:
        tokenizer = _resolve_tokenizer(args.tokenizer, corpus=None)
        config = GPTConfig.from_name(args.preset, vocab_size=tokenizer.vocab_size)
        path = _save_untrained(config, tokenizer, args.save, seed=args.seed)
        print(f"saved an untrained {args.preset} (vocab {config.vocab_size:,}) to {path}")


def run_attention(args: argparse.Namespace) -> None:
    from scratchllm.viz import attention_heatmap

    if args.checkpoint is not None:
        from scratchllm.weights.checkpoint import load_checkpoint

        model, tokenizer = load_checkpoint(_checkpoint_path(args.checkpoint))
    else:
        import torch

        from scratchllm.config import GPTConfig
        from scratchllm.model.gpt import GPT

        tokenizer = _resolve_tokenizer("gpt2", corpus=None)
        config = GPTConfig.from_name("cpu-tiny", vocab_size=tokenizer.vocab_size)
        model = GPT(config, generator=torch.Generator().manual_seed(123))
    path = attention_heatmap(
        args.prompt,
        tokenizer=tokenizer,
        model=model,
        layer=args.layer,
        head=args.head,
        output=args.output,
    )
    print(f"wrote {path}")


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
    model, tokenizer = load_checkpoint(_checkpoint_path(args.checkpoint))
    pieces = generate_with_config(model, tokenizer, args.prompt, sampling)
    if args.stream:
        print(args.prompt, end="", flush=True)
        for piece in pieces:
            print(piece, end="", flush=True)
        print()
    else:
        print(args.prompt + "".join(pieces))


# ---- helpers -------------------------------------------------------------------------------


def _load_corpus(args: argparse.Namespace):
    from scratchllm.corpora import load_corpus

    return load_corpus(args.corpus, errors="replace" if args.replace_invalid_utf8 else "strict")


def _resolve_tokenizer(spec: str, *, corpus):
    """Turn a --tokenizer spec into a tokenizer, training one on ``corpus`` if asked."""
    from scratchllm.train.data import resolve_tokenizer

    return resolve_tokenizer(spec, corpus=corpus, log=print)


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


def _save_untrained(config, tokenizer, directory: Path, *, seed: int) -> Path:
    import torch

    from scratchllm.model.gpt import GPT
    from scratchllm.weights.checkpoint import save_checkpoint

    model = GPT(config, generator=torch.Generator().manual_seed(seed))
    return save_checkpoint(directory, model, tokenizer)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScratchLLMError(f"no such file: {path}") from None
    except UnicodeDecodeError as error:
        raise ScratchLLMError(f"{path} is not UTF-8 (byte offset {error.start})") from None


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name) or "corpus"


# ---- training and evaluation -----------------------------------------------------------------

_MODEL_FLAG_HELP = {
    "context_length": "longest sequence the model sees (its positional table)",
    "n_embd": "width of every token vector",
    "n_head": "attention heads per layer",
    "n_layer": "transformer blocks",
    "dropout": "dropout rate (embeddings, attention, residual branches)",
    "qkv_bias": "a bias on the query/key/value projection",
    "tie_weights": "share the token embedding with the output head",
    "layer_norm_eps": "LayerNorm epsilon",
    "init": "weight initialisation: 'gpt2' (normal 0.02, residual projections scaled by "
    "1/sqrt(2 n_layer)) or 'torch-default' (the walkthrough's: torch's own layer init)",
}
_OVERRIDE_PREFIX = "override_"


def _add_train_parser(commands) -> None:
    import dataclasses

    from scratchllm.config import INIT_SCHEMES, PRESETS, GPTConfig, TrainConfig

    train = commands.add_parser(
        "train",
        help="pretrain a GPT (no arguments: a small model on python-docs, ~10 CPU minutes)",
        description="Pretrain a GPT on a corpus: AdamW, warmup + cosine schedule, gradient "
        "clipping and accumulation, evaluation with samples, metrics.jsonl, loss.png and "
        "checkpoints under out/runs/NAME/. Settings come from the defaults, then --config "
        "FILE.toml, then these flags. Ctrl-C (or SIGTERM) saves a checkpoint and stops; "
        "--resume continues the run exactly. Data-parallel: torchrun --nproc_per_node N -m "
        "scratchllm train ... (each process reads its own share of every batch).",
    )
    train.add_argument(
        "--config", type=Path, metavar="FILE", help="a TOML run config (see configs/)"
    )
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last checkpoint: same data, model, "
        "optimizer state, data order and random state, so the losses are those of an "
        "uninterrupted run. Flags may only change how long it runs and how it reports. "
        "(To start a NEW run from a model's weights, use --init-from.)",
    )
    train.add_argument(
        "--no-progress", action="store_true", help="no progress bar (evaluations still print)"
    )
    defaults = TrainConfig()
    options = train.add_argument_group("run options (TrainConfig fields)")
    for field in dataclasses.fields(TrainConfig):
        if field.name == "model_overrides":
            continue
        default = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata["help"]
        if "default" not in help_text:
            help_text += f" (default {default!r})"
        if field.name == "model":
            help_text += f"; presets: {', '.join(PRESETS)}"
        if field.name == "init_from":
            help_text += (
                ". A new run: fresh optimizer, step 0, its own schedule (unlike --resume); "
                "the checkpoint's tokenizer is used and its shape fixes the model"
            )
        if isinstance(default, bool):
            options.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                help=help_text,
            )  # fmt: skip
        else:
            options.add_argument(
                flag, type=type(default), default=argparse.SUPPRESS, help=help_text,
                metavar={int: "N", float: "X"}.get(type(default), "TEXT"),
            )  # fmt: skip
    model = train.add_argument_group(
        "model overrides (replace the preset's value; without a [model] table in --config, "
        f"the run starts from {defaults.model_overrides})"
    )
    for field in dataclasses.fields(GPTConfig):
        if field.name == "vocab_size":
            continue  # the tokenizer's
        flag = "--" + field.name.replace("_", "-")
        dest = _OVERRIDE_PREFIX + field.name
        help_text = _MODEL_FLAG_HELP.get(field.name, field.name)
        if field.type == "bool":
            model.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                dest=dest, help=help_text,
            )  # fmt: skip
        elif field.name == "init":
            model.add_argument(
                flag, choices=INIT_SCHEMES, default=argparse.SUPPRESS, dest=dest, help=help_text
            )
        else:
            kind = float if field.type == "float" else int
            model.add_argument(
                flag, type=kind, default=argparse.SUPPRESS, dest=dest, help=help_text,
                metavar="N" if kind is int else "X",
            )  # fmt: skip
    train.set_defaults(run=run_train)


def _add_eval_parser(commands) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="loss, perplexity and bits per byte of a model on a text",
        description="Score every token of a held-out text with a checkpoint: the mean loss "
        "(nats per token), perplexity, and bits per byte, which compares models with "
        "different tokenizers.",
    )
    evaluate.add_argument(
        "--checkpoint",
        type=Path,
        help=f"a checkpoint or run folder (default: the latest run under {DEFAULT_RUNS})",
    )
    _add_corpus_arguments(evaluate)
    evaluate.add_argument(
        "--batch-size", type=int, default=8, help="windows per forward pass (default 8)"
    )
    evaluate.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda:N or mps"
    )
    evaluate.add_argument("--json", action="store_true", help="machine-readable output")
    evaluate.set_defaults(run=run_eval)


def _train_config(args: argparse.Namespace):
    """Defaults < --config file (or the resumed run's train.toml) < flags."""
    from scratchllm.config import TrainConfig, train_field_names
    from scratchllm.train.run_dir import RUN_CONFIG_FILE

    if args.resume is not None:
        if args.config is not None:
            raise ScratchLLMError("--resume reads the run's own train.toml; drop --config")
        if not (args.resume / RUN_CONFIG_FILE).is_file():
            raise ScratchLLMError(
                f"{args.resume} is not a training run folder (no {RUN_CONFIG_FILE})"
            )
        base = TrainConfig.from_toml(args.resume / RUN_CONFIG_FILE)
    elif args.config is not None:
        base = TrainConfig.from_toml(args.config)
    else:
        base = TrainConfig()
    given = vars(args)
    changes = {name: given[name] for name in train_field_names() if name in given}
    overrides = {
        key.removeprefix(_OVERRIDE_PREFIX): value
        for key, value in given.items()
        if key.startswith(_OVERRIDE_PREFIX)
    }
    if overrides:
        changes["model_overrides"] = {**base.model_overrides, **overrides}
    return base.replace(**changes)


def run_train(args: argparse.Namespace) -> int:
    from scratchllm.train import train

    config = _train_config(args)
    result = train(config, resume=args.resume, show_progress=not args.no_progress)
    from scratchllm.runtime import print0

    minutes = result.elapsed_seconds / 60
    val = "n/a" if result.val_loss is None else f"{result.val_loss:.3f}"
    print0(
        f"{result.step:,}/{result.total_steps:,} steps, {result.tokens_seen:,} tokens seen; "
        f"this session {minutes:.1f} min; val loss {val} (unigram baseline "
        f"{result.unigram_loss:.3f})"
    )
    print0(f"checkpoint: {result.checkpoint}")
    if result.stopped_by is not None:
        print0(f"continue with: scratchllm train --resume {result.run_dir}")
        return {"SIGINT": 130, "SIGTERM": 143}.get(result.stopped_by, 0)
    print0(f'try: scratchllm generate --checkpoint {result.run_dir} --prompt "..."')
    return 0


def run_eval(args: argparse.Namespace) -> None:
    from scratchllm.evaluate import evaluate_text
    from scratchllm.runtime import autocast_dtype, choose_device, set_threads
    from scratchllm.weights.checkpoint import load_checkpoint

    device = choose_device(args.device)
    set_threads()
    checkpoint = _checkpoint_path(args.checkpoint)
    model, tokenizer = load_checkpoint(checkpoint, device=device)
    corpus = _load_corpus(args)
    report = evaluate_text(
        model,
        tokenizer,
        (document.text for document in corpus.documents()),
        batch_size=args.batch_size,
        autocast_dtype=autocast_dtype(device),
    )
    if args.json:
        record = {"checkpoint": str(checkpoint), "corpus": corpus.name, **report.to_dict()}
        print(json.dumps(record))
    else:
        print(f"{checkpoint} on {corpus.name}: {report.summary()}")


def _checkpoint_path(given: Path | None) -> Path:
    """The checkpoint a command uses: the one given (or a run's latest), else the latest run's."""
    from scratchllm.train.run_dir import find_latest_run, latest_checkpoint, resolve_checkpoint

    if given is not None:
        return resolve_checkpoint(given)
    run = find_latest_run(DEFAULT_RUNS)
    if run is None:
        raise ScratchLLMError(
            f"no --checkpoint given and no trained run under {DEFAULT_RUNS}; train one with "
            "`scratchllm train` or pass --checkpoint"
        )
    checkpoint = latest_checkpoint(run)
    print(f"using {checkpoint}", file=sys.stderr)
    return checkpoint


# ---- word embeddings -------------------------------------------------------------------------

_VECTORS_HELP = (
    "word vectors: a folder `scratchllm word2vec train` wrote, or a word2vec text file "
    "(header line, then `word v1 v2 ...` per line)"
)


def _add_word2vec_parser(commands) -> None:
    from scratchllm.word2vec import Word2VecConfig

    defaults = Word2VecConfig()
    word2vec = commands.add_parser(
        "word2vec",
        help="train word vectors with Word2Vec and query them",
        description="Word2Vec from scratch: skip-gram (or CBOW) with negative sampling. "
        "`train` learns one vector per word of a corpus; `similar`, `similarity` and "
        "`analogy` query saved vectors.",
    )
    actions = word2vec.add_subparsers(dest="word2vec_command", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train",
        help="train word vectors on a corpus and save them",
        description="Split a corpus into words (runs of letters, digits and underscores, "
        "lowercased: identifiers such as os.path.join give os, path, join), keep words seen "
        "--min-count times, and train vectors in which words used in similar contexts end up "
        "close. Saves vectors.safetensors + vocab.json (ours) and vectors.txt (word2vec text "
        "format, readable by gensim and other tools).",
    )
    _add_corpus_arguments(train)
    number_flags = (
        ("dim", int, "vector size"),
        ("window", int, "largest distance to a context word; each center draws 1..window"),
        ("negative", int, "noise words drawn per center word (unigram distribution ^ 3/4)"),
        ("min_count", int, "leave out words seen fewer times"),
        ("sample", float, "subsampling threshold for frequent words; 0 keeps every word"),
        ("epochs", int, "passes over the corpus"),
        ("alpha", float, "starting learning rate, decayed linearly to --min-alpha"),
        ("min_alpha", float, "final learning rate"),
        ("batch_size", int, "consecutive center words per update"),
        ("seed", int, "random seed (runs with one thread are reproducible)"),
    )
    for name, kind, text in number_flags:
        default = getattr(defaults, name)
        train.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=default,
            metavar="N" if kind is int else "X",
            help=f"{text} (default {default})",
        )
    train.add_argument(
        "--cbow",
        action="store_true",
        help="continuous bag of words: predict each word from the mean of its context "
        "(default: skip-gram, which predicts the context from each word)",
    )
    train.add_argument(
        "--keep-case", action="store_true", help="do not lowercase words (default: lowercase)"
    )
    train.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="worker threads; 0 = the free CPU cores (default 0)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("-o", "--output", type=Path, required=True, help="folder to save into")
    train.set_defaults(run=run_word2vec_train)

    similar = actions.add_parser(
        "similar",
        help="the nearest words to each given word",
        description="Print the words whose vectors are most cosine-similar to each WORD.",
    )
    similar.add_argument("words", nargs="+", metavar="WORD")
    similar.add_argument("--vectors", type=Path, required=True, help=_VECTORS_HELP)
    similar.add_argument("-k", type=int, default=10, help="neighbours per word (default 10)")
    similar.set_defaults(run=run_word2vec_similar)

    similarity = actions.add_parser(
        "similarity",
        help="the cosine similarity of two words",
        description="Print the cosine similarity of the vectors of A and B, from -1 to 1.",
    )
    similarity.add_argument("first", metavar="A")
    similarity.add_argument("second", metavar="B")
    similarity.add_argument("--vectors", type=Path, required=True, help=_VECTORS_HELP)
    similarity.set_defaults(run=run_word2vec_similarity)

    analogy = actions.add_parser(
        "analogy",
        help="solve A - B + C (king - man + woman ~ queen)",
        description="Print the words nearest to vector(A) - vector(B) + vector(C) (unit "
        "vectors; A, B and C themselves left out), e.g. `analogy king man woman`.",
    )
    analogy.add_argument("a", metavar="A")
    analogy.add_argument("b", metavar="B")
    analogy.add_argument("c", metavar="C")
    analogy.add_argument("--vectors", type=Path, required=True, help=_VECTORS_HELP)
    analogy.add_argument("-k", type=int, default=5, help="answers to show (default 5)")
    analogy.set_defaults(run=run_word2vec_analogy)


def _add_embed_plot_parser(commands) -> None:
    from scratchllm.word2vec.selection import DEFAULT_TOP

    plot = commands.add_parser(
        "embed-plot",
        help="draw word or token embeddings as a labelled 2-D map",
        description="Project embeddings to 2-D (PCA of the unit-length vectors, or t-SNE) "
        "and draw them with their labels to a PNG: our Word2Vec vectors (--vectors) or the "
        "token-embedding table of a trained scratchllm checkpoint (--checkpoint). Words used "
        "alike land close together.",
        epilog="Example: scratchllm embed-plot --vectors vectors/ --words list,tuple,dict,set "
        "--words for,while,if,else -o map.png",
    )
    source = plot.add_mutually_exclusive_group(required=True)
    source.add_argument("--vectors", type=Path, help=_VECTORS_HELP)
    source.add_argument(
        "--checkpoint",
        type=Path,
        help="a scratchllm checkpoint (or run) folder: draws rows of its token embedding "
        "(wte), labelled with each token's text",
    )
    plot.add_argument(
        "--words",
        action="append",
        metavar="W1,W2,...",
        help="words to draw, comma-separated; repeat the flag for groups of different colours "
        f"(default: the {DEFAULT_TOP} most frequent words, or tokens)",
    )
    plot.add_argument(
        "--top",
        type=int,
        default=DEFAULT_TOP,
        help=f"how many without --words (default {DEFAULT_TOP})",
    )
    _add_corpus_arguments(plot)
    plot.set_defaults(corpus=None)
    plot.add_argument(
        "--method",
        choices=("pca", "tsne"),
        default="pca",
        help="pca (default) or tsne (needs scikit-learn)",
    )
    plot.add_argument("--seed", type=int, default=0, help="t-SNE seed (default 0)")
    plot.add_argument("--title", help="plot title (default: what was drawn, from where)")
    plot.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("embeddings.png"),
        help="PNG to write (default embeddings.png)",
    )
    plot.set_defaults(run=run_embed_plot)


def run_word2vec_train(args: argparse.Namespace) -> None:
    from scratchllm.runtime import auto_threads
    from scratchllm.word2vec import Word2VecConfig, sentences, train_word2vec

    config = Word2VecConfig(
        dim=args.dim,
        window=args.window,
        negative=args.negative,
        min_count=args.min_count,
        sample=args.sample,
        epochs=args.epochs,
        alpha=args.alpha,
        min_alpha=args.min_alpha,
        architecture="cbow" if args.cbow else "skipgram",
        batch_size=args.batch_size,
        lowercase=not args.keep_case,
        seed=args.seed,
    )
    corpus = _load_corpus(args)
    texts = (document.text for document in corpus.documents())
    result = train_word2vec(
        sentences(texts, lowercase=config.lowercase),
        config,
        workers=args.threads or auto_threads(),
        show_progress=not args.no_progress,
        log=print,
    )
    vectors = result.vectors
    vectors.metadata["corpus"] = corpus.name
    vectors.save(args.output)
    losses = ", ".join(f"{loss:.3f}" for loss in result.epoch_losses)
    print(
        f"trained {len(vectors):,} vectors of dim {vectors.dim} on {corpus.name}: "
        f"{result.words:,} words in {result.seconds:.1f} s ({result.words_per_second:,.0f} "
        f"words/s); loss per epoch: {losses}"
    )
    print(f"saved to {args.output} (vectors.safetensors + vocab.json, and vectors.txt)")
    print(f"try: scratchllm embed-plot --vectors {args.output}")


def run_word2vec_similar(args: argparse.Namespace) -> None:
    from scratchllm.word2vec import WordVectors

    vectors = WordVectors.load(args.vectors)
    for word in args.words:
        neighbours = vectors.most_similar(word, k=args.k)
        print(f"{word}: " + ", ".join(f"{other} {score:.3f}" for other, score in neighbours))


def run_word2vec_similarity(args: argparse.Namespace) -> None:
    from scratchllm.word2vec import WordVectors

    vectors = WordVectors.load(args.vectors)
    print(f"{vectors.similarity(args.first, args.second):.4f}")


def run_word2vec_analogy(args: argparse.Namespace) -> None:
    from scratchllm.word2vec import WordVectors

    vectors = WordVectors.load(args.vectors)
    answers = vectors.analogy(args.a, args.b, args.c, k=args.k)
    print(
        f"{args.a} - {args.b} + {args.c} ~ "
        + ", ".join(f"{word} {score:.3f}" for word, score in answers)
    )


def run_embed_plot(args: argparse.Namespace) -> None:
    from scratchllm.viz import embedding_map
    from scratchllm.word2vec.selection import parse_word_groups, token_points, word_points

    groups = parse_word_groups(args.words or [])
    if args.vectors is not None:
        if args.corpus is not None:
            raise ScratchLLMError(
                "--corpus ranks a checkpoint's tokens; with --vectors leave it out"
            )
        from scratchllm.word2vec import WordVectors

        points = word_points(WordVectors.load(args.vectors), groups=groups, top=args.top)
        source = str(args.vectors)
    else:
        from scratchllm.weights.checkpoint import load_checkpoint

        checkpoint = _checkpoint_path(args.checkpoint)
        model, tokenizer = load_checkpoint(checkpoint)
        texts = None
        if args.corpus is not None:
            texts = (document.text for document in _load_corpus(args).documents())
        points = token_points(model.wte.weight, tokenizer, groups=groups, texts=texts, top=args.top)
        source = f"token embeddings of {checkpoint}"
    count = len(points.labels)
    if groups:
        what = "chosen words"
    elif args.vectors is not None:
        what = f"the {count} most frequent words"
    elif args.corpus is not None:
        what = f"the {count} most frequent tokens in {args.corpus}"
    else:
        what = f"the first {count} word tokens"
    method = {"pca": "PCA", "tsne": "t-SNE"}[args.method]
    title = args.title or f"{what}, {source} ({method})"
    path = embedding_map(
        points.labels,
        points.vectors,
        args.output,
        groups=points.groups,
        method=args.method,
        seed=args.seed,
        title=title,
    )
    print(f"wrote {path} ({len(points.labels)} points)")
