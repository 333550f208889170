"""Finetuning for classification: a pretrained GPT plus a new head, as one objective of the
shared run machinery (``train/run.py``).

The walkthrough's chapter 6 turns GPT-2 into a spam classifier: it replaces the output head by
``Linear(768, 2)``, freezes everything but the last transformer block, the final LayerNorm and
the new head, and trains on the last position's output with cross-entropy. Here:

- ``Classifier``: the GPT body (``GPT.hidden_states``) and a ``ClassificationHead`` reading the
  last position (the walkthrough's) or each text's last real token (``model/heads.py``);
- ``select_trainable``: what trains: the last block(s) with ``ln_f`` and the head, all, the head
  alone, or LoRA adapters only (``finetune/lora.py``; appendix E);
- ``Classification``: the objective: labelled data (``finetune/classification_data.py``),
  batches of padded ids with their lengths and labels, cross-entropy on the head's logits,
  evaluations with loss and accuracy, and at the end accuracy on every split, per-class
  precision / recall / F1, confusion matrices, ``results.json`` and ``accuracy.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scratchllm.config import ClassifyConfig, GPTConfig, HeadConfig
from scratchllm.errors import CheckpointError, ConfigError
from scratchllm.evaluate import accuracy, class_scores, confusion_matrix
from scratchllm.finetune.classification_data import ClassificationBatch, prepare_classification
from scratchllm.finetune.lora import apply_lora, freeze_all_but_adapters, wrap_head
from scratchllm.io import atomic_write_text
from scratchllm.model.gpt import GPT
from scratchllm.model.heads import ClassificationHead, pool
from scratchllm.runtime import autocast
from scratchllm.tokenizer import load_tokenizer
from scratchllm.train.objective import CheckpointParts, Objective, RunContext, split_for_rank
from scratchllm.train.run_dir import resolve_checkpoint, resumable_checkpoint
from scratchllm.weights.checkpoint import TOKENIZER_DIR, read_checkpoint, read_model_config

RESULTS_FILE = "results.json"
ACCURACY_PLOT = "accuracy.png"
SPLITS = ("train", "val", "test")


class Classifier(nn.Module):
    """A GPT body and a classification head: ids ``(B, T)`` (and lengths) -> logits ``(B, K)``."""

    def __init__(self, gpt: GPT, head: nn.Linear, head_config: HeadConfig) -> None:
        super().__init__()
        self.gpt, self.head, self.head_config = gpt, head, head_config

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.gpt.hidden_states(ids)  # (B, T, C)
        return self.head(pool(hidden, self.head_config.position, lengths))  # (B, K)


def select_trainable(classifier: Classifier, config: ClassifyConfig) -> None:
    """Set ``requires_grad`` as ``config.trainable`` says; LoRA adapters are applied here."""
    gpt = classifier.gpt
    if config.trainable == "lora":
        lora = config.lora_config()
        apply_lora(gpt, lora)
        if "head" in lora.targets:
            classifier.head = wrap_head(classifier.head, lora)
        freeze_all_but_adapters(gpt, classifier.head)
        return
    everything = config.trainable == "all"
    for parameter in gpt.parameters():
        parameter.requires_grad_(everything)
    for parameter in classifier.head.parameters():
        parameter.requires_grad_(True)
    blocks = config.trainable_blocks
    if blocks is not None:
        if blocks > gpt.config.n_layer:
            raise ConfigError(
                f"trainable {config.trainable}: the model has only {gpt.config.n_layer} blocks"
            )
        for block in list(gpt.h)[-blocks:]:
            block.requires_grad_(True)
        gpt.ln_f.requires_grad_(True)


class Classification(Objective):
    """Text classification from a pretrained GPT; see the module docstring."""

    loss_unit = "nats per example"

    def __init__(self, config: ClassifyConfig) -> None:
        self.config = config

    # ---- data -------------------------------------------------------------------------------

    def prepare(self, context: RunContext) -> None:
        config = self.config
        self.autocast_dtype = context.autocast_dtype
        self.base: GPT | None = None
        if context.resuming:  # the run's own checkpoint brings the weights (``load_weights``)
            checkpoint = resumable_checkpoint(context.run_dir)
            self.gpt_config = read_model_config(checkpoint)
            self.tokenizer = load_tokenizer(checkpoint / TOKENIZER_DIR)
            self.source = config.init_from
        else:
            checkpoint = resolve_checkpoint(config.init_from)
            # loaded before the run seeds torch, so that only the new head (and adapters) draw
            # from the seed, as the walkthrough's torch.manual_seed(123), then Linear(768, 2)
            loaded = read_checkpoint(checkpoint)
            if loaded.head is not None:
                context.log(f"{checkpoint}: its {loaded.head_config.kind} head is left out")
            if loaded.adapters is not None:
                raise CheckpointError(
                    f"{checkpoint} has LoRA adapters; merge them first (`scratchllm merge`)"
                )
            self.base, self.tokenizer, self.source = loaded.model, loaded.tokenizer, str(checkpoint)
            self.gpt_config = loaded.model.config.replace(dropout=config.dropout)
        self.data = prepare_classification(
            config, self.tokenizer, batch_size=config.batch_size,
            context_length=self.gpt_config.context_length,
        )  # fmt: skip
        self.head_config = HeadConfig(
            num_classes=len(self.data.labels), labels=self.data.labels, position=config.position
        )
        self.world_size = context.world_size

    @property
    def num_examples(self) -> int:
        return len(self.data.split("train"))

    @property
    def tokens_per_example(self) -> int:
        return self.data.pad_length

    def describe_data(self) -> str:
        return self.data.summary.summary()

    def batch(self, indices: np.ndarray) -> ClassificationBatch:
        # a head reading each text's last real token never sees the padding after the batch's
        # longest text: those columns are cut (the "last" position must keep them)
        return self.data.split("train").batch(indices, trim=self._trim)

    @property
    def _trim(self) -> bool:
        return self.config.position == "last-token"

    # ---- model ------------------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        if self.base is not None:  # the loaded model itself: no second copy of its weights
            gpt, self.base = self.base.set_dropout(self.config.dropout), None
        else:  # resuming: weights come from the run's checkpoint; none drawn from the seed
            gpt = GPT(self.gpt_config, generator=torch.Generator().manual_seed(0))
        head = ClassificationHead(self.head_config, gpt.config.n_embd)  # drawn from the seed
        self.model = Classifier(gpt, head, self.head_config)
        select_trainable(self.model, self.config)  # LoRA's A drawn from the seed, after it
        return self.model

    @property
    def model_config(self) -> GPTConfig:
        return self.model.gpt.config

    def plot_title(self) -> str:
        return f"classifier from {Path(self.source).name}, {self.config.trainable}"

    # ---- loss and evaluation ----------------------------------------------------------------

    def loss(self, model: nn.Module, batch: ClassificationBatch) -> torch.Tensor:
        logits = model(batch["ids"], batch["lengths"])  # (B, K)
        return F.cross_entropy(logits.float(), batch["labels"])

    @torch.no_grad()
    def _sums(
        self, model: nn.Module, split: str, indices: np.ndarray, context: RunContext | None
    ) -> tuple[float, np.ndarray]:
        """The summed loss and the confusion matrix over ``indices`` of ``split``, in eval mode,
        this process's share (summed across processes when ``context`` is given)."""
        mine = indices if context is None else split_for_rank(indices, context)
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        total, predicted, actual = 0.0, [], []
        try:
            for start in range(0, len(mine), self.config.batch_size):
                chosen = mine[start : start + self.config.batch_size]
                batch = self.data.split(split).batch(chosen, trim=self._trim)
                ids, lengths = batch["ids"].to(device), batch["lengths"].to(device)
                labels = batch["labels"].to(device)
                with autocast(device, self.autocast_dtype):
                    logits = model(ids, lengths).float()
                total += float(F.cross_entropy(logits, labels, reduction="sum"))
                predicted += logits.argmax(-1).tolist()
                actual += labels.tolist()
        finally:
            model.train(was_training)
        classes = len(self.data.labels)
        matrix = np.array(confusion_matrix(predicted, actual, classes), dtype=np.float64)
        if context is not None:
            summed = context.reduce_sum([total, *matrix.flatten().tolist()])
            total, matrix = summed[0], np.array(summed[1:]).reshape(classes, classes)
        return total, matrix

    def evaluate(self, model: nn.Module, context: RunContext) -> dict[str, float]:
        metrics: dict[str, float] = {}
        count = self.config.eval_batches * self.config.batch_size * self.world_size
        for split, key in (("val", "val"), ("train", "train")):
            size = len(self.data.split(split))
            indices = np.arange(min(count, size))
            total, matrix = self._sums(model, split, indices, context)
            examples = max(1.0, float(matrix.sum()))
            suffix = "" if split == "val" else "_eval"
            metrics[f"{key}_loss{suffix}"] = float(total) / examples
            metrics[f"{key}_accuracy"] = accuracy(matrix.astype(int).tolist())
        return metrics

    def describe_evaluation(self, metrics: dict[str, float]) -> str:
        return (
            f"train loss {metrics['train_loss_eval']:.3f}, val loss {metrics['val_loss']:.3f}; "
            f"accuracy train {metrics['train_accuracy']:.1%}, val {metrics['val_accuracy']:.1%}"
        )

    def info(self) -> dict[str, Any]:
        return {"init_from": self.source, "labels": list(self.data.labels),
                "data": self.data.summary.to_dict()}  # fmt: skip

    def identity(self) -> dict[str, Any]:
        return {
            "tokenizer_fingerprint": self.tokenizer.fingerprint,
            "labels": list(self.data.labels),
            **{f"{split}_examples": len(self.data.split(split)) for split in SPLITS},
            "pad_length": self.data.pad_length,
        }

    def plot(self, run_dir: Path, records: list[dict[str, Any]], title: str) -> None:
        from scratchllm.viz import plot_metric

        evals = [r for r in records if r.get("kind") == "eval"]
        curves = {
            label: [(r["step"], r[key]) for r in evals if key in r]
            for label, key in (("train (fixed batches)", "train_accuracy"),
                               ("validation", "val_accuracy"))
        }  # fmt: skip
        plot_metric(run_dir / ACCURACY_PLOT, curves, xlabel="step", ylabel="accuracy",
                    title=title)  # fmt: skip

    def finish(self, model: nn.Module, context: RunContext) -> dict[str, Any]:
        """Accuracy on every split, per-class scores and confusion matrices; results.json."""
        results: dict[str, Any] = {"labels": list(self.data.labels), "splits": {}}
        for split in SPLITS:
            size = len(self.data.split(split))
            if size == 0:
                continue
            total, matrix = self._sums(model, split, np.arange(size), context)
            table = matrix.astype(int).tolist()
            results["splits"][split] = {
                "examples": size,
                "loss": float(total) / size,
                "accuracy": accuracy(table),
                "confusion_matrix": table,
                "classes": {
                    label: vars(scores)
                    for label, scores in zip(self.data.labels, class_scores(table), strict=True)
                },
            }
        results = {"data": self.data.summary.to_dict(), "final": results}
        if context.is_main:
            text = json.dumps(results, indent=1) + "\n"
            atomic_write_text(context.run_dir / RESULTS_FILE, text)
            context.log(describe_results(results["final"]))
        return results

    # ---- checkpoints ------------------------------------------------------------------------

    def checkpoint_parts(self) -> CheckpointParts:
        return CheckpointParts(
            model=self.model.gpt,
            tokenizer=self.tokenizer,
            head=self.model.head,
            head_config=self.head_config,
            extra={
                "task": "classification",
                "pad_length": self.data.pad_length,
                "base": self.source,
            },  # fmt: skip
        )

    def load_weights(self, checkpoint: Path) -> None:
        loaded = read_checkpoint(checkpoint)
        if loaded.head is None or loaded.labels != self.data.labels:
            raise CheckpointError(f"{checkpoint} is not a checkpoint of this classifier")
        self.model.gpt.load_state_dict(loaded.model.state_dict())
        self.model.head.load_state_dict(loaded.head.state_dict())


def describe_results(final: dict[str, Any]) -> str:
    """The final figures as a few lines: accuracy per split, per-class scores on test."""
    splits = final["splits"]
    lines = ["accuracy: " + ", ".join(f"{s} {v['accuracy']:.2%}" for s, v in splits.items())]
    last = "test" if "test" in splits else next(reversed(splits))
    lines.append(f"{last}: class  precision  recall  f1  support")
    for label, scores in splits[last]["classes"].items():
        lines.append(
            f"  {label:>12}  {scores['precision']:.3f}  {scores['recall']:.3f}  "
            f"{scores['f1']:.3f}  {scores['support']}"
        )
    lines.append(f"{last} confusion matrix (rows: true, columns: predicted, order "
                 f"{', '.join(final['labels'])}): {splits[last]['confusion_matrix']}")  # fmt: skip
    return "\n".join(lines)


__all__ = ["Classification", "Classifier", "select_trainable", "describe_results"]
