"""Pretraining: the loop and the pieces it is made of.

- ``schedule.py``: the learning rate at each step (linear warmup, cosine decay), pure;
- ``optim.py``: AdamW with weight decay on the weight matrices only;
- ``batches.py``: which windows each step reads, reproducible from the step alone;
- ``data.py``: the run's token files, prepared from a corpus and tokenizer spec if needed;
- ``metrics.py``: the JSONL metrics file, consistent with the checkpoints;
- ``run_dir.py``: the run folder and its checkpoints (last K + best, atomic);
- ``distributed.py``: data-parallel training under ``torchrun``;
- ``loop.py``: ``train(config)``, tying them together, with resume and clean interrupts.
"""

from scratchllm.train.loop import TrainResult, train
from scratchllm.train.schedule import learning_rate

__all__ = ["TrainResult", "learning_rate", "train"]
