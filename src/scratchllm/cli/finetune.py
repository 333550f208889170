"""Finetuning and using finetuned models: ``finetune classify``, ``classify`` and ``merge``."""

from __future__ import annotations

import argparse
import json
import sys

from scratchllm.cli import options
from scratchllm.cli.config_flags import add_config_flags, given_fields
from scratchllm.config import ClassifyConfig
from scratchllm.errors import ScratchLLMError


def add_commands(commands: argparse._SubParsersAction) -> None:
    finetune = commands.add_parser(
        "finetune",
        help="finetune a pretrained GPT for a task (classify)",
        description="Finetune a pretrained GPT (gpt2 once downloaded, or one of your runs) "
        "through the same training machinery as `train`: checkpoints, exact --resume, Ctrl-C "
        "safety, metrics.jsonl and plots under out/runs/NAME/.",
    )
    tasks = finetune.add_subparsers(dest="task", metavar="TASK", required=True)
    classify = tasks.add_parser(
        "classify",
        help="a text classifier: a new head on a pretrained GPT (the walkthrough's spam filter)",
        description="Train a classifier: the GPT body plus Linear(n_embd, classes) reading one "
        "position, on sms-spam or your own CSV / TSV / JSONL file of texts and labels. "
        "Settings come from the defaults (the walkthrough's chapter 6), then --config "
        "FILE.toml, then these flags. At the end: accuracy on train/val/test, per-class "
        "precision/recall/F1 and confusion matrices in RUN/results.json, and loss.png and "
        "accuracy.png.",
        epilog="Example: scratchllm finetune classify --init-from gpt2 --data sms-spam --balance "
        "(or --config configs/sms-spam-gpt2-small.toml), then scratchllm classify --checkpoint "
        'out/runs/NAME "You won a prize! Call now"',
    )
    options.add_run_options(classify)
    add_config_flags(classify.add_argument_group("run options (ClassifyConfig fields)"),
                     ClassifyConfig)  # fmt: skip
    classify.set_defaults(run=run_finetune_classify)

    use = commands.add_parser(
        "classify",
        help="label texts with a finetuned classifier",
        description="Print the predicted label of each TEXT (or of each line of standard "
        "input) with the classifier checkpoint's head; --json adds every label's probability.",
    )
    use.add_argument("texts", nargs="*", metavar="TEXT", help="texts (default: lines of stdin)")
    options.add_checkpoint_option(use)
    use.add_argument("--json", action="store_true", help="one JSON object per text")
    use.set_defaults(run=run_classify)

    merge = commands.add_parser(
        "merge",
        help="fold a checkpoint's LoRA adapters into its weights",
        description="Write CHECKPOINT with its LoRA adapters merged into the weights (W + "
        "scale * B A): a plain checkpoint that computes the same, loads without adapters and "
        "converts to Hugging Face's format.",
    )
    merge.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint or run folder")
    options.add_output_option(merge, what="the merged checkpoint's folder")
    merge.set_defaults(run=run_merge)


def classify_config(args: argparse.Namespace) -> ClassifyConfig:
    """Defaults < --config file (or the resumed run's train.toml) < flags."""
    base = options.base_run_config(args, ClassifyConfig)
    given = given_fields(args, ClassifyConfig)
    lora_flags = sorted(name for name in given if name.startswith("lora_"))
    config = base.replace(**given)
    if lora_flags and config.trainable != "lora":
        raise ScratchLLMError(
            f"{options.flags(lora_flags)} set(s) the LoRA adapters, which train only with "
            "--trainable lora"
        )
    return config


def run_finetune_classify(args: argparse.Namespace) -> int:
    from scratchllm.finetune.classifier import Classification
    from scratchllm.runtime import print0
    from scratchllm.train.run import run_training

    config = classify_config(args)
    result = run_training(
        config, Classification(config), resume=args.resume, show_progress=not args.no_progress
    )
    print0(f"{result.step:,}/{result.total_steps:,} steps; checkpoint: {result.checkpoint}")
    if result.stopped_by is not None:
        print0(f"continue with: scratchllm finetune classify --resume {result.run_dir}")
        return {"SIGINT": 130, "SIGTERM": 143}.get(result.stopped_by, 0)
    print0(f"results: {result.run_dir / 'results.json'}")
    print0(f'try: scratchllm classify --checkpoint {result.run_dir} "some text"')
    return 0


def run_classify(args: argparse.Namespace) -> None:
    from scratchllm.finetune.inference import classify_texts
    from scratchllm.weights.checkpoint import read_checkpoint

    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise ScratchLLMError("no text to classify: give TEXT arguments or lines on stdin")
    checkpoint = read_checkpoint(options.checkpoint_path(args.checkpoint))
    for text, probabilities in zip(texts, classify_texts(checkpoint, texts), strict=True):
        label = max(probabilities, key=probabilities.get)
        if args.json:
            print(json.dumps({"text": text, "label": label, "probabilities": probabilities}))
        else:
            print(f"{label}\t{probabilities[label]:.3f}\t{text}")


def run_merge(args: argparse.Namespace) -> None:
    from scratchllm.finetune.lora import merge_lora
    from scratchllm.weights.checkpoint import CONFIG_FILE, read_checkpoint, save_checkpoint

    options.check_output_folder(args.output, marker=CONFIG_FILE, kind="checkpoint")
    source = options.checkpoint_path(args.checkpoint)
    checkpoint = read_checkpoint(source)
    if checkpoint.adapters is None:
        raise ScratchLLMError(f"{source} has no LoRA adapters to merge")
    merge_lora(checkpoint.model)
    head = None if checkpoint.head is None else merge_lora(checkpoint.head)
    extra = {k: v for k, v in checkpoint.metadata.items() if k in ("task", "pad_length")}
    with options.writing_output(args.output):
        save_checkpoint(
            args.output, checkpoint.model, checkpoint.tokenizer, head=head,
            head_config=checkpoint.head_config, prompt_format=checkpoint.prompt_format,
            extra={**extra, "merged_from": str(source)},
        )  # fmt: skip
    print(f"wrote {args.output}: {source} with its adapters merged")
