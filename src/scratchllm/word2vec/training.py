"""The Word2Vec training run: vocabulary, jobs of text, worker threads, progress, result.

The text (word ids in order) is cut into **jobs** of about ``JOB_WORDS`` words at sentence
starts, ``epochs`` times over. A job is subsampled, turned into context windows
(``windows.py``) and noise words, then read in order in batches of ``batch_size`` consecutive
center words, each one SGD step of ``Word2Vec.skipgram_step`` (or ``cbow_step``) at the
learning rate for the run's progress so far.

``workers`` threads take jobs from a shared queue and update the same two tables without locks
("Hogwild", Recht et al. 2011), as gensim's and word2vec's worker threads do; torch releases
the GIL inside its kernels, so the threads overlap (measured on 2 idle cores: 1.8x the
speed of one worker at 128 centers per batch). Each worker runs torch with one intra-op thread:
on kernels this small, two intra-op threads ran 13x slower than one while another process
kept a core busy (OpenMP threads wait for each other at every operation).
Every job draws its randomness from a generator seeded by (seed, epoch, job), so a run with
one worker is exactly reproducible; with more, the order of racing updates varies.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from scratchllm.errors import ConfigError
from scratchllm.word2vec.model import Word2Vec, Word2VecConfig, linear_learning_rate
from scratchllm.word2vec.vectors import WordVectors
from scratchllm.word2vec.vocab import Vocabulary, keep_probabilities, noise_distribution
from scratchllm.word2vec.windows import context_windows, reduced_windows

JOB_WORDS = 10_000  # words per job, as gensim's batch_words: a thread's unit of work


@dataclass(frozen=True)
class TrainingResult:
    """Trained vectors and how the run went."""

    vectors: WordVectors
    epoch_losses: list[float]  # mean loss per (context, center) pair, per epoch
    seconds: float  # wall time, vocabulary building included
    words: int  # words of the training text (out-of-vocabulary ones included) times epochs

    @property
    def words_per_second(self) -> float:
        return self.words / self.seconds if self.seconds > 0 else math.inf


def train_word2vec(
    sentences: Iterable[Sequence[str]],
    config: Word2VecConfig | None = None,
    *,
    workers: int = 1,
    show_progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Build the vocabulary of ``sentences`` (lists of words, see ``words.py``) and train.

    Raises ``DataLengthError`` when fewer than two words reach ``min_count``.
    """
    config = config or Word2VecConfig()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    start = time.perf_counter()
    sentences = sentences if isinstance(sentences, list) else list(sentences)
    vocabulary = Vocabulary.build(sentences, min_count=config.min_count)
    corpus_words = sum(len(sentence) for sentence in sentences)
    run = _Run(vocabulary, sentences, config)
    if log is not None:
        log(
            f"vocabulary: {len(vocabulary):,} words with count >= {config.min_count} "
            f"({len(run.ids):,} of {corpus_words:,} words of text); training "
            f"{config.architecture} with {workers} worker thread(s)"
        )
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    for epoch in range(config.epochs):
        for number, job in enumerate(_job_slices(run.sentence_ids)):
            jobs.put((epoch, number, job))
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    progress = tqdm(
        total=run.total_words,
        unit="word",
        unit_scale=True,
        desc=f"word2vec {config.architecture}",
        disable=not (show_progress and sys.stderr.isatty()),
    )
    try:
        with progress:
            run.progress = progress
            _run_workers(run, jobs, workers)
    finally:
        torch.set_num_threads(threads_before)
    vectors = WordVectors(
        vocabulary.words,
        run.model.input_vectors.weight.detach().clone(),
        counts=vocabulary.counts,
        metadata={"word2vec": config.to_dict()},
    )
    seconds = time.perf_counter() - start
    return TrainingResult(vectors, run.epoch_losses(), seconds, corpus_words * config.epochs)


def _run_workers(run: _Run, jobs: queue.SimpleQueue, workers: int) -> None:
    """Drain ``jobs`` with ``workers`` threads; re-raise the first error any of them met."""
    if workers == 1:
        run.work(jobs)
        return
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run.work(jobs)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread below
            errors.append(error)
            run.stop.set()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.1)  # short waits keep Ctrl-C responsive
    except BaseException:
        run.stop.set()
        raise
    if errors:
        raise errors[0]


class _Run:
    """What the workers share: the model, the encoded text, the tables, progress and losses."""

    def __init__(
        self, vocabulary: Vocabulary, sentences: list[Sequence[str]], config: Word2VecConfig
    ) -> None:
        self.config = config
        self.ids, self.sentence_ids = vocabulary.encode(sentences)
        generator = torch.Generator().manual_seed(config.seed)
        self.model = Word2Vec(len(vocabulary), config.dim, generator=generator)
        self.keep = keep_probabilities(vocabulary.counts, config.sample)
        noise = np.cumsum(noise_distribution(vocabulary.counts))
        self.noise_cdf = torch.from_numpy(noise).float()
        self.step = (
            self.model.skipgram_step if config.architecture == "skipgram" else self.model.cbow_step
        )
        self.total_words = len(self.ids) * config.epochs
        self.done_words = 0  # read by every worker for the learning rate; += under the lock
        self.losses = [[0.0, 0] for _ in range(config.epochs)]  # per epoch: loss sum, pairs
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.progress: tqdm | None = None

    def epoch_losses(self) -> list[float]:
        return [total / max(pairs, 1) for total, pairs in self.losses]

    def work(self, jobs: queue.SimpleQueue) -> None:
        while not self.stop.is_set():
            try:
                epoch, number, job = jobs.get_nowait()
            except queue.Empty:
                return
            self.train_job(epoch, number, job)

    def train_job(self, epoch: int, number: int, job: slice) -> None:
        config = self.config
        rng = np.random.default_rng([config.seed, epoch, number])
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        ids, sentence_ids = self.ids[job], self.sentence_ids[job]
        kept = rng.random(len(ids)) < self.keep[ids]  # subsampling
        sizes = reduced_windows(int(kept.sum()), config.window, rng)
        centers, contexts, mask = context_windows(
            ids[kept], sentence_ids[kept], sizes, window=config.window
        )
        centers = torch.from_numpy(centers).long()
        contexts = torch.from_numpy(contexts).long()
        slots = torch.from_numpy(mask).float()
        targets = _with_noise(centers, self.noise_cdf, config.negative, generator)
        noise_weights = (targets != centers.unsqueeze(1)).float()  # a noise word = center: skip
        noise_weights[:, 0] = 1.0
        loss = torch.zeros(())
        start_words = self.done_words
        for first in range(0, len(centers), config.batch_size):
            batch = slice(first, first + config.batch_size)
            done = start_words + first / len(centers) * len(ids)
            lr = linear_learning_rate(
                done / self.total_words, alpha=config.alpha, min_alpha=config.min_alpha
            )
            loss += self.step(
                contexts[batch], slots[batch], targets[batch], noise_weights[batch], lr
            )
        pairs = int(mask.sum()) if config.architecture == "skipgram" else len(mask)
        with self.lock:
            self.done_words += len(ids)
            self.losses[epoch][0] += loss.item()
            self.losses[epoch][1] += pairs
            if self.progress is not None:
                self.progress.update(len(ids))
                total, count = self.losses[epoch]
                self.progress.set_postfix(epoch=epoch + 1, loss=f"{total / max(count, 1):.3f}")


def _job_slices(sentence_ids: np.ndarray) -> Iterator[slice]:
    """Consecutive slices of about ``JOB_WORDS`` positions, cut at sentence starts.

    >>> sentence_ids = np.repeat([0, 1, 2], [6_000, 6_000, 3_000])
    >>> [(job.start, job.stop) for job in _job_slices(sentence_ids)]
    [(0, 12000), (12000, 15000)]
    """
    count = len(sentence_ids)
    starts = np.flatnonzero(np.diff(sentence_ids, prepend=-1))  # first position of each sentence
    position = 0
    while position < count:
        # the first sentence start at or after position + JOB_WORDS, else the end
        index = np.searchsorted(starts, position + JOB_WORDS)
        end = int(starts[index]) if index < len(starts) else count
        yield slice(position, end)
        position = end


def _with_noise(
    centers: torch.Tensor, noise_cdf: torch.Tensor, negative: int, generator: torch.Generator
) -> torch.Tensor:
    """(N, 1+K): each center followed by K words drawn from the noise distribution."""
    draws = torch.rand(len(centers), negative, generator=generator)
    noise = torch.searchsorted(noise_cdf, draws, right=True).clamp_(max=len(noise_cdf) - 1)
    return torch.cat([centers.unsqueeze(1), noise], dim=1)
