"""Pretraining and scoring: ``train`` (flags from ``TrainConfig``) and ``eval``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scratchllm.cli import options
from scratchllm.errors import ScratchLLMError

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


def add_commands(commands: argparse._SubParsersAction) -> None:
    _add_train_parser(commands)
    _add_eval_parser(commands)


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
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
    group = train.add_argument_group("run options (TrainConfig fields)")
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
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                help=help_text,
            )  # fmt: skip
        else:
            group.add_argument(
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


def _add_eval_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="loss, perplexity and bits per byte of a model on a text",
        description="Score every token of a held-out text with a checkpoint: the mean loss "
        "(nats per token), perplexity, and bits per byte, which compares models with "
        "different tokenizers.",
    )
    options.add_checkpoint_option(evaluate)
    options.add_corpus_options(evaluate)
    evaluate.add_argument(
        "--batch-size", type=int, default=8, help="windows per forward pass (default 8)"
    )
    options.add_device_option(evaluate)
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
    from scratchllm.evaluate import evaluate_text
    from scratchllm.runtime import autocast_dtype, choose_device, set_threads
    from scratchllm.weights.checkpoint import load_checkpoint

    device = choose_device(args.device)
    set_threads()
    checkpoint = options.checkpoint_path(args.checkpoint)
    model, tokenizer = load_checkpoint(checkpoint, device=device)
    corpus = options.load_corpus(args)
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
