"""Training: one run machinery and one optimizer step for every objective, and pretraining.

- ``schedule.py``: the learning rate at each step (linear warmup, cosine decay), pure;
- ``optim.py``: AdamW with weight decay on the weight matrices only;
- ``step.py``: one optimizer step: micro-batches -> a loss function -> accumulate, clip, step;
- ``batches.py``: which examples each step reads, reproducible from the step alone;
- ``objective.py``: what a run trains for (data, model, batches, loss, metrics): the contract;
- ``run.py``: the run machinery: run folder, checkpoints, exact resume, interrupts, metrics,
  progress, plots, DDP, for any objective;
- ``pretrain.py``: next-token prediction over a corpus, ``train(config)``: one objective;
- ``data.py``: pretraining's token files, prepared from a corpus and tokenizer spec if needed;
- ``metrics.py``, ``run_dir.py``, ``checkpointing.py``, ``resume.py``, ``interrupts.py``,
  ``distributed.py``: the machinery's parts.
"""

from scratchllm.train.pretrain import train
from scratchllm.train.run import TrainResult
from scratchllm.train.schedule import learning_rate

__all__ = ["TrainResult", "learning_rate", "train"]
