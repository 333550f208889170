"""Instruction finetuning (supervised finetuning): one objective of the shared run machinery.

The walkthrough's chapter 7 turns GPT-2 medium into an assistant: each example's instruction
and input are put into the Alpaca prompt format, followed by its output and ``<|endoftext|>``,
and the model learns the whole text with the usual next-token loss (padding ignored; with
``mask_prompt`` the prompt's tokens too, so only the response is learned). Here that is the
``InstructionTuning`` objective of ``train/run.py``, so it has the machinery's checkpoints,
exact resume, progress, metrics and plots, and:

- its data (``finetune/instructions.py``): the walkthrough's 1,100 examples or a JSON / JSONL
  file, split 85/10/5 into train/test/val;
- its batches (``finetune/instruction_batches.py``): the walkthrough's collate (``pad``),
  batches of similar lengths (``group``), or those packed into few rows with the attention
  kept inside each example (``pack``); the loss of a batch is the same in all three;
- its model: the starting checkpoint's GPT, every weight training, or LoRA adapters only;
- its evaluations: the loss over the first ``eval_batches`` batches of the validation and the
  training examples (the mean of the batch losses, as the walkthrough's ``calc_loss_loader``),
  and the greedy response to the first validation instruction;
- at the end: the loss over all of the validation and test examples and a few test responses
  (``results.json``);
- its checkpoints: the GPT (and adapters) with the prompt format's name, which ``generate``,
  ``respond`` and the server use to prompt it.

``StartingPoint`` (the checkpoint read, its adapters merged, the prompt format chosen) and the
data preparation are shared with preference tuning (``finetune/dpo.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scratchllm.config import GPTConfig, InstructConfig, InstructionOptions, SamplingConfig
from scratchllm.errors import CheckpointError, ConfigError
from scratchllm.finetune.instruction_batches import (
    IGNORE_INDEX,
    EncodedInstruction,
    InstructionBatch,
    collate,
    encode_instructions,
    length_grouped_order,
    pack,
)
from scratchllm.finetune.instructions import (
    InstructionSplits,
    load_instructions,
    split_instructions,
)
from scratchllm.finetune.lora import apply_lora, freeze_all_but_adapters, merge_lora
from scratchllm.finetune.prompts import PromptFormat, get_prompt_format
from scratchllm.finetune.responses import respond
from scratchllm.io import atomic_write_text
from scratchllm.model.gpt import GPT
from scratchllm.runtime import autocast
from scratchllm.tokenizer import Tokenizer
from scratchllm.train.objective import CheckpointParts, Objective, RunContext
from scratchllm.train.run_dir import resolve_checkpoint
from scratchllm.weights.checkpoint import read_checkpoint

RESULTS_FILE = "results.json"
SPLITS = ("train", "val", "test")
DEFAULT_PROMPT_FORMAT = "alpaca"
RESULT_RESPONSES = 3  # test responses kept in results.json


def resolve_start(config: InstructionOptions, *, resuming: bool) -> Any:
    """The config with ``init_from`` resolved to the checkpoint folder it means (a run folder's
    latest checkpoint moves on; ``gpt2-medium`` is a download), so that ``train.toml`` records
    what the run starts from and a resumed run finds the same. A resumed run keeps its own."""
    if resuming or not config.init_from:
        return config
    return config.replace(init_from=str(resolve_checkpoint(config.init_from)))


@dataclass
class StartingPoint:
    """The checkpoint a finetuning run starts from, ready to train."""

    model: GPT  # its adapters merged, in train mode, dropout as the run asks
    tokenizer: Tokenizer
    prompt_format: PromptFormat
    source: str  # the checkpoint's folder
    eot_id: int  # <|endoftext|>: ends every example, and pads


def load_starting_point(config: InstructionOptions, log: Callable[[str], None]) -> StartingPoint:
    """Read ``config.init_from``: a task head is left out, LoRA adapters are merged into the
    weights, and the prompt format is ``config.prompt_format``, else the checkpoint's, else
    Alpaca."""
    checkpoint = resolve_checkpoint(config.init_from)
    loaded = read_checkpoint(checkpoint)
    if loaded.head is not None:
        log(f"{checkpoint}: its {loaded.head_config.kind} head is left out")
    if loaded.adapters is not None:
        merge_lora(loaded.model)
        log(f"{checkpoint}: its LoRA adapters are merged into the weights")
    eot_id = loaded.tokenizer.eot_id
    if eot_id is None:
        raise CheckpointError(
            f"{checkpoint}: its tokenizer has no <|endoftext|> token, which ends each example "
            "and pads batches; instruction finetuning needs a tokenizer with it (gpt2, or a "
            "BPE trained by scratchllm)"
        )
    name = config.prompt_format or loaded.prompt_format or DEFAULT_PROMPT_FORMAT
    model = loaded.model.set_dropout(config.dropout)
    model.train()
    return StartingPoint(model, loaded.tokenizer, get_prompt_format(name), str(checkpoint), eot_id)


def max_example_length(config: InstructionOptions, model_config: GPTConfig) -> int:
    """The length examples are cut to: ``max_length``, or the model's context length."""
    context_length = model_config.context_length
    if config.max_length > context_length:
        raise ConfigError(
            f"max_length {config.max_length} is longer than the model's context length "
            f"{context_length}; use at most {context_length} (or 0 for the context length)"
        )
    return config.max_length or context_length


def read_splits(config: InstructionOptions, *, required: tuple[str, ...] = ()) -> InstructionSplits:
    """The data named by ``config.data``, split 85/10/5 into train/test/val."""
    return split_instructions(load_instructions(config.data, required=required))


def describe_splits(splits: InstructionSplits) -> str:
    return (
        f"{len(splits.train):,} training, {len(splits.val):,} validation and "
        f"{len(splits.test):,} test examples from {splits.train.source}"
    )


def apply_trainable(model: GPT, config: InstructionOptions) -> None:
    """Every weight trains, or (``lora_rank`` > 0) LoRA adapters only; their ``A`` are drawn
    from torch's global generator, which the run has seeded."""
    lora = config.lora_config()
    if lora is None:
        model.requires_grad_(True)
        return
    apply_lora(model, lora)
    freeze_all_but_adapters(model)


def grouped_order(
    lengths: Sequence[int], batching: str, seed: int, global_batch_size: int
) -> Callable[[int], np.ndarray] | None:
    """The epoch order for ``batching``: a plain shuffle for ``pad``, else batches of similar
    lengths."""
    if batching == "pad":
        return None
    lengths = list(lengths)

    def order(epoch: int) -> np.ndarray:
        return length_grouped_order(lengths, batch_size=global_batch_size, seed=seed, epoch=epoch)

    return order


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy over the targets that are not ``IGNORE_INDEX`` (0 when none is:
    a batch whose responses were all cut off by max_length, which has nothing to learn)."""
    scored = (targets != IGNORE_INDEX).sum()
    total = F.cross_entropy(
        logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
        reduction="sum",
    )  # fmt: skip
    return total / scored.clamp(min=1)


def forward(model: nn.Module, batch: InstructionBatch) -> torch.Tensor:
    """The logits of a batch, packed rows or not."""
    return model(
        batch["inputs"], document_ids=batch.get("document_ids"), positions=batch.get("positions")
    )


class InstructionTuning(Objective):
    """Supervised finetuning on instructions; see the module docstring."""

    sample_prompt = ""  # the sample is the response alone; its instruction is logged at start

    def __init__(self, config: InstructConfig) -> None:
        self.config = config

    # ---- data -------------------------------------------------------------------------------

    def prepare(self, context: RunContext) -> None:
        config = self.config
        self.autocast_dtype = context.autocast_dtype
        # a resumed run reads its starting point too (the run's checkpoint then replaces the
        # weights): the tokenizer, the prompt format and the shape come from there
        start = load_starting_point(config, context.log)
        self.start: StartingPoint | None = start
        self.tokenizer, self.prompt_format = start.tokenizer, start.prompt_format
        self.source, self.eot_id = start.source, start.eot_id
        self.max_length = max_example_length(config, start.model.config)
        self.splits = read_splits(config, required=self.required_keys)
        self.encode()
        self.world_size = context.world_size

    required_keys: tuple[str, ...] = ()  # what each entry must have besides the Alpaca keys

    def encode(self) -> None:
        """Tokenize every split (after ``prepare`` read the data)."""
        self.encoded = {
            split: encode_instructions(
                getattr(self.splits, split).entries, self.tokenizer, self.prompt_format
            )
            for split in SPLITS
        }

    @property
    def num_examples(self) -> int:
        return len(self.encoded["train"])

    @property
    def tokens_per_example(self) -> int:
        lengths = self._lengths("train")
        return max(1, round(sum(lengths) / len(lengths)))

    def _lengths(self, split: str) -> list[int]:
        """Tokens each example counts with its end-of-text, cut to max_length."""
        return [min(len(e.ids) + 1, self.max_length) for e in self.encoded[split]]

    def describe_data(self) -> str:
        lengths = self._lengths("train")
        cut = sum(len(e.ids) + 1 > self.max_length for e in self.encoded["train"])
        first = self.splits.val.entries[0]
        return (
            f"{describe_splits(self.splits)}; training examples of {min(lengths)}-"
            f"{max(lengths)} tokens (mean {np.mean(lengths):.0f}), {cut} cut to {self.max_length}"
            f"; prompt format {self.prompt_format.name}; batches: {self.config.batching}"
            f"{', prompt masked' if self.config.mask_prompt else ''}; each evaluation's "
            f"response is to the first validation instruction: {first['instruction']!r}"
        )

    def epoch_order(self, seed: int, global_batch_size: int) -> Callable[[int], np.ndarray] | None:
        return grouped_order(self._lengths("train"), self.config.batching, seed, global_batch_size)

    def make_batch(
        self, examples: Sequence[EncodedInstruction], *, packed: bool
    ) -> InstructionBatch:
        """``examples`` as one batch: padded (the walkthrough's collate) or packed rows."""
        options = dict(pad_id=self.eot_id, ignore_index=IGNORE_INDEX,
                       mask_prompt=self.config.mask_prompt)  # fmt: skip
        if packed:
            return pack(examples, max_length=self.max_length, **options)
        return collate(examples, max_length=self.max_length, **options)

    def batch(self, indices: np.ndarray) -> InstructionBatch:
        examples = [self.encoded["train"][int(index)] for index in indices]
        return self.make_batch(examples, packed=self.config.batching == "pack")

    # ---- model ------------------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        assert self.start is not None, "prepare first"
        model, self.start = self.start.model, None  # the loaded model itself, no second copy
        apply_trainable(model, self.config)
        self.model = model
        return model

    @property
    def model_config(self) -> GPTConfig:
        return self.model.config

    def plot_title(self) -> str:
        adapters = f", LoRA rank {self.config.lora_rank}" if self.config.lora_rank else ""
        return f"instruction finetuning from {Path(self.source).name}{adapters}"

    # ---- loss and evaluation ----------------------------------------------------------------

    def loss(self, model: nn.Module, batch: InstructionBatch) -> torch.Tensor:
        return token_loss(forward(model, batch), batch["targets"])

    @torch.no_grad()
    def split_loss(
        self, model: nn.Module, split: str, batches: int | None, context: RunContext | None
    ) -> float:
        """The mean of the batch losses over the first ``batches`` batches of ``split`` in
        order (all with None), padded as the walkthrough's loaders pad. A batch is a global
        batch (batch_size x processes) computed whole by one process, every world_size-th on
        this one, so that any number of processes gives the one-process figures."""
        examples = self.encoded[split]
        rank, world = (0, 1) if context is None else (context.rank, context.world_size)
        size = self.config.batch_size * world  # global batches, each on one process
        starts = list(range(0, len(examples), size))[:batches]
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        total = 0.0
        try:
            for start in starts[rank::world]:
                batch = self.make_batch(examples[start : start + size], packed=False)
                inputs, targets = batch["inputs"].to(device), batch["targets"].to(device)
                with autocast(device, self.autocast_dtype):
                    logits = model(inputs)
                total += float(token_loss(logits, targets))
        finally:
            model.train(was_training)
        if context is not None:
            (total,) = context.reduce_sum([total])
        return total / max(1, len(starts))

    def evaluate(self, model: nn.Module, context: RunContext) -> dict[str, float]:
        batches = self.config.eval_batches
        return {
            "val_loss": self.split_loss(model, "val", batches, context),
            "train_loss_eval": self.split_loss(model, "train", batches, context),
        }

    def describe_evaluation(self, metrics: dict[str, float]) -> str:
        return f"train loss {metrics['train_loss_eval']:.3f}, val loss {metrics['val_loss']:.3f}"

    def sample(self, model: nn.Module) -> str | None:
        if not self.config.sample_tokens:
            return None
        first = self.splits.val.entries[0]
        return self.respond(first, max_new_tokens=self.config.sample_tokens)

    def respond(self, entry: dict[str, Any], *, max_new_tokens: int) -> str:
        """The model's greedy response to one entry."""
        sampling = SamplingConfig(max_new_tokens=max_new_tokens)
        return respond(self.model, self.tokenizer, self.prompt_format, entry["instruction"],
                       entry["input"], sampling=sampling)  # fmt: skip

    def finish(self, model: nn.Module, context: RunContext) -> dict[str, Any]:
        """The loss over every validation and test example, and a few test responses, in
        ``results.json``."""
        losses = {split: self.split_loss(model, split, None, context) for split in ("val", "test")}
        responses = []
        if context.is_main and self.config.sample_tokens:
            for entry in self.splits.test.entries[:RESULT_RESPONSES]:
                response = self.respond(entry, max_new_tokens=self.config.sample_tokens)
                responses.append({**entry, "model_response": response})
        results = {"loss": losses, "examples": self._sizes(), "responses": responses}
        if context.is_main:
            atomic_write_text(context.run_dir / RESULTS_FILE, json.dumps(results, indent=1) + "\n")
            context.log(f"final loss: val {losses['val']:.3f}, test {losses['test']:.3f} "
                        "(every example)")  # fmt: skip
            for item in responses:
                context.log(f"  {item['instruction']!r} -> {item['model_response']!r}")
        return results

    def _sizes(self) -> dict[str, int]:
        return {split: len(getattr(self.splits, split)) for split in SPLITS}

    def info(self) -> dict[str, Any]:
        return {"init_from": self.source, "prompt_format": self.prompt_format.name,
                "examples": self._sizes(), "max_length": self.max_length}  # fmt: skip

    def identity(self) -> dict[str, Any]:
        return {
            "tokenizer_fingerprint": self.tokenizer.fingerprint,
            "prompt_format": self.prompt_format.name,
            **{f"{split}_examples": size for split, size in self._sizes().items()},
            "max_length": self.max_length,
        }

    # ---- checkpoints ------------------------------------------------------------------------

    task = "instruct"

    def checkpoint_parts(self) -> CheckpointParts:
        return CheckpointParts(
            model=self.model,
            tokenizer=self.tokenizer,
            prompt_format=self.prompt_format.name,
            extra={"task": self.task, "base": self.source},
        )

    def load_weights(self, checkpoint: Path) -> None:
        loaded = read_checkpoint(checkpoint)
        if (loaded.adapters is None) != (self.config.lora_rank == 0):
            raise CheckpointError(f"{checkpoint} is not a checkpoint of this run's model")
        self.model.load_state_dict(loaded.model.state_dict())


__all__ = [
    "InstructionTuning",
    "StartingPoint",
    "load_starting_point",
    "resolve_start",
    "token_loss",
]
