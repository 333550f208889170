"""The run machinery: one training run of any objective, with nothing lost.

``Run(config, objective).run()`` trains ``objective`` (``objective.py``: its data, model,
batches, loss and metrics) under ``config`` (``config.RunOptions``: the run folder, batch,
length, optimizer, schedule, evaluation, checkpoints, runtime). Pretraining
(``pretrain.py``) and every finetuning objective go through here. In order:

1. runtime: device, process group under ``torchrun``, threads, precision, malloc tuning;
2. the run folder (``run_dir.py``): a new one, or the resumed run's own;
3. the objective prepares its data; torch is seeded and it builds its model (the walkthrough's
   order: ``torch.manual_seed(seed)``, then the model, and dropout continues that stream);
4. AdamW over the trainable parameters (``optim.py``), the DDP / ``torch.compile`` wrappers,
   and the batch plan (``batches.py``): which examples each micro-batch reads, a function of
   the step, so resuming needs no loader state;
5. on resume, the weights, optimizer moments, step, random states and metrics of the last
   checkpoint, after checking that the config, the data and the model are the run's own;
6. the loop: each step is ``step.optimizer_step`` at the schedule's learning rate; every
   ``eval_every`` steps the objective's evaluation, a sample, ``metrics.jsonl`` and the plot;
   a checkpoint when the val loss improved or ``checkpoint_every`` says so, copied at once and
   written in a background thread (``checkpointing.py``).

SIGINT and SIGTERM finish the step, save and return (``interrupts.py``); ``kill -9`` loses only
the steps since the last checkpoint; ``Run(..., resume=run_dir)`` continues with exactly the
losses the uninterrupted run would have had (bit for bit on the CPU).
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

import torch
from tqdm import tqdm

from scratchllm.config import RunOptions
from scratchllm.errors import CheckpointError, TrainingError
from scratchllm.io import atomic_write_text
from scratchllm.model.gpt import num_parameters
from scratchllm.runtime import (
    auto_threads,
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
from scratchllm.train.batches import BatchPlan, accumulation_steps, total_steps
from scratchllm.train.checkpointing import CheckpointWriter, cpu_copy
from scratchllm.train.interrupts import StopRequest
from scratchllm.train.metrics import MetricsLog
from scratchllm.train.objective import Objective, RunContext
from scratchllm.train.optim import build_optimizer
from scratchllm.train.resume import check_resumable, load_optimizer_state
from scratchllm.train.schedule import learning_rate
from scratchllm.train.step import optimizer_step
from scratchllm.weights.checkpoint import load_training_state, save_checkpoint


@dataclass(frozen=True)
class TrainResult:
    """How a run's session ended."""

    run_dir: Path
    step: int  # optimizer steps done, all sessions together
    total_steps: int
    tokens_seen: int
    stopped_by: str | None  # "SIGINT", "SIGTERM", "stop_after", or None when the run finished
    val_loss: float | None  # at the last evaluation
    best_val_loss: float | None
    baseline_loss: float | None  # the objective's reference (pretraining: the unigram loss)
    checkpoint: Path | None  # the last one saved
    elapsed_seconds: float  # this session
    losses: tuple[float, ...]  # the training loss of every step, all sessions together
    metrics: dict[str, float] | None = None  # the objective's metrics at the last evaluation
    final: dict[str, Any] | None = None  # what the objective's ``finish`` measured at the end

    @property
    def unigram_loss(self) -> float | None:
        """Pretraining's name for its baseline."""
        return self.baseline_loss


class Run:
    """One session of a run: set up in ``__init__``, then ``run``; see the module docstring."""

    def __init__(
        self, config: RunOptions, objective: Objective, *, resume: Path | None = None
    ) -> None:
        started = time.perf_counter()
        self.config, self.objective = config, objective
        self._start_runtime()
        self.run_dir = self._open_run_dir(resume)
        self.log(f"run folder: {self.run_dir}")
        try:
            self._set_up(resume, started)
        except BaseException:
            distributed.shutdown(self.context)
            raise

    def _set_up(self, resume: Path | None, started: float) -> None:
        config, objective = self.config, self.objective
        self.run_context = RunContext(
            run_dir=self.run_dir,
            device=self.device,
            rank=self.context.rank,
            world_size=self.context.world_size,
            is_main=self.is_main,
            resuming=resume is not None,
            autocast_dtype=self.autocast_dtype,
            barrier=lambda: distributed.barrier(self.context),
            reduce_sum=lambda values: distributed.all_reduce_sum(values, self.context),
            log=self.log,
        )
        objective.prepare(self.run_context)
        self.tokenizer = objective.tokenizer
        # as the walkthrough does: torch.manual_seed(seed), then the model from that stream, and
        # dropout continues it, so no mask reuses the random numbers that drew the weights (a
        # separate generator seeded alike would replay them); other processes then take their
        # own dropout streams
        seed_everything(config.seed)
        self.model = objective.build_model()
        if self.context.rank:
            seed_everything(config.seed + self.context.rank)
        self.model.to(self.device).train()
        self.trainable = objective.trainable_parameters()
        self.optimizer = build_optimizer(
            self.model,
            lr=config.lr,
            weight_decay=config.weight_decay,
            betas=(config.beta1, config.beta2),
        )
        self.step_model = distributed.wrap_model(self.model, self.context)
        if config.compile:  # checkpoints save the objective's modules: no "_orig_mod." prefix
            self.step_model = torch.compile(self.step_model)
        self._plan_batches()

        self.step = 0
        self.best_val_loss: float | None = None
        self.best_step: int | None = None
        self.last_val_loss: float | None = None
        self.last_metrics: dict[str, float] | None = None
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
            saved = runs.read_run_config(resume, type(self.config))
            check_resumable(saved, self.config)
            return resume
        return distributed.broadcast_from_main(
            runs.new_run_dir(Path(self.config.out_dir), self.config.name, log=self.log)
            if self.is_main
            else None,
            self.context,
        )

    def _plan_batches(self) -> None:
        """Batches, accumulation and the step count."""
        config, objective = self.config, self.objective
        world_size = self.context.world_size
        self.plan = BatchPlan(
            objective.num_examples, config.batch_size, world_size, seed=config.seed,
            order=objective.epoch_order(config.seed, config.batch_size * world_size),
        )  # fmt: skip
        tokens_per_micro_batch = self.plan.global_batch_size * objective.tokens_per_example
        self.accumulation = accumulation_steps(config.tokens_per_step, tokens_per_micro_batch)
        self.tokens_per_step = tokens_per_micro_batch * self.accumulation
        self.total_steps = total_steps(
            config, batches_per_epoch=self.plan.batches_per_epoch, accumulation=self.accumulation
        )

    def _restore(self, checkpoint: Path) -> None:
        """Load the weights, optimizer, step, random state and metrics of ``checkpoint``."""
        state = load_training_state(checkpoint)
        if "config" in state:  # train.toml edited since this checkpoint was written?
            saved = type(self.config).from_dict(state["config"])
            check_resumable(saved, self.config, what=f"{checkpoint} was trained with")
        for key, value in self.objective.identity().items():
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
        self.objective.load_weights(checkpoint)
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
        model_config = self.objective.model_config
        trainable = sum(p.numel() for p in self.trainable)
        objective_info = self.objective.info()
        info = {
            "model": model_config.to_dict(),
            "parameters": num_parameters(model_config),
            "trainable_parameters": trainable,
            "tokenizer": self.tokenizer.describe(),
            **self.objective.identity(),
            **objective_info,
            "batch_size": self.config.batch_size,
            "world_size": self.context.world_size,
            "accumulation": self.accumulation,
            "tokens_per_step": self.tokens_per_step,
            "batches_per_epoch": self.plan.batches_per_epoch,
            "total_steps": self.total_steps,
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
        trained = ""
        if trainable != sum(p.numel() for p in self.model.parameters()):
            trained = f", {trainable:,} of them trained"
        self.log(
            f"model: {model_config.n_layer} layers, width {model_config.n_embd}, "
            f"context {model_config.context_length}, vocab {model_config.vocab_size:,} "
            f"({info['parameters']:,} parameters{trained}) on {self.device} "
            f"({info['autocast']}, {self.threads} threads, {self.context.world_size} process(es))"
        )
        self.log(f"data: {self.objective.describe_data()}")
        self.log(
            f"steps: {self.total_steps:,}, {self.tokens_per_step:,} tokens each "
            f"({self.accumulation} micro-batch(es) of {self.plan.global_batch_size} examples; "
            f"{self.plan.batches_per_epoch:,} batches per epoch); setup {setup_seconds:.1f} s"
        )

    # ---- the loop --------------------------------------------------------------------------

    def run(self, *, stop_after: int | None = None, show_progress: bool = True) -> TrainResult:
        """Train to the end (or ``stop_after`` more steps, then save as if interrupted)."""
        try:
            return self._loop(stop_after=stop_after, show_progress=show_progress)
        finally:
            distributed.shutdown(self.context)

    def _loop(self, *, stop_after: int | None, show_progress: bool) -> TrainResult:
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
        final = None
        if stopped_by is None:
            final = self.objective.finish(self.model, self.run_context)
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
            baseline_loss=self.objective.baseline_loss,
            checkpoint=self.last_checkpoint,
            elapsed_seconds=time.perf_counter() - started,
            losses=tuple(self.metrics.losses()),
            metrics=self.last_metrics,
            final=final,
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
        config = self.config
        started = time.perf_counter()
        lr = learning_rate(
            self.step,
            max_lr=config.lr,
            min_lr=config.min_lr,
            warmup_steps=config.warmup_steps,
            total_steps=self.total_steps,
            schedule=config.schedule,
        )
        first_micro_batch = self.step * self.accumulation
        rank = self.context.rank

        def micro_batch(index: int):
            indices = self.plan.window_indices(first_micro_batch + index, rank=rank)
            return self.objective.batch(indices)

        result = optimizer_step(
            self.step_model,
            self.optimizer,
            micro_batch,
            self.objective.loss,
            accumulation=self.accumulation,
            lr=lr,
            grad_clip=config.grad_clip,
            device=self.device,
            autocast_dtype=self.autocast_dtype,
            parameters=self.trainable,
        )
        self.step += 1

        local = [result.loss, float(self.stop.signal is not None)]
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
            grad_norm=result.grad_norm,
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

    def _evaluate(self) -> bool:
        """The objective's metrics, a sample, the plot; True if the val loss improved."""
        self._adapt_threads()
        # plain floats: they go into checkpoints, which hold tensors and plain data only
        metrics = {name: float(value) for name, value in
                   self.objective.evaluate(self.model, self.run_context).items()}  # fmt: skip
        val_loss = metrics["val_loss"]
        self.last_val_loss, self.last_metrics = val_loss, metrics
        # the evaluation before the first step is a reference point, not a candidate
        improved = self.step > 0 and (self.best_val_loss is None or val_loss < self.best_val_loss)
        if improved:
            self.best_val_loss = val_loss
            self.best_step = self.step
        if not self.is_main:
            return improved
        sample = self.objective.sample(self.model)
        self.metrics.append(
            "eval", step=self.step, tokens=self.step * self.tokens_per_step, **metrics,
            sample=sample,
        )  # fmt: skip
        self.log(
            f"step {self.step:,}/{self.total_steps:,}: "
            f"{self.objective.describe_evaluation(metrics)}"
        )
        if sample is not None:
            self.log(f"  sample: {self.objective.sample_prompt + sample!r}")
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

    def _plot(self) -> None:
        from scratchllm.viz import plot_losses

        curves = self.metrics.curves()
        title = (
            f"{self.run_dir.name}: {self.objective.plot_title()}, "
            f"{self.tokens_per_step:,} tokens/step"
        )
        plot_losses(
            self.run_dir / runs.PLOT_FILE,
            train=curves["train"],
            val=curves["val"],
            train_eval=curves["train_eval"],
            baseline=self.objective.baseline_loss,
            title=title,
            unit=self.objective.loss_unit,
        )
        self.objective.plot(self.run_dir, self.metrics.records, title)

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
                "data": self.objective.identity(),
                "config": self.config.to_dict(),
            }
            parts = self.objective.checkpoint_parts()
            weights = copy(parts.model.state_dict())
            head_weights = None if parts.head is None else copy(parts.head.state_dict())
            step, best, best_val_loss = self.step, self.best_step == self.step, self.best_val_loss
            run_dir, keep_last = self.run_dir, self.config.keep_last
            extra = {"step": step, "tokens_seen": state["tokens_seen"], **parts.extra}
            # metrics first: a kill between the two must never leave a checkpoint whose steps
            # are missing from metrics.jsonl (resume drops records past the checkpoint anyway)
            self.metrics.flush()

            def write() -> Path:
                final = runs.checkpoint_dir(run_dir, step)
                temporary = runs.temporary_checkpoint_dir(run_dir, step)
                save_checkpoint(
                    temporary, parts.model, parts.tokenizer, head=parts.head,
                    head_config=parts.head_config, prompt_format=parts.prompt_format,
                    extra=extra, training_state=state, state_dict=weights,
                    head_state_dict=head_weights,
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


def run_training(
    config: RunOptions,
    objective: Objective,
    *,
    resume: str | Path | None = None,
    stop_after: int | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Set up and run ``objective`` under ``config`` (or continue the run folder ``resume``)."""
    run = Run(config, objective, resume=None if resume is None else Path(resume))
    return run.run(stop_after=stop_after, show_progress=show_progress)
