"""Preference tuning with DPO: one objective of the shared run machinery.

After instruction finetuning, the walkthrough's DPO notebook (chapter 7, bonus material) makes
the model prefer better answers: each example has a ``chosen`` and a ``rejected`` response,
and the policy (the model being tuned) learns to raise the first relative to the second,
measured against a frozen reference (the instruction-tuned model it starts from). The loss
and the rewards are pure functions in ``finetune/preference.py``; here is the objective:

- data: instruction examples with ``chosen`` and ``rejected`` (the walkthrough's
  ``instruction-data-with-preference.json`` or your file), split 85/10/5; each response is
  put after the example's prompt (the same prompt format and encoding as instruction tuning)
  and ends with ``<|endoftext|>`` (the walkthrough's DPO sequences stop without one; ending
  them as the finetuning examples end keeps the model's habit of stopping);
- batches: the chosen and the rejected sequences of a batch's examples as one padded batch of
  2B rows, targets shifted, the prompt and the padding masked (``IGNORE_INDEX``), so
  ``sequence_logprobs`` scores the response tokens alone (the walkthrough masks its prompts
  the same way);
- model: the policy trains (every weight, or LoRA adapters); the reference is a frozen copy
  of the starting weights, in eval mode, outside the optimizer and the checkpoints;
- loss: ``dpo_loss`` with ``beta`` over the policy's and the reference's log-probabilities;
- evaluations: loss, chosen and rejected rewards, their margin and the share of pairs ranked
  right, on the first ``eval_batches`` batches of validation and training examples, plus the
  greedy response to the first validation instruction; the reward margins are plotted;
- at the end: the same over every validation and test example, in ``results.json``.

With the policy equal to the reference (the first evaluation, dropout 0) the loss is ln 2.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from scratchllm.config import DPOConfig
from scratchllm.errors import ConfigError
from scratchllm.finetune.instruct import (
    IGNORE_INDEX,
    RESULTS_FILE,
    SPLITS,
    InstructionTuning,
    describe_splits,
    forward,
    grouped_order,
)
from scratchllm.finetune.instruction_batches import (
    EncodedInstruction,
    InstructionBatch,
    collate,
    encode_instructions,
)
from scratchllm.finetune.preference import DPOStep, dpo_loss, sequence_logprobs
from scratchllm.io import atomic_write_text
from scratchllm.runtime import autocast
from scratchllm.train.objective import RunContext

REWARDS_PLOT = "rewards.png"
PAIR_KEYS = ("chosen", "rejected")
STEP_FIELDS = ("loss", "chosen_reward", "rejected_reward", "accuracy")


class PreferenceTuning(InstructionTuning):
    """DPO from an instruction-tuned checkpoint; see the module docstring."""

    task = "dpo"

    def __init__(self, config: DPOConfig) -> None:
        if config.batching == "pack":
            raise ConfigError(
                "batching 'pack' is for instruction finetuning; DPO scores each response as a "
                "whole, so its batches are 'group' (similar lengths) or 'pad'"
            )
        config.require_init_from()
        self.config = config  # type: ignore[assignment]

    # ---- data -------------------------------------------------------------------------------

    required_keys = PAIR_KEYS

    def encode(self) -> None:
        # each split's chosen and rejected sequences: the prompt, then that response
        self.pairs = {split: self._encode_pairs(split) for split in SPLITS}
        self.reference: nn.Module | None = None

    def _encode_pairs(self, split: str) -> dict[str, list[EncodedInstruction]]:
        entries = getattr(self.splits, split).entries
        return {
            key: encode_instructions(
                [{**entry, "output": entry[key]} for entry in entries],
                self.tokenizer,
                self.prompt_format,
            )  # fmt: skip
            for key in PAIR_KEYS
        }

    @property
    def num_examples(self) -> int:
        return len(self.pairs["train"]["chosen"])

    def _lengths(self, split: str) -> list[int]:
        """Tokens of an example's longer sequence with its end-of-text, cut to max_length."""
        chosen, rejected = self.pairs[split]["chosen"], self.pairs[split]["rejected"]
        return [min(max(len(c.ids), len(r.ids)) + 1, self.max_length)
                for c, r in zip(chosen, rejected, strict=True)]  # fmt: skip

    @property
    def tokens_per_example(self) -> int:  # two sequences
        lengths = self._lengths("train")
        return max(1, round(2 * sum(lengths) / len(lengths)))

    def describe_data(self) -> str:
        first = self.splits.val.entries[0]
        return (
            f"{describe_splits(self.splits)}, each with a chosen and a rejected response; "
            f"prompt format {self.prompt_format.name}; beta {self.config.beta}, "
            f"{self.config.logprob} log-probabilities; each evaluation's response is to the "
            f"first validation instruction: {first['instruction']!r}"
        )

    def epoch_order(self, seed: int, global_batch_size: int) -> Callable[[int], np.ndarray] | None:
        return grouped_order(self._lengths("train"), self.config.batching, seed, global_batch_size)

    def pair_batch(self, split: str, indices: Any) -> InstructionBatch:
        """The chosen sequences of ``indices``, then their rejected ones: 2B rows, prompts and
        padding masked from the targets."""
        pairs = self.pairs[split]
        chosen = [pairs["chosen"][int(index)] for index in indices]
        rejected = [pairs["rejected"][int(index)] for index in indices]
        return collate(chosen + rejected, pad_id=self.eot_id, ignore_index=IGNORE_INDEX,
                       max_length=self.max_length, mask_prompt=True)  # fmt: skip

    def batch(self, indices: np.ndarray) -> InstructionBatch:
        return self.pair_batch("train", indices)

    # ---- model ------------------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        assert self.start is not None, "prepare first"
        # the frozen reference: the starting weights, before any adapter is added
        self.reference = copy.deepcopy(self.start.model).eval().requires_grad_(False)
        return super().build_model()

    def plot_title(self) -> str:
        adapters = f", LoRA rank {self.config.lora_rank}" if self.config.lora_rank else ""
        return f"DPO from {Path(self.source).name}, beta {self.config.beta}{adapters}"

    # ---- loss and evaluation ----------------------------------------------------------------

    def step(self, model: nn.Module, batch: InstructionBatch) -> DPOStep:
        """The DPO loss and rewards of a batch of pairs."""
        targets = batch["targets"]
        reduction = self.config.logprob
        policy = sequence_logprobs(forward(model, batch), targets, reduction=reduction)
        with torch.no_grad():
            reference_model = self._reference_on(targets.device)
            reference = sequence_logprobs(
                forward(reference_model, batch), targets, reduction=reduction
            )
        half = targets.shape[0] // 2
        return dpo_loss(policy[:half], policy[half:], reference[:half], reference[half:],
                        beta=self.config.beta)  # fmt: skip

    def _reference_on(self, device: torch.device) -> nn.Module:
        assert self.reference is not None, "build_model first"
        if next(self.reference.parameters()).device != device:
            self.reference.to(device)
        return self.reference

    def loss(self, model: nn.Module, batch: InstructionBatch) -> torch.Tensor:
        return self.step(model, batch).loss

    @torch.no_grad()
    def split_scores(
        self, model: nn.Module, split: str, batches: int | None, context: RunContext | None
    ) -> dict[str, float]:
        """Loss, rewards and accuracy: means over the first ``batches`` global batches of
        ``split`` in order (all with None), this process computing every world_size-th."""
        rank, world = (0, 1) if context is None else (context.rank, context.world_size)
        size = self.config.batch_size * world  # global batches, each on one process
        count = len(self.pairs[split]["chosen"])
        starts = list(range(0, count, size))[:batches]
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        sums = [0.0] * len(STEP_FIELDS)
        try:
            for start in starts[rank::world]:
                batch = self.pair_batch(split, range(start, min(start + size, count)))
                batch = {key: value.to(device) for key, value in batch.items()}
                with autocast(device, self.autocast_dtype):
                    step = self.step(model, batch)
                values = (float(step.loss), step.chosen_reward, step.rejected_reward,
                          step.accuracy)  # fmt: skip
                sums = [total + value for total, value in zip(sums, values, strict=True)]
        finally:
            model.train(was_training)
        if context is not None:
            sums = context.reduce_sum(sums)
        means = {name: total / max(1, len(starts)) for name, total in zip(STEP_FIELDS, sums,
                                                                          strict=True)}  # fmt: skip
        means["reward_margin"] = means["chosen_reward"] - means["rejected_reward"]
        return means

    def evaluate(self, model: nn.Module, context: RunContext) -> dict[str, float]:
        batches = self.config.eval_batches
        val = self.split_scores(model, "val", batches, context)
        train = self.split_scores(model, "train", batches, context)
        metrics = {"val_loss": val.pop("loss"), "train_loss_eval": train.pop("loss")}
        metrics |= {f"val_{name}": value for name, value in val.items()}
        metrics |= {f"train_{name}": value for name, value in train.items()}
        return metrics

    def describe_evaluation(self, metrics: dict[str, float]) -> str:
        return (
            f"train loss {metrics['train_loss_eval']:.3f}, val loss {metrics['val_loss']:.3f}; "
            f"reward margin train {metrics['train_reward_margin']:.3f}, val "
            f"{metrics['val_reward_margin']:.3f}; pairs ranked right train "
            f"{metrics['train_accuracy']:.0%}, val {metrics['val_accuracy']:.0%}"
        )

    def plot(self, run_dir: Path, records: list[dict[str, Any]], title: str) -> None:
        from scratchllm.viz import plot_metric

        evals = [r for r in records if r.get("kind") == "eval"]
        curves = {
            label: [(r["step"], r[key]) for r in evals if key in r]
            for label, key in (("train (fixed batches)", "train_reward_margin"),
                               ("validation", "val_reward_margin"))
        }  # fmt: skip
        plot_metric(run_dir / REWARDS_PLOT, curves, xlabel="step",
                    ylabel="reward margin (chosen - rejected)", title=title)  # fmt: skip

    def finish(self, model: nn.Module, context: RunContext) -> dict[str, Any]:
        """Loss, rewards and accuracy over every validation and test example (results.json)."""
        scores = {split: self.split_scores(model, split, None, context)
                  for split in ("val", "test")}  # fmt: skip
        results = {"scores": scores, "examples": self._sizes(), "beta": self.config.beta}
        if context.is_main:
            atomic_write_text(context.run_dir / RESULTS_FILE, json.dumps(results, indent=1) + "\n")
            for split, values in scores.items():
                context.log(
                    f"final {split} (every example): loss {values['loss']:.3f}, reward margin "
                    f"{values['reward_margin']:.3f}, pairs ranked right {values['accuracy']:.1%}"
                )
        return results

    def info(self) -> dict[str, Any]:
        return {**super().info(), "beta": self.config.beta, "logprob": self.config.logprob}


__all__ = ["PreferenceTuning"]
