"""Word2Vec from scratch: skip-gram (or CBOW) with negative sampling, trained by plain SGD.

The model is two embedding tables (``nn.Embedding``), ``input_vectors`` (the word vectors we
keep) and ``output_vectors`` (the vectors words are predicted with). For a center word ``c``
and a context word ``x``, skip-gram raises ``sigmoid(input[x] . output[c])`` and lowers
``sigmoid(input[x] . output[n])`` for ``negative`` noise words ``n`` drawn from the unigram
distribution to the 3/4 (``vocab.py``); CBOW does the same with the mean of the context's input
vectors in place of ``input[x]``. The learning rate falls linearly from ``alpha`` to
``min_alpha`` over the whole run, as in word2vec.

How it is fast in PyTorch: no autograd and no optimizer. A batch holds ``batch_size``
consecutive center words with all their context slots (``windows.py``); its scores are one
small batched matrix product, and the updates are the closed-form gradients, added in place
with ``index_add_``, so each table row costs one gather and one scatter per batch. The
negatives of one center word are shared by all of its context words (as in pWord2Vec, Ji et al.
2016, "Parallelizing Word2Vec in Shared and Distributed Memory"); each is still drawn from the
noise distribution, so the expected update is word2vec's, and the output table gets one row
update per center word instead of one per pair.

What batching changes: the updates of a batch are summed from the same weights, where word2vec
applies them one pair at a time. Batches are therefore small and read in text order: a final
vector depends on the order its contexts came in (the last ones count most), so shuffling
the text, or batching far-apart words together, gave vectors measurably further from
gensim's (benchmarks/bench_word2vec.py). Measured on a slice of python-stdlib: 64 centers per
batch agree with gensim as well as 16; 128 a little less, 256 less. The default, 128, is
where two worker threads (``training.py``) still speed up well.

Shape legend: N center words in a batch, S = 2 * window context slots, K = negative, D = dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Word2VecConfig lives in the torch-free scratchllm.config (the CLI's --help reads it); it is
# importable from here too, as before
from scratchllm.config import MAX_NEGATIVE
from scratchllm.config import Word2VecConfig as Word2VecConfig

# Like gensim (its MAX_EXP), a (word, target) score beyond +-6 gets no update: the pair is
# already decided. Batched updates need this more than word2vec's one-pair-at-a-time ones:
# a stretch of repetitive text (tables of character names in the stdlib's encodings) puts
# the same pair many times into one batch, and the summed step can overshoot; without the
# rule, on a 2 MB slice of python-stdlib with two worker threads, the loss rose to 16 in the
# first epoch (it falls from 2.8 to 2.2 with it).
MAX_SCORE = 6.0


def linear_learning_rate(progress: float, *, alpha: float, min_alpha: float) -> float:
    """word2vec's schedule: ``alpha`` at the start, ``min_alpha`` at the end, linear between.

    >>> round(linear_learning_rate(0.5, alpha=0.025, min_alpha=0.005), 6)
    0.015
    """
    progress = min(max(progress, 0.0), 1.0)
    return alpha - (alpha - min_alpha) * progress


class Word2Vec(nn.Module):
    """The two tables and the two update rules; ``train_word2vec`` drives them."""

    def __init__(self, vocab_size: int, dim: int, *, generator: torch.Generator) -> None:
        super().__init__()
        self.input_vectors = nn.Embedding(vocab_size, dim)
        self.output_vectors = nn.Embedding(vocab_size, dim)
        self.requires_grad_(False)  # updated by hand below
        # word2vec's init: inputs uniform in +-0.5/dim, outputs zero
        self.input_vectors.weight.uniform_(-0.5 / dim, 0.5 / dim, generator=generator)
        self.output_vectors.weight.zero_()

    def skipgram_step(
        self,
        contexts: torch.Tensor,
        slots: torch.Tensor,
        targets: torch.Tensor,
        noise_weights: torch.Tensor,
        lr: float,
    ) -> torch.Tensor:
        """One SGD step; returns the summed loss of the batch's (context, center) pairs.

        ``contexts`` (N, S) are the input words and ``slots`` (N, S) is 1.0 where a slot holds
        a real context word, 0.0 for padding; ``targets`` (N, 1+K) is each center word followed
        by its K noise words, and ``noise_weights`` (N, 1+K) is 0.0 where a noise word is the
        center itself (word2vec skips those), else 1.0.
        """
        inputs = F.embedding(contexts, self.input_vectors.weight)  # (N, S, D)
        outputs = F.embedding(targets, self.output_vectors.weight)  # (N, 1+K, D)
        # (N, 1+K, S); measured faster than the (N, S, 1+K) product for these small shapes
        scores = torch.bmm(outputs, inputs.transpose(1, 2))
        weights = noise_weights.unsqueeze(2) * slots.unsqueeze(1)  # (N, 1+K, S)
        # d log-likelihood / d score is (label - sigmoid(score)); the center's label is 1
        labels = _LABELS[: targets.shape[1]].unsqueeze(1)  # (1+K, 1)
        updated = weights * (scores.abs() < MAX_SCORE)  # gensim's rule, see MAX_SCORE
        steps = (labels - torch.sigmoid(scores)).mul_(updated).mul_(lr)  # (N, 1+K, S)
        input_updates = torch.bmm(steps.transpose(1, 2), outputs)  # (N, S, D); 0 for padding
        output_updates = torch.bmm(steps, inputs)  # (N, 1+K, D)
        dim = inputs.shape[-1]
        self.output_vectors.weight.index_add_(0, targets.reshape(-1), output_updates.view(-1, dim))
        self.input_vectors.weight.index_add_(0, contexts.reshape(-1), input_updates.view(-1, dim))
        return _pair_loss(scores, weights, target_dim=1)

    def cbow_step(
        self,
        contexts: torch.Tensor,
        slots: torch.Tensor,
        targets: torch.Tensor,
        noise_weights: torch.Tensor,
        lr: float,
    ) -> torch.Tensor:
        """Like ``skipgram_step`` with the mean context vector predicting the center word."""
        inputs = F.embedding(contexts, self.input_vectors.weight)  # (N, S, D)
        counts = slots.sum(1, keepdim=True).clamp_(min=1.0)  # (N, 1)
        hidden = torch.bmm(slots.unsqueeze(1), inputs).squeeze(1) / counts  # (N, D)
        outputs = F.embedding(targets, self.output_vectors.weight)  # (N, 1+K, D)
        scores = torch.bmm(outputs, hidden.unsqueeze(2)).squeeze(2)  # (N, 1+K)
        updated = noise_weights * (scores.abs() < MAX_SCORE)  # gensim's rule, see MAX_SCORE
        steps = (_LABELS[: targets.shape[1]] - torch.sigmoid(scores)).mul_(updated)
        steps.mul_(lr)
        hidden_updates = torch.bmm(steps.unsqueeze(1), outputs)  # (N, 1, D)
        output_updates = steps.unsqueeze(2) * hidden.unsqueeze(1)  # (N, 1+K, D)
        dim = hidden.shape[-1]
        self.output_vectors.weight.index_add_(0, targets.reshape(-1), output_updates.view(-1, dim))
        # like word2vec, every context word receives the whole hidden-layer update
        per_slot = slots.unsqueeze(2) * hidden_updates  # (N, S, D)
        self.input_vectors.weight.index_add_(0, contexts.reshape(-1), per_slot.view(-1, dim))
        return _pair_loss(scores, noise_weights, target_dim=1)


# label of each target column: the center word (column 0) is the positive, the rest noise;
# sliced to 1 + negative per batch
_LABELS = torch.zeros(1 + MAX_NEGATIVE)
_LABELS[0] = 1.0
_SIGNS = 2.0 * _LABELS - 1.0  # +1 for the positive, -1 for noise words


def _pair_loss(scores: torch.Tensor, weights: torch.Tensor, *, target_dim: int) -> torch.Tensor:
    """Summed negative log-likelihood: -log sigmoid(positive) - sum log sigmoid(-negative).

    ``target_dim`` is the dimension of ``scores`` that runs over the targets (center first).
    """
    signs = _SIGNS[: scores.shape[target_dim]]
    if target_dim == 1 and scores.dim() == 3:
        signs = signs.unsqueeze(1)
    return -(F.logsigmoid(scores * signs) * weights).sum()
