"""The pretraining loop: data, model and optimizer in; checkpoints, metrics and a plot out.

``train(config)`` runs one ``TrainConfig``. Each optimizer step:

1. sets the learning rate from the schedule (``schedule.py``, a function of the step);
2. runs ``accumulation`` micro-batches (forward under autocast, cross-entropy in fp32,
   ``backward`` of loss / accumulation), so a step sees ``tokens_per_step`` tokens whatever
   fits in memory; under DDP the gradients are averaged across processes on the last one;
3. clips the gradient norm, takes the AdamW step (``optim.py``), logs loss, lr, tokens/s.

Every ``eval_every`` steps it measures the val loss (and the train loss the same way) over
fixed batches, prints a greedy sample from a fixed prompt through the shared generator,
rewrites ``metrics.jsonl`` and ``loss.png``, and saves a checkpoint when the val loss improved
(the best) or ``checkpoint_every`` says so (``run_dir.py``: the last K and the best are kept).
The save copies the state and writes it in a background thread while the next steps train
(``checkpointing.py``); the loop waits for the last write before it returns.

Nothing is lost: a checkpoint holds the weights, the optimizer moments, the step, every
process's random state and the best val loss, and the data position is a function of the step
(``batches.py``). ``train(config, resume=run_dir)`` therefore continues with exactly the
losses the uninterrupted run would have had (bit for bit on the CPU). SIGINT and SIGTERM
finish the current step, save a checkpoint and return; ``kill -9`` loses only the steps since
the last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from scratchllm.config import TrainConfig
from scratchllm.data.prepare import PreparedData
from scratchllm.data.windows import SlidingWindowDataset
from scratchllm.errors import CheckpointError, ConfigError, DataLengthError, TrainingError
from scratchllm.evaluate import perplexity, summed_loss, unigram_cross_entropy
from scratchllm.generate import SamplingConfig, generate_with_config
from scratchllm.io import atomic_write_text
from scratchllm.model.gpt import GPT, num_parameters
from scratchllm.runtime import (
    auto_threads,
    autocast,
    autocast_dtype,
    choose_device,
    keep_freed_memory,
    rng_state,
    seed_everything,
    set_rng_state,
    set_threads,
)
from scratchllm.train import distributed
from scratchllm.train import run_dir as runs
from scratchllm.train.batches import BatchPlan, accumulation_steps, stack_windows, total_steps
from scratchllm.train.checkpointing import CheckpointWriter, cpu_copy
from scratchllm.train.data import run_data
from scratchllm.train.interrupts import StopRequest
from scratchllm.train.metrics import MetricsLog
from scratchllm.train.optim import build_optimizer, set_learning_rate
from scratchllm.train.resume import check_resumable, load_optimizer_state
from scratchllm.train.schedule import learning_rate
from scratchllm.weights.checkpoint import load_checkpoint, load_training_state, save_checkpoint


@dataclass(frozen=True)
class TrainResult:
    """How a ``train`` call ended."""

    run_dir: Path
    step: int  # optimizer steps done, all sessions together
    total_steps: int
    tokens_seen: int
    stopped_by: str | None  # "SIGINT", "SIGTERM", "stop_after", or None when the run finished
    val_loss: float | None  # at the last evaluation
    best_val_loss: float | None
    unigram_loss: float  # the baseline val loss (evaluate.unigram_cross_entropy)
    checkpoint: Path | None  # the last one saved
    elapsed_seconds: float  # this session
    losses: tuple[float, ...]  # the training loss of every step, all sessions together


def train(
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    stop_after: int | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Run (or with ``resume``, continue) a training run; see the module docstring.

    ``resume`` is a run folder; ``config`` must then equal its saved ``train.toml`` except in
    ``resume.RESUMABLE_CHANGES``. ``stop_after`` ends this session after that many steps, with a
    checkpoint, as if interrupted (resume it later).
    """
    trainer = Trainer(config, resume=None if resume is None else Path(resume))
    try:
        return trainer.run(stop_after=stop_after, show_progress=show_progress)
    finally:
        distributed.shutdown(trainer.context)


class Trainer:
    """One session of a run: set up in ``__init__``, then ``run``. Use ``train()``."""

    def __init__(self, config: TrainConfig, *, resume: Path | None) -> None:
        started = time.perf_counter()
        self.config = config
        self._start_runtime()
        self.run_dir = self._open_run_dir(resume)
        self.log(f"run folder: {self.run_dir}")

        init_model, init_tokenizer = None, None
        if config.init_from and resume is None:
            init_model, init_tokenizer = load_checkpoint(
                runs.resolve_checkpoint(Path(config.init_from))
            )
        data = run_data(
            config,
            self.run_dir / runs.DATA_DIR,
            tokenizer=init_tokenizer,
            is_main=self.is_main,
            wait=lambda: distributed.barrier(self.context),
            log=self.log if self.is_main else None,
        )
        self.tokenizer = data.tokenizer
        self._build_model(init_model)
        self._plan_batches(data)

        self.step = 0
        self.best_val_loss: float | None = None
        self.best_step: int | None = None
        self.last_val_loss: float | None = None
        self.saved_step: int | None = None
        self.writer = CheckpointWriter(background=config.background_checkpoints)
        self.metrics = MetricsLog(self.run_dir / runs.METRICS_FILE if self.is_main else None)
        if resume is not None:
            self._restore(runs.resumable_checkpoint(self.run_dir))
        self._write_run_files(setup_seconds=time.perf_counter() - started, resumed=resume)
        self.stop = StopRequest(self.log)

    # ---- setup ----------------------------------------------------------------------------

    def _start_runtime(self) -> None:
        """Device, process group, threads and precision of this process."""
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = choose_device(self.config.device, local_rank=local_rank)
        self.context = distributed.init_distributed(self.device.type)
        self.is_main = self.context.is_main
        self.threads = set_threads(
            self.config.threads, local_world_size=self.context.local_world_size
        )
        if self.config.keep_freed_memory:  # before the model and its first step allocate
            keep_freed_memory()
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high")  # TF32 for the fp32 parts
        self.autocast_dtype = autocast_dtype(self.device, self.config.precision)

    def _open_run_dir(self, resume: Path | None) -> Path:
        """The resumed run's folder (its config must match), or a new one made by rank 0."""
        if resume is not None:
            saved = TrainConfig.from_toml(resume / runs.RUN_CONFIG_FILE)
            check_resumable(saved, self.config)
            return resume
        return distributed.broadcast_from_main(
            runs.new_run_dir(Path(self.config.out_dir), self.config.name) if self.is_main else None,
            self.context,
        )

    def _build_model(self, init_model: GPT | None) -> None:
        """The model (from the seed, or ``--init-from`` weights), its optimizer and wrappers."""
        config = self.config
        self.model_config = self._model_config(init_model)
        # as the walkthrough does: torch.manual_seed(seed), then the model from that stream, and
        # dropout continues it, so no mask reuses the random numbers that drew the weights (a
        # separate generator seeded alike would replay them); other processes then take their
        # own dropout streams
        seed_everything(config.seed)
        self.model = GPT(self.model_config)
        if self.context.rank:
            seed_everything(config.seed + self.context.rank)
        if init_model is not None:
            self.model.load_state_dict(init_model.state_dict())
        self.model.to(self.device).train()
        self.optimizer = build_optimizer(
            self.model,
            lr=config.lr,
            weight_decay=config.weight_decay,
            betas=(config.beta1, config.beta2),
        )
        self.step_model = distributed.wrap_model(self.model, self.context)
        if config.compile:  # checkpoints save self.model, so no "_orig_mod." prefix
            self.step_model = torch.compile(self.step_model)

    def _plan_batches(self, data: PreparedData) -> None:
        """Windows, batches, accumulation, step count, evaluation windows and the baseline."""
        config = self.config
        context_length = self.model_config.context_length
        self.train_set = SlidingWindowDataset(
            data.train, max_length=context_length, stride=config.stride or context_length
        )
        self.val_set = _val_windows(data.val, context_length)
        self.plan = BatchPlan(
            len(self.train_set), config.batch_size, self.context.world_size, seed=config.seed
        )
        tokens_per_micro_batch = self.plan.global_batch_size * context_length
        self.accumulation = accumulation_steps(config.tokens_per_step, tokens_per_micro_batch)
        self.tokens_per_step = tokens_per_micro_batch * self.accumulation
        self.total_steps = total_steps(
            config, batches_per_epoch=self.plan.batches_per_epoch, accumulation=self.accumulation
        )
        eval_windows = config.eval_batches * self.plan.global_batch_size
        self.val_indices = np.arange(min(eval_windows, len(self.val_set)))
        self.train_eval_indices = np.arange(min(eval_windows, len(self.train_set)))
        self.unigram_loss = unigram_cross_entropy(
            data.train.tokens, data.val.tokens, vocab_size=self.tokenizer.vocab_size
        )
        self.data_identity = {
            "tokenizer_fingerprint": self.tokenizer.fingerprint,
            "train_tokens": len(data.train),
            "val_tokens": len(data.val),
        }

    def _model_config(self, init_model: GPT | None):
        config = self.config
        if init_model is None:
            return config.model_config(vocab_size=self.tokenizer.vocab_size)
        # the checkpoint fixes the shape; only the dropout rate may change for the new run
        shape_changes = {k: v for k, v in config.model_overrides.items() if k != "dropout"}
        base = init_model.config
        if any(getattr(base, key) != value for key, value in shape_changes.items()):
            raise ConfigError(
                f"--init-from {config.init_from} fixes the model's shape; drop the overrides "
                f"{sorted(shape_changes)} (only dropout may change)"
            )
        return base.replace(dropout=config.model_overrides.get("dropout", base.dropout))

    def _restore(self, checkpoint: Path) -> None:
        """Load the weights, optimizer, step, random state and metrics of ``checkpoint``."""
        model, tokenizer = load_checkpoint(checkpoint)
        if model.config != self.model_config:
            raise CheckpointError(
                f"{checkpoint} holds a model of another shape than this run's config "
                f"({model.config} vs {self.model_config})"
            )
        state = load_training_state(checkpoint)
        for key, value in self.data_identity.items():
            if state.get("data", {}).get(key) != value:
                raise CheckpointError(
                    f"{checkpoint} was trained on other data ({key} "
                    f"{state.get('data', {}).get(key)!r}, now {value!r}); resume needs the "
                    "run's own data folder"
                )
        if state.get("world_size") != self.context.world_size:
            raise CheckpointError(
                f"{checkpoint} was saved by {state.get('world_size')} process(es); resume it "
                f"with the same number (now {self.context.world_size}) to keep the data order"
            )
        self.model.load_state_dict(model.state_dict())
        load_optimizer_state(self.optimizer, state.get("optimizer"), checkpoint)
        self.step = int(state["step"])
        self.best_val_loss = state.get("best_val_loss")
        self.best_step = state.get("best_step")
        self.last_val_loss = state.get("val_loss")
        self.saved_step, self.writer.last = self.step, checkpoint
        set_rng_state(state["rng"][self.context.rank])
        if self.is_main:
            self.metrics = MetricsLog.resume(self.run_dir / runs.METRICS_FILE, up_to_step=self.step)
        self.log(f"resumed from {checkpoint} at step {self.step:,}")

    def _write_run_files(self, *, setup_seconds: float, resumed: Path | None) -> None:
        info = {
            "model": self.model_config.to_dict(),
            "parameters": num_parameters(self.model_config),
            "tokenizer": self.tokenizer.describe(),
            **self.data_identity,
            "train_windows": len(self.train_set),
            "val_windows": len(self.val_set),
            "batch_size": self.config.batch_size,
            "world_size": self.context.world_size,
            "accumulation": self.accumulation,
            "tokens_per_step": self.tokens_per_step,
            "batches_per_epoch": self.plan.batches_per_epoch,
            "total_steps": self.total_steps,
            "unigram_loss": self.unigram_loss,
            "device": str(self.device),
            "autocast": str(self.autocast_dtype) if self.autocast_dtype else "fp32",
            "threads": self.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
        if self.is_main:
            atomic_write_text(self.run_dir / runs.RUN_CONFIG_FILE, self.config.to_toml())
            atomic_write_text(self.run_dir / runs.RUN_INFO_FILE, json.dumps(info, indent=1) + "\n")
            if resumed is None:
                self.metrics.append("start", step=0, tokens=0, **info)
        self.log(
            f"model: {self.model_config.n_layer} layers, width {self.model_config.n_embd}, "
            f"context {self.model_config.context_length}, vocab {self.model_config.vocab_size:,} "
            f"({info['parameters']:,} parameters) on {self.device} "
            f"({info['autocast']}, {self.threads} threads, {self.context.world_size} process(es))"
        )
        self.log(
            f"data: {len(self.train_set):,} train windows, {len(self.val_set):,} val windows; "
            f"{self.tokens_per_step:,} tokens per step ({self.accumulation} micro-batch(es)), "
            f"{self.total_steps:,} steps; unigram baseline val loss {self.unigram_loss:.3f} "
            f"(setup {setup_seconds:.1f} s)"
        )

    # ---- the loop --------------------------------------------------------------------------

    def run(self, *, stop_after: int | None, show_progress: bool) -> TrainResult:
        started = time.perf_counter()
        first_step = self.step
        progress = tqdm(
            total=self.total_steps,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            disable=not (show_progress and self.is_main),
        )
        self.progress = progress
        stopped_by = None
        with self.stop.installed(), progress, self._writes_finished():
            if self.step == 0:
                self._evaluate()
            while self.step < self.total_steps:
                if self.stop.signal is not None:
                    stopped_by = self.stop.signal
                    break
                if stop_after is not None and self.step - first_step >= stop_after:
                    stopped_by = "stop_after"
                    break
                self._train_step()
                improved = False
                if self.step % self.config.eval_every == 0 or self.step == self.total_steps:
                    improved = self._evaluate()
                every = self.config.checkpoint_every or self.config.eval_every
                if improved or self.step % every == 0 or self.step == self.total_steps:
                    self._save()
            self._save()
        if stopped_by in ("SIGINT", "SIGTERM"):
            self.log(f"{stopped_by}: stopped at step {self.step:,}, saved {self.last_checkpoint}")
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            total_steps=self.total_steps,
            tokens_seen=self.step * self.tokens_per_step,
            stopped_by=stopped_by,
            val_loss=self.last_val_loss,
            best_val_loss=self.best_val_loss,
            unigram_loss=self.unigram_loss,
            checkpoint=self.last_checkpoint,
            elapsed_seconds=time.perf_counter() - started,
            losses=tuple(self.metrics.losses()),
        )

    @property
    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint known to be complete on disk."""
        return self.writer.last

    @contextlib.contextmanager
    def _writes_finished(self):
        """Wait for the checkpoint being written (if any) when the loop ends, however it ends;
        a failed write is raised, unless another error is already on its way out."""
        try:
            yield
        except BaseException:
            try:
                self.writer.wait()
            except CheckpointError as error:
                self.log(f"also: {error}")
            raise
        self.writer.wait()

    def _train_step(self) -> None:
        config, model = self.config, self.model
        started = time.perf_counter()
        lr = learning_rate(
            self.step,
            max_lr=config.lr,
            min_lr=config.min_lr,
            warmup_steps=config.warmup_steps,
            total_steps=self.total_steps,
            schedule=config.schedule,
        )
        set_learning_rate(self.optimizer, lr)
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(self.accumulation):
            micro_batch = self.step * self.accumulation + micro
            indices = self.plan.window_indices(micro_batch, rank=self.context.rank)
            inputs, targets = stack_windows(self.train_set, indices)
            inputs, targets = inputs.to(self.device), targets.to(self.device)
            last = micro == self.accumulation - 1
            # DDP averages gradients in backward; between micro-batches there is nothing to sync
            no_sync = getattr(self.step_model, "no_sync", None)
            syncing = contextlib.nullcontext() if last or no_sync is None else no_sync()
            with syncing:
                with autocast(self.device, self.autocast_dtype):
                    logits = self.step_model(inputs)  # (B, T, V)
                loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
                (loss / self.accumulation).backward()
            loss_sum += loss.detach()
        clip = config.grad_clip if config.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

        local = [float(loss_sum) / self.accumulation, float(self.stop.signal is not None)]
        mean_loss, stop_votes = distributed.all_reduce_sum(local, self.context)
        mean_loss /= self.context.world_size
        if stop_votes and self.stop.signal is None:  # another process got the signal
            self.stop.signal = "SIGTERM"
        if not math.isfinite(mean_loss):
            raise TrainingError(
                f"the loss became {mean_loss} at step {self.step}; lower lr (now {lr:.3g}) or "
                f"resume from the last checkpoint ({self.last_checkpoint})"
            )
        seconds = time.perf_counter() - started
        tokens_per_second = self.tokens_per_step / seconds
        self.metrics.append(
            "train",
            step=self.step,
            tokens=self.step * self.tokens_per_step,
            loss=mean_loss,
            lr=lr,
            grad_norm=float(grad_norm),
            seconds=seconds,
            tokens_per_second=tokens_per_second,
        )
        self.progress.set_postfix(
            loss=f"{mean_loss:.3f}",
            lr=f"{lr:.2e}",
            tok_s=f"{tokens_per_second:,.0f}",
            refresh=False,
        )
        self.progress.update(1)

    def _mean_loss(self, dataset: SlidingWindowDataset, indices: np.ndarray) -> float:
        """The mean loss over the windows ``indices``, split across the processes."""
        mine = indices[self.context.rank :: self.context.world_size]
        nats = 0.0
        for start in range(0, len(mine), self.config.batch_size):
            inputs, targets = stack_windows(dataset, mine[start : start + self.config.batch_size])
            nats += summed_loss(self.model, inputs, targets, autocast_dtype=self.autocast_dtype)
        count = len(mine) * dataset.max_length
        total_nats, total_count = distributed.all_reduce_sum([nats, count], self.context)
        return total_nats / total_count

    def _evaluate(self) -> bool:
        """Val and train loss on fixed windows, a sample, the plot; True if val improved."""
        self._adapt_threads()
        val_loss = self._mean_loss(self.val_set, self.val_indices)
        train_loss = self._mean_loss(self.train_set, self.train_eval_indices)
        self.last_val_loss = val_loss
        # the evaluation before the first step is a reference point, not a candidate
        improved = self.step > 0 and (self.best_val_loss is None or val_loss < self.best_val_loss)
        if improved:
            self.best_val_loss = val_loss
            self.best_step = self.step
        if not self.is_main:
            return improved
        sample = self._sample()
        self.metrics.append(
            "eval",
            step=self.step,
            tokens=self.step * self.tokens_per_step,
            val_loss=val_loss,
            val_perplexity=perplexity(val_loss),
            train_loss_eval=train_loss,
            sample=sample,
        )
        self.log(
            f"step {self.step:,}/{self.total_steps:,}: train loss {train_loss:.3f}, "
            f"val loss {val_loss:.3f} (perplexity {perplexity(val_loss):.1f}; "
            f"unigram baseline {self.unigram_loss:.3f})"
        )
        if sample is not None:
            self.log(f"  sample: {self.config.sample_prompt + sample!r}")
        self._plot()
        self.metrics.flush()
        return improved

    def _adapt_threads(self) -> None:
        """With ``threads = 0``, follow the machine's load: never more threads than free cores
        (runtime.default_threads says why). A fixed ``threads`` keeps results bit-exact."""
        if self.config.threads:
            return
        count = auto_threads(local_world_size=self.context.local_world_size)
        if count != self.threads:
            self.log(f"threads: {self.threads} -> {count} (other processes are busy or done)")
            torch.set_num_threads(count)
            self.threads = count

    def _sample(self) -> str | None:
        if not self.config.sample_tokens:
            return None
        sampling = SamplingConfig(max_new_tokens=self.config.sample_tokens)
        pieces = generate_with_config(
            self.model, self.tokenizer, self.config.sample_prompt, sampling
        )
        return "".join(pieces)

    def _plot(self) -> None:
        from scratchllm.viz import plot_losses

        curves = self.metrics.curves()
        plot_losses(
            self.run_dir / runs.PLOT_FILE,
            train=curves["train"],
            val=curves["val"],
            train_eval=curves["train_eval"],
            baseline=self.unigram_loss,
            title=f"{self.run_dir.name}: {self.config.model}, {self.tokens_per_step:,} tokens/step",
        )

    def _save(self) -> None:
        """Checkpoint this step (once): the state is copied now and written in the background
        (``checkpointing.py``) while training goes on; the last K and the best are kept."""
        if self.saved_step == self.step:
            return
        states = distributed.gather_to_main(rng_state(), self.context)
        if self.is_main:
            epoch, batch = self.plan.position(self.step * self.accumulation)
            copy = cpu_copy if self.writer.background else (lambda value: value)
            state = {
                "step": self.step,
                "micro_batches": self.step * self.accumulation,
                "epoch": epoch,
                "batch_in_epoch": batch,
                "tokens_seen": self.step * self.tokens_per_step,
                "optimizer": copy(self.optimizer.state_dict()),
                "rng": states,
                "world_size": self.context.world_size,
                "best_val_loss": self.best_val_loss,
                "best_step": self.best_step,
                "val_loss": self.last_val_loss,
                "data": self.data_identity,
            }
            weights = copy(self.model.state_dict())
            step, best, best_val_loss = self.step, self.best_step == self.step, self.best_val_loss
            run_dir, keep_last = self.run_dir, self.config.keep_last
            extra = {"step": step, "tokens_seen": state["tokens_seen"]}
            # metrics first: a kill between the two must never leave a checkpoint whose steps
            # are missing from metrics.jsonl (resume drops records past the checkpoint anyway)
            self.metrics.flush()

            def write() -> Path:
                final = runs.checkpoint_dir(run_dir, step)
                temporary = runs.temporary_checkpoint_dir(run_dir, step)
                save_checkpoint(
                    temporary, self.model, self.tokenizer, extra=extra, training_state=state,
                    state_dict=weights,
                )  # fmt: skip
                runs.publish_checkpoint(temporary, final)
                if best:
                    runs.record_best(run_dir, step=step, val_loss=best_val_loss)
                runs.prune_checkpoints(run_dir, keep_last=keep_last)
                return final

            self.writer.submit(write)
        distributed.barrier(self.context)
        self.saved_step = self.step

    def log(self, message: str) -> None:
        if self.is_main:
            tqdm.write(message, file=sys.stdout)


def _val_windows(tokens: Any, context_length: int) -> SlidingWindowDataset:
    try:
        return SlidingWindowDataset(tokens, max_length=context_length, stride=context_length)
    except DataLengthError:
        raise DataLengthError(
            f"the val split has {len(tokens):,} tokens, fewer than one window of context "
            f"{context_length} + 1; raise val_fraction, use more text or a shorter context"
        ) from None
