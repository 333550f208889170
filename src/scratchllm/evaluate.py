"""How good is a model on held-out text: loss, perplexity, bits per byte, and a baseline.

- **loss**: the mean cross-entropy of each next token, in nats (natural log), as training
  reports it;
- **perplexity** ``exp(loss)``: the number of equally likely tokens the model is, on average,
  as unsure as;
- **bits per byte**: the total loss in bits divided by the UTF-8 bytes of the text. Loss per
  token depends on how much text a token holds, so only bits per byte compares models with
  different tokenizers;
- **the unigram baseline**: the cross-entropy of the val tokens under the train tokens'
  frequencies (add-one smoothed). A model that knows nothing about context scores this; a
  language model must land clearly below it.

``evaluate_text`` scores a whole text in non-overlapping windows of the context length (plus
one shorter window for the rest), starting each document after ``<|endoftext|>`` as GPT-2
does, so every token of the text is predicted exactly once. ``evaluate_tokens`` does the same
for tokens already encoded, such as a run's ``val.bin``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from scratchllm.errors import ConfigError, DataLengthError
from scratchllm.runtime import autocast
from scratchllm.tokenizer.base import Tokenizer


def unigram_cross_entropy(
    train_tokens: np.ndarray, val_tokens: np.ndarray, *, vocab_size: int, smoothing: float = 1.0
) -> float:
    """Nats per val token under the train unigram distribution with add-``smoothing`` counts.

    ``p(t) = (count_train(t) + smoothing) / (len(train) + smoothing * vocab_size)``; the
    smoothing keeps a token unseen in train finite. Hand-checkable: train ``[0, 0, 1]`` with
    vocabulary 2 gives ``p(0) = 3/5``, ``p(1) = 2/5``, and val ``[0, 1]`` scores
    ``-(ln 0.6 + ln 0.4) / 2``:

    >>> round(unigram_cross_entropy(np.array([0, 0, 1]), np.array([0, 1]), vocab_size=2), 6)
    0.713558
    """
    if len(val_tokens) == 0:
        raise DataLengthError("the unigram baseline needs at least one val token")
    counts = np.bincount(np.asarray(train_tokens, dtype=np.int64), minlength=vocab_size)
    log_probs = np.log(counts + smoothing) - np.log(len(train_tokens) + smoothing * vocab_size)
    return float(-log_probs[np.asarray(val_tokens, dtype=np.int64)].mean())


def perplexity(loss: float) -> float:
    """``exp(loss)``, or infinity past float range.

    >>> perplexity(0.0), round(perplexity(math.log(50257)))
    (1.0, 50257)
    """
    return math.exp(loss) if loss < 700 else math.inf


@torch.no_grad()
def summed_loss(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """The summed cross-entropy in nats of ``targets`` ``(B, T)`` given ``inputs`` ``(B, T)``.

    Runs in eval mode (no dropout) and gives the model back in its own mode.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with autocast(device, autocast_dtype):
            logits = model(inputs.to(device))  # (B, T, V)
        loss = F.cross_entropy(
            logits.float().flatten(0, 1), targets.to(device).flatten(), reduction="sum"
        )
    finally:
        model.train(was_training)
    return float(loss)


@dataclass(frozen=True)
class EvalReport:
    """What ``evaluate_text`` measured."""

    tokens: int  # predicted tokens (every token of the text, separators included)
    bytes: int  # UTF-8 bytes of the text
    loss: float  # nats per token
    elapsed_seconds: float

    @property
    def perplexity(self) -> float:
        return perplexity(self.loss)

    @property
    def bits_per_byte(self) -> float:
        return self.loss * self.tokens / math.log(2) / self.bytes

    def summary(self) -> str:
        return (
            f"{self.tokens:,} tokens ({self.bytes:,} bytes) in {self.elapsed_seconds:.1f} s: "
            f"loss {self.loss:.4f}, perplexity {self.perplexity:.2f}, "
            f"bits per byte {self.bits_per_byte:.4f}"
        )

    def to_dict(self) -> dict[str, float | int]:
        return {
            "tokens": self.tokens,
            "bytes": self.bytes,
            "loss": self.loss,
            "perplexity": self.perplexity,
            "bits_per_byte": self.bits_per_byte,
        }


def text_token_stream(tokenizer: Tokenizer, texts: Iterable[str]) -> tuple[list[int], int]:
    """Each text after ``<|endoftext|>`` (when the tokenizer has it) as one id stream, and the
    UTF-8 bytes of the texts. Without that token, the first token of the stream is not
    predicted (nothing comes before it)."""
    eot = tokenizer.eot_id
    stream: list[int] = []
    byte_count = 0
    for text in texts:
        if eot is not None:
            stream.append(eot)
        stream.extend(tokenizer.encode_ordinary(text))
        byte_count += len(text.encode("utf-8"))
    return stream, byte_count


def encoded_bytes(tokenizer: Tokenizer, tokens: Sequence[int] | np.ndarray) -> int:
    """The UTF-8 bytes of the text a token stream encodes, ``<|endoftext|>`` separators not
    counted (as ``text_token_stream`` counts only its texts): the bytes of a token file, for
    bits per byte. Each document is decoded on its own, so a word-level tokenizer adds no
    space between documents."""
    ids = np.asarray(tokens)
    eot = tokenizer.eot_id
    ends = np.flatnonzero(ids == eot).tolist() if eot is not None else []
    total, start = 0, 0
    for end in [*ends, len(ids)]:
        if end > start:
            total += len(tokenizer.decode(ids[start:end].tolist()).encode("utf-8"))
        start = end + 1
    return total


def evaluate_text(
    model: nn.Module,
    tokenizer: Tokenizer,
    texts: Iterable[str],
    *,
    batch_size: int = 8,
    autocast_dtype: torch.dtype | None = None,
    show_progress: bool = False,
) -> EvalReport:
    """Score every token of ``texts`` (see the module docstring); the model must fit on its
    device with ``batch_size`` windows of its context length."""
    started = time.perf_counter()
    stream, byte_count = text_token_stream(tokenizer, texts)
    return evaluate_tokens(
        model,
        stream,
        byte_count=byte_count,
        batch_size=batch_size,
        autocast_dtype=autocast_dtype,
        show_progress=show_progress,
        started=started,
    )


def evaluate_tokens(
    model: nn.Module,
    tokens: Sequence[int] | np.ndarray,
    *,
    byte_count: int,
    batch_size: int = 8,
    autocast_dtype: torch.dtype | None = None,
    show_progress: bool = False,
    started: float | None = None,
) -> EvalReport:
    """Score every token of a token stream (each predicted from those before it, in
    non-overlapping windows); ``byte_count`` is the UTF-8 size of the text it encodes, for bits
    per byte. A token file (``data/shards.py``) can be passed as is. ``show_progress`` draws a
    progress bar over the windows on stderr."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    started = time.perf_counter() if started is None else started
    if len(tokens) < 2 or byte_count == 0:
        raise DataLengthError("the text is too short to evaluate: it needs at least 2 tokens")
    tokens = torch.from_numpy(np.array(tokens, dtype=np.int64))  # a copy, also of a memmap
    window = model.config.context_length
    predicted = len(tokens) - 1
    full = predicted // window
    total = 0.0
    inputs = tokens[: full * window].view(full, window)  # (n, T): window i starts at i*T
    targets = tokens[1 : full * window + 1].view(full, window)
    has_rest = predicted > full * window
    with tqdm(
        total=full + has_rest, desc="scoring", unit="window", disable=not show_progress
    ) as progress:
        for start in range(0, full, batch_size):
            batch = slice(start, start + batch_size)
            total += summed_loss(
                model, inputs[batch], targets[batch], autocast_dtype=autocast_dtype
            )
            progress.update(len(inputs[batch]))
        if has_rest:  # the rest, as one shorter window
            rest = tokens[full * window :]
            total += summed_loss(
                model, rest[None, :-1], rest[None, 1:], autocast_dtype=autocast_dtype
            )
            progress.update(1)
    return EvalReport(
        tokens=predicted,
        bytes=byte_count,
        loss=total / predicted,
        elapsed_seconds=time.perf_counter() - started,
    )


# ---- classification ---------------------------------------------------------------------------


def confusion_matrix(
    predicted: Sequence[int], actual: Sequence[int], num_classes: int
) -> list[list[int]]:
    """``matrix[a][p]``: how many examples of class ``a`` were predicted as ``p``.

    >>> confusion_matrix([0, 1, 1, 0], [0, 1, 0, 0], 2)
    [[2, 1], [0, 1]]
    """
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for guess, truth in zip(predicted, actual, strict=True):
        matrix[truth][guess] += 1
    return matrix


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall and F1 of one class (0 where undefined: nothing predicted or present)."""

    precision: float
    recall: float
    f1: float
    support: int  # examples of the class


def class_scores(matrix: Sequence[Sequence[int]]) -> list[ClassScores]:
    """Per-class precision (of the predictions of c, how many were c), recall (of the examples
    of c, how many were found) and their harmonic mean F1, from a confusion matrix.

    >>> [round(s.f1, 3) for s in class_scores([[2, 1], [0, 1]])]
    [0.8, 0.667]
    """
    scores = []
    for index, row in enumerate(matrix):
        true_positive = row[index]
        predicted = sum(other[index] for other in matrix)
        support = sum(row)
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(ClassScores(precision, recall, f1, support))
    return scores


def accuracy(matrix: Sequence[Sequence[int]]) -> float:
    """The share of examples on the diagonal of a confusion matrix.

    >>> accuracy([[2, 1], [0, 1]])
    0.75
    """
    total = sum(sum(row) for row in matrix)
    return sum(matrix[i][i] for i in range(len(matrix))) / total if total else 0.0
