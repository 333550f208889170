"""Finetuning and using finetuned models: ``finetune classify|instruct|dpo``, ``classify``,
``respond`` and ``merge``."""

from __future__ import annotations

import argparse
import json
import sys

from scratchllm.cli import options
from scratchllm.cli.config_flags import add_config_flags, given_fields
from scratchllm.config import ClassifyConfig, DPOConfig, InstructConfig, RunOptions, SamplingConfig
from scratchllm.errors import ScratchLLMError


def add_commands(commands: argparse._SubParsersAction) -> None:
    finetune = commands.add_parser(
        "finetune",
        help="finetune a pretrained GPT for a task (classify, instruct, dpo)",
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

    instruct = tasks.add_parser(
        "instruct",
        help="an assistant: finetune on instructions and their answers (the walkthrough's "
        "chapter 7)",
        description="Instruction finetuning: each example's instruction and input in a prompt "
        "format (Alpaca by default), then its output and <|endoftext|>, learned with the "
        "next-token loss. Data: the walkthrough's 1,100 examples (instruction-data) or your "
        "JSON / JSONL file of {instruction, input, output}, split 85/10/5 into train/test/val. "
        "Each evaluation prints the train and validation loss and the model's response to the "
        "first validation instruction; the end writes RUN/results.json (val and test loss, "
        "sample responses). The checkpoint records its prompt format, so `generate` and "
        "`respond` prompt it the same way. Defaults: the walkthrough's (gpt2-medium, lr 5e-5, "
        "batch 8, 2 epochs).",
        epilog="Example (the walkthrough's run; needs `scratchllm download gpt2-medium`): "
        "scratchllm finetune instruct --init-from gpt2-medium --batching pad; then scratchllm "
        "respond --checkpoint out/runs/NAME -o responses.json and scratchllm judge --responses "
        "responses.json --endpoint http://localhost:11434/v1 --model llama3",
    )
    options.add_run_options(instruct)
    add_config_flags(instruct.add_argument_group("run options (InstructConfig fields)"),
                     InstructConfig)  # fmt: skip
    instruct.set_defaults(run=run_finetune_instruct)

    dpo = tasks.add_parser(
        "dpo",
        help="preference tuning: make an instruction-tuned model prefer better answers (DPO)",
        description="Direct Preference Optimization from an instruction-tuned checkpoint (the "
        "policy) against a frozen copy of it (the reference), on pairs of a chosen and a "
        "rejected response per instruction (instruction-preference, or your JSON / JSONL "
        "file with chosen and rejected keys). The prompt's tokens are masked; each evaluation "
        "prints the loss (ln 2 = 0.693 at the start), the reward margin (chosen minus "
        "rejected log-probability gain over the reference) and the share of pairs ranked "
        "right; rewards.png plots the margins. Defaults: the walkthrough's DPO notebook "
        "(lr 5e-6, weight decay 0.01, beta 0.1, batch 8, 1 epoch).",
        epilog="Example: scratchllm finetune dpo --init-from out/runs/SFT_RUN",
    )
    options.add_run_options(dpo)
    add_config_flags(dpo.add_argument_group("run options (DPOConfig fields)"), DPOConfig)
    dpo.set_defaults(run=run_finetune_dpo)

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

    respond = commands.add_parser(
        "respond",
        help="an instruction model's responses to a data set's instructions, as JSON",
        description="Prompt the checkpoint (in its prompt format) with each instruction of "
        "--data's test split (or every entry with --split all) and write the entries with the "
        "response added as model_response: the layout of the walkthrough's "
        "instruction-data-with-response.json, which `scratchllm judge` scores. Responses are "
        "greedy and stop at <|endoftext|> or after --max-new-tokens (256, the walkthrough's).",
        epilog="Example: scratchllm respond --checkpoint out/runs/NAME --data instruction-data "
        "-o responses.json",
    )
    options.add_checkpoint_option(respond)
    respond.add_argument(
        "--data",
        default="instruction-data",
        help="'instruction-data' (the walkthrough's, downloaded once) or a JSON / JSONL file of "
        "{instruction, input, output} (default: instruction-data)",
    )
    respond.add_argument(
        "--split",
        choices=("test", "val", "train", "all"),
        default="test",
        help="which entries: a split of the walkthrough's 85/10/5 cut (default: test, its 110 "
        "for instruction-data) or all of them",
    )
    respond.add_argument(
        "--limit", type=int, default=0, metavar="N", help="only the first N entries (0 = all)"
    )
    respond.add_argument(
        "--prompt-format",
        default="",
        help="override the checkpoint's prompt format (a base model has none: alpaca is used)",
    )
    options.add_output_option(respond, what="the responses (JSON)")
    add_config_flags(respond.add_argument_group("sampling (SamplingConfig fields)"),
                     SamplingConfig, defaults=SamplingConfig(max_new_tokens=256))  # fmt: skip
    respond.add_argument("--no-progress", action="store_true", help="no progress bar")
    respond.set_defaults(run=run_respond)

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

    config = classify_config(args)
    return _train(args, config, Classification(config), "classify",
                  try_next='scratchllm classify --checkpoint {run} "some text"')  # fmt: skip


def task_config(args: argparse.Namespace, config_class: type[RunOptions]) -> RunOptions:
    """Defaults < --config file (or the resumed run's train.toml) < flags; the starting
    checkpoint resolved to its folder (what train.toml records)."""
    from scratchllm.finetune.instruct import resolve_start

    config = options.base_run_config(args, config_class).replace(**given_fields(args, config_class))
    return resolve_start(config, resuming=args.resume is not None)


def run_finetune_instruct(args: argparse.Namespace) -> int:
    from scratchllm.finetune.instruct import InstructionTuning

    config = task_config(args, InstructConfig)
    return _train(args, config, InstructionTuning(config), "instruct")


def run_finetune_dpo(args: argparse.Namespace) -> int:
    from scratchllm.finetune.dpo import PreferenceTuning

    config = task_config(args, DPOConfig)
    config.require_init_from()
    return _train(args, config, PreferenceTuning(config), "dpo")


def _train(
    args: argparse.Namespace,
    config: RunOptions,
    objective,
    task: str,
    *,
    try_next: str = 'scratchllm generate --checkpoint {run} --prompt "Name a color."',
) -> int:
    """Run a finetuning objective; print where it got to and what to run next."""
    from scratchllm.runtime import print0
    from scratchllm.train.run import run_training

    result = run_training(config, objective, resume=args.resume,
                          show_progress=not args.no_progress)  # fmt: skip
    print0(f"{result.step:,}/{result.total_steps:,} steps; checkpoint: {result.checkpoint}")
    if result.stopped_by is not None:
        print0(f"continue with: scratchllm finetune {task} --resume {result.run_dir}")
        return {"SIGINT": 130, "SIGTERM": 143}.get(result.stopped_by, 0)
    print0(f"results: {result.run_dir / 'results.json'}")
    print0(f"try: {try_next.format(run=result.run_dir)}")
    return 0


def run_respond(args: argparse.Namespace) -> None:
    from scratchllm.finetune.instructions import load_instructions, split_instructions
    from scratchllm.finetune.prompts import get_prompt_format
    from scratchllm.finetune.responses import respond_all
    from scratchllm.io import atomic_write_text
    from scratchllm.weights.checkpoint import read_checkpoint

    if args.limit < 0:
        raise ScratchLLMError(f"--limit must be 0 or more, got {args.limit}")
    sampling = SamplingConfig(**{"max_new_tokens": 256, **given_fields(args, SamplingConfig)})
    options.check_output_file(args.output, example="responses.json")
    checkpoint = read_checkpoint(options.checkpoint_path(args.checkpoint))
    name = args.prompt_format or checkpoint.prompt_format
    if name is None:
        options.warn(f"{checkpoint.path} has no prompt format (not instruction-tuned); "
                     "prompting it in alpaca")  # fmt: skip
        name = "alpaca"
    prompt_format = get_prompt_format(name)
    data = load_instructions(args.data)
    entries = data if args.split == "all" else getattr(split_instructions(data), args.split)
    entries = list(entries.entries)[: args.limit or None]

    def progress(items):
        from tqdm.auto import tqdm

        return tqdm(items, desc="responses", unit="response", disable=args.no_progress or None)

    answered = respond_all(checkpoint.model, checkpoint.tokenizer, prompt_format, entries,
                           sampling=sampling, progress=progress)  # fmt: skip
    with options.writing_output(args.output):
        atomic_write_text(args.output, json.dumps(answered, indent=4, ensure_ascii=False) + "\n")
    print(f"wrote {len(answered)} responses to {args.output} (prompt format {name})")


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
