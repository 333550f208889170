"""Pretraining: next-token prediction over sliding windows of a corpus, one user of the run
machinery (``run.py``).

``train(config)`` runs one ``TrainConfig``. The objective brings:

- data: the corpus tokenized into the run folder, or a prepared folder (``data.py``), cut into
  windows of the context length at ``stride``;
- the model: the preset with its overrides, from the seed, or the weights of ``init_from``
  (whose shape and tokenizer then fix the run's: the run's ``train.toml`` records the model
  and tokenizer that actually run, so the run resumes as itself);
- the loss: cross-entropy of every window position's next token, in fp32;
- the evaluation: the mean loss over fixed val windows (and over as many train windows, the
  same way), perplexity, the unigram baseline, and a greedy sample from a fixed prompt through
  the shared generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scratchllm.config import PRESETS, GPTConfig, TrainConfig
from scratchllm.data.prepare import PreparedData
from scratchllm.data.windows import SlidingWindowDataset
from scratchllm.errors import CheckpointError, ConfigError, DataLengthError
from scratchllm.evaluate import perplexity, summed_loss, unigram_cross_entropy
from scratchllm.generate import SamplingConfig, generate_with_config
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import load_tokenizer
from scratchllm.train import run_dir as runs
from scratchllm.train.batches import stack_windows
from scratchllm.train.data import run_data
from scratchllm.train.objective import CheckpointParts, Objective, RunContext, split_for_rank
from scratchllm.train.run import Run, TrainResult
from scratchllm.weights.checkpoint import TOKENIZER_DIR, load_checkpoint


def train(
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    stop_after: int | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Run (or with ``resume``, continue) a pretraining run; see the module docstring.

    ``resume`` is a run folder; ``config`` must then equal its saved ``train.toml`` except in
    ``resume.RESUMABLE_CHANGES``. ``stop_after`` ends this session after that many steps, with a
    checkpoint, as if interrupted (resume it later).
    """
    config, init_model = resolve_init_from(config, resuming=resume is not None)
    objective = Pretraining(config, init_model=init_model)
    run = Run(config, objective, resume=None if resume is None else Path(resume))
    return run.run(stop_after=stop_after, show_progress=show_progress)


def resolve_init_from(config: TrainConfig, *, resuming: bool) -> tuple[TrainConfig, GPT | None]:
    """A new run ``--init-from`` a checkpoint: its weights, and the config that records what
    actually runs: the checkpoint's folder (not a run folder whose latest checkpoint moves on),
    its model shape (every field, so a resume rebuilds it without the checkpoint) and its
    tokenizer. A resumed run already has all of that in its ``train.toml``.
    """
    if not config.init_from or resuming:
        return config, None
    checkpoint = runs.resolve_checkpoint(config.init_from)  # a folder, a run, or `gpt2`
    model, tokenizer = load_checkpoint(checkpoint)
    base = model.config
    # the checkpoint fixes the shape; only the dropout rate may change for the new run
    shape_changes = {k: v for k, v in config.model_overrides.items() if k != "dropout"}
    if any(getattr(base, key, None) != value for key, value in shape_changes.items()):
        raise ConfigError(
            f"--init-from {config.init_from} fixes the model's shape; drop the overrides "
            f"{sorted(shape_changes)} (only dropout may change)"
        )
    effective = base.replace(dropout=config.model_overrides.get("dropout", base.dropout))
    recorded = config.replace(
        init_from=str(checkpoint),
        model=preset_of(effective),
        model_overrides=effective.to_dict(),
        tokenizer=str(checkpoint / TOKENIZER_DIR),
    )
    del tokenizer  # the run loads it from the recorded folder when it prepares its data
    return recorded, model


def preset_of(config: GPTConfig) -> str:
    """The preset whose shape ``config`` has (vocabulary, dropout and init aside), or ``""``.

    >>> preset_of(GPTConfig.from_name("cpu-tiny", vocab_size=300, dropout=0.1))
    'cpu-tiny'
    >>> preset_of(GPTConfig(n_layer=3))
    ''
    """
    ignored = {"vocab_size", "dropout", "init"}
    mine = {k: v for k, v in config.to_dict().items() if k not in ignored}
    for name, preset in PRESETS.items():
        if {k: v for k, v in preset.to_dict().items() if k not in ignored} == mine:
            return name
    return ""


def describe_shape(config: GPTConfig) -> str:
    """A preset's name, or ``layers x width`` for any other shape (plot titles, logs)."""
    return preset_of(config) or f"{config.n_layer} layers x {config.n_embd}"


class Pretraining(Objective):
    """Next-token cross-entropy over the windows of a tokenized corpus."""

    def __init__(self, config: TrainConfig, *, init_model: GPT | None = None) -> None:
        self.config = config
        self.init_model = init_model

    # ---- data -------------------------------------------------------------------------------

    def prepare(self, context: RunContext) -> None:
        config = self.config
        tokenizer = None
        if config.init_from and not context.resuming:
            # the checkpoint's tokenizer, as resolve_init_from recorded it (a resumed run has
            # its data tokenized already, and needs no checkpoint of another run)
            tokenizer = load_tokenizer(Path(config.tokenizer))
        data = run_data(
            config,
            context.run_dir / runs.DATA_DIR,
            tokenizer=tokenizer,
            is_main=context.is_main,
            wait=context.barrier,
            log=context.log if context.is_main else None,
        )
        self.tokenizer = data.tokenizer
        self._gpt_config = config.model_config(vocab_size=data.tokenizer.vocab_size)
        self._autocast_dtype = context.autocast_dtype
        self._plan_windows(data, world_size=context.world_size)

    def _plan_windows(self, data: PreparedData, *, world_size: int) -> None:
        config, context_length = self.config, self._gpt_config.context_length
        self.train_set = SlidingWindowDataset(
            data.train, max_length=context_length, stride=config.stride or context_length
        )
        self.val_set = _val_windows(data.val, context_length)
        eval_windows = config.eval_batches * config.batch_size * world_size
        self.val_indices = np.arange(min(eval_windows, len(self.val_set)))
        self.train_eval_indices = np.arange(min(eval_windows, len(self.train_set)))
        self.unigram_loss = unigram_cross_entropy(
            data.train.tokens, data.val.tokens, vocab_size=self.tokenizer.vocab_size
        )
        self._identity = {
            "tokenizer_fingerprint": self.tokenizer.fingerprint,
            "train_tokens": len(data.train),
            "val_tokens": len(data.val),
        }

    @property
    def num_examples(self) -> int:
        return len(self.train_set)

    @property
    def tokens_per_example(self) -> int:
        return self._gpt_config.context_length

    def describe_data(self) -> str:
        return (
            f"{len(self.train_set):,} train windows, {len(self.val_set):,} val windows; "
            f"unigram baseline val loss {self.unigram_loss:.3f}"
        )

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return stack_windows(self.train_set, indices)

    # ---- model ------------------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        self.model = GPT(self._gpt_config)
        if self.init_model is not None:
            self.model.load_state_dict(self.init_model.state_dict())
            self.init_model = None  # no second copy of the weights for the whole run
        return self.model

    @property
    def model_config(self) -> GPTConfig:
        return self._gpt_config

    def plot_title(self) -> str:
        return self.config.model or describe_shape(self._gpt_config)

    # ---- loss and evaluation ----------------------------------------------------------------

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        logits = model(inputs)  # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())

    def evaluate(self, model: nn.Module, context: RunContext) -> dict[str, float]:
        val_loss = self._mean_loss(model, self.val_set, self.val_indices, context)
        train_loss = self._mean_loss(model, self.train_set, self.train_eval_indices, context)
        return {
            "val_loss": val_loss,
            "val_perplexity": perplexity(val_loss),
            "train_loss_eval": train_loss,
        }

    def _mean_loss(
        self,
        model: nn.Module,
        dataset: SlidingWindowDataset,
        indices: np.ndarray,
        context: RunContext,
    ) -> float:
        """The mean loss over the windows ``indices``, split across the processes."""
        mine = split_for_rank(indices, context)
        nats = 0.0
        batch_size = self.config.batch_size
        autocast_dtype = self._autocast_dtype
        for start in range(0, len(mine), batch_size):
            inputs, targets = stack_windows(dataset, mine[start : start + batch_size])
            nats += summed_loss(model, inputs, targets, autocast_dtype=autocast_dtype)
        total_nats, total_count = context.reduce_sum([nats, len(mine) * dataset.max_length])
        return total_nats / total_count

    def describe_evaluation(self, metrics: dict[str, float]) -> str:
        return (
            f"train loss {metrics['train_loss_eval']:.3f}, val loss {metrics['val_loss']:.3f} "
            f"(perplexity {metrics['val_perplexity']:.1f}; unigram baseline "
            f"{self.unigram_loss:.3f})"
        )

    @property
    def sample_prompt(self) -> str:
        return self.config.sample_prompt

    def sample(self, model: nn.Module) -> str | None:
        if not self.config.sample_tokens:
            return None
        sampling = SamplingConfig(max_new_tokens=self.config.sample_tokens)
        pieces = generate_with_config(model, self.tokenizer, self.config.sample_prompt, sampling)
        return "".join(pieces)

    @property
    def baseline_loss(self) -> float:
        return self.unigram_loss

    def info(self) -> dict[str, Any]:
        return {
            "train_windows": len(self.train_set),
            "val_windows": len(self.val_set),
            "unigram_loss": self.unigram_loss,
        }

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    # ---- checkpoints ------------------------------------------------------------------------

    def checkpoint_parts(self) -> CheckpointParts:
        return CheckpointParts(model=self.model, tokenizer=self.tokenizer)

    def load_weights(self, checkpoint: Path) -> None:
        model, _ = load_checkpoint(checkpoint)
        if model.config != self._gpt_config:
            raise CheckpointError(
                f"{checkpoint} holds a model of another shape than this run's config "
                f"({model.config} vs {self._gpt_config})"
            )
        self.model.load_state_dict(model.state_dict())


def _val_windows(tokens: Any, context_length: int) -> SlidingWindowDataset:
    try:
        return SlidingWindowDataset(tokens, max_length=context_length, stride=context_length)
    except DataLengthError:
        raise DataLengthError(
            f"the val split has {len(tokens):,} tokens, fewer than one window of context "
            f"{context_length} + 1; raise val_fraction, use more text or a shorter context"
        ) from None
