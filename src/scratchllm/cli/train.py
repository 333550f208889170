"""Pretraining and scoring: ``train`` (flags from ``TrainConfig``) and ``eval``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scratchllm.cli import options
from scratchllm.cli.config_flags import add_config_flags, given_fields
from scratchllm.config import PRESETS, GPTConfig, TrainConfig
from scratchllm.errors import ScratchLLMError

_OVERRIDE_PREFIX = "override_"


def add_commands(commands: argparse._SubParsersAction) -> None:
    _add_train_parser(commands)
    _add_eval_parser(commands)


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
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
    options.add_run_options(train)
    defaults = TrainConfig()
    add_config_flags(
        train.add_argument_group("run options (TrainConfig fields)"),
        TrainConfig,
        skip={"model_overrides"},  # the model overrides below
        extra_help={
            "model": f"; presets: {', '.join(PRESETS)}",
            "init_from": ". A new run: fresh optimizer, step 0, its own schedule (unlike "
            "--resume); the checkpoint's tokenizer is used and its shape fixes the model",
        },
    )
    add_config_flags(
        train.add_argument_group(
            "model overrides (replace the preset's value; without a [model] table in --config, "
            f"the run starts from {defaults.model_overrides})"
        ),
        GPTConfig,
        skip={"vocab_size"},  # the tokenizer's
        dest_prefix=_OVERRIDE_PREFIX,
        show_defaults=False,  # the preset's
    )
    train.set_defaults(run=run_train)


def _add_eval_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="loss, perplexity and bits per byte of a model on held-out text",
        description="Score every token of a held-out text with a checkpoint: the mean loss "
        "(nats per token), perplexity, and bits per byte, which compares models with "
        "different tokenizers. Without --corpus it scores the validation split (val.bin) of "
        "the run the checkpoint comes from: text the model did not train on.",
    )
    options.add_checkpoint_option(evaluate)
    options.add_corpus_options(
        evaluate, without="the validation tokens of the checkpoint's run, RUN/data/val.bin"
    )
    evaluate.add_argument(
        "--batch-size",
        type=options.positive_int,
        default=8,
        metavar="N",
        help="windows per forward pass (default 8)",
    )
    options.add_device_option(evaluate)
    evaluate.add_argument("--json", action="store_true", help="machine-readable output")
    evaluate.add_argument(
        "--no-progress", action="store_true", help="no progress bar (there is none off a terminal)"
    )
    evaluate.set_defaults(run=run_eval)


def _train_config(args: argparse.Namespace):
    """Defaults < --config file (or the resumed run's train.toml) < flags."""
    base = options.base_run_config(args, TrainConfig)
    changes = given_fields(args, TrainConfig)
    overrides = given_fields(args, GPTConfig, dest_prefix=_OVERRIDE_PREFIX)
    if overrides:
        changes["model_overrides"] = {**base.model_overrides, **overrides}
    config = base.replace(**changes)
    _refuse_ignored_flags(config, given=set(changes))
    return config


# what a prepared data folder or an --init-from checkpoint brings along, so that these flags
# would be silently ignored next to it
_BROUGHT_ALONG = {
    "data": (
        ("corpus", "tokenizer", "val_fraction", "split"),
        "the prepared folder brings its own tokens, split and tokenizer",
    ),
    "init_from": (("tokenizer",), "the checkpoint brings its own tokenizer"),
}


def _refuse_ignored_flags(config, *, given: set[str]) -> None:
    """Refuse flags the run would ignore (the config file's settings are not flags: a file
    may hold settings for several uses)."""
    for source, (ignored, reason) in _BROUGHT_ALONG.items():
        unused = [name for name in ignored if name in given]
        if getattr(config, source) and unused:
            raise ScratchLLMError(
                f"{options.flags(unused)} would be ignored with {options.flags([source])}: "
                f"{reason}; drop {options.flags(unused)}"
            )


def run_train(args: argparse.Namespace) -> int:
    from scratchllm.runtime import print0
    from scratchllm.train import train

    config = _train_config(args)
    result = train(config, resume=args.resume, show_progress=not args.no_progress)
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
    from scratchllm.evaluate import encoded_bytes, evaluate_text, evaluate_tokens
    from scratchllm.runtime import autocast_dtype, choose_device, set_threads
    from scratchllm.weights.checkpoint import load_checkpoint

    device = choose_device(args.device)
    set_threads()
    checkpoint = options.checkpoint_path(args.checkpoint)
    val_file = None if args.corpus is not None else _run_validation_file(checkpoint)
    model, tokenizer = load_checkpoint(checkpoint, device=device)
    settings = dict(
        batch_size=args.batch_size,
        autocast_dtype=autocast_dtype(device),
        show_progress=not args.no_progress and sys.stderr.isatty(),
    )
    if val_file is None:
        corpus = options.load_corpus(args)
        texts = (document.text for document in corpus.documents())
        report = evaluate_text(model, tokenizer, texts, **settings)
        scored, source = corpus.name, {"corpus": corpus.name, "tokens_file": None}
    else:
        from scratchllm.data.shards import read_tokens

        print(
            f"scoring {val_file}: the validation split of the run {checkpoint} comes from "
            "(pass --corpus to score another text)",
            file=sys.stderr,
        )
        tokens = read_tokens(val_file, expected_fingerprint=tokenizer.fingerprint).tokens
        if len(tokens) < 2:
            raise ScratchLLMError(
                f"{val_file} holds {len(tokens)} token(s): the run kept no validation text "
                "(val_fraction 0); pass --corpus with a held-out text"
            )
        report = evaluate_tokens(
            model, tokens, byte_count=encoded_bytes(tokenizer, tokens), **settings
        )
        scored, source = str(val_file), {"corpus": None, "tokens_file": str(val_file)}
    if args.json:
        print(json.dumps({"checkpoint": str(checkpoint), **source, **report.to_dict()}))
    else:
        print(f"{checkpoint} on {scored}: {report.summary()}")


def _run_validation_file(checkpoint: Path) -> Path:
    """The ``val.bin`` of the training run ``checkpoint`` belongs to: the run's ``data/``, or
    the prepared folder its ``train.toml`` names."""
    from scratchllm.data.prepare import VAL_FILE
    from scratchllm.train.run_dir import DATA_DIR, RUN_CONFIG_FILE, is_run_dir

    run = checkpoint.resolve().parent.parent  # RUN/checkpoints/step-N
    if not is_run_dir(run):
        raise ScratchLLMError(
            f"{checkpoint} is not in a training run folder, so it has no held-out text of its "
            "own; pass --corpus with a text to score"
        )
    data = TrainConfig.from_toml(run / RUN_CONFIG_FILE).data
    path = (Path(data) if data else run / DATA_DIR) / VAL_FILE
    if not path.is_file():
        raise ScratchLLMError(
            f"the validation tokens of run {run} are not at {path}"
            + (" (its train.toml's data, read from the current folder)" if data else "")
            + "; pass --corpus with a text to score"
        )
    return path
