"""Classification data as tensors: token ids padded to one length, the real lengths, class ids.

The last data step of classification finetuning: ``labelled.py`` reads the examples,
``classification_split.py`` balances and splits them, and this module tokenizes each split:

- every text is encoded with ``encode_ordinary`` (a message that contains the text
  ``<|endoftext|>`` is data, not a document boundary), cut to its first ``pad_length`` tokens
  and padded with ``<|endoftext|>`` (GPT-2's id 50256) up to ``pad_length``;
- ``pad_length`` is ``max_length`` when given, else the token count of the longest training
  text (the walkthrough's 120 for its split), at most the model's ``context_length``; the
  validation and test texts are padded or cut to the same length, as the walkthrough does;
- ``lengths`` keeps each text's real token count (1 to ``pad_length``), so that a head can
  read the last real token rather than the last position, which for all but the longest texts
  is padding (``model/heads.py``: ``"last-token"`` against the walkthrough's ``"last"``).

Batches hold ``batch_size`` examples; the training split's last, partial batch is dropped (the
walkthrough's ``drop_last=True`` for its training loader only): 1,045 / 149 / 300 examples in
batches of 8 give 130, 19 and 38 batches. ``summary`` counts what each step kept (the figures
``results.json`` reports).

Shapes: ``N`` examples in a split, ``B`` in a batch, ``T`` the padded length.

>>> from scratchllm.tokenizer import SimpleTokenizer
>>> tokenizer = SimpleTokenizer.train("a b c")  # ids: a 0, b 1, c 2, <|endoftext|> 3, <|unk|> 4
>>> ids, lengths = pad_and_truncate([tokenizer.encode("a b"), tokenizer.encode("c")],
...                                 length=3, pad_id=tokenizer.eot_id)
>>> ids.tolist(), lengths.tolist()
([[0, 1, 3], [2, 3, 3]], [2, 1])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import torch

from scratchllm.config import ClassificationDataOptions
from scratchllm.errors import ConfigError, TokenizerError
from scratchllm.finetune.classification_split import SPLIT_NAMES, LabelledSplits, select_splits
from scratchllm.finetune.labelled import LabelledSet
from scratchllm.tokenizer import Tokenizer

WALKTHROUGH_BATCH_SIZE = 8  # chapter 6's DataLoaders


class ClassificationBatch(TypedDict):
    """One batch, as a dict so that the training step's ``to_device`` moves it whole."""

    ids: torch.Tensor  # (B, T) token ids, padded
    lengths: torch.Tensor  # (B,) real tokens of each text
    labels: torch.Tensor  # (B,) class ids


def pad_and_truncate(
    sequences: Sequence[Sequence[int]], *, length: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids (N, length), lengths (N,))``: each sequence cut to its first ``length`` ids and
    padded with ``pad_id``; ``lengths`` counts the ids kept.

    >>> ids, lengths = pad_and_truncate([[5, 6, 7], [8]], length=2, pad_id=0)
    >>> ids.tolist(), lengths.tolist()
    ([[5, 6], [8, 0]], [2, 1])
    """
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    lengths = torch.empty(len(sequences), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        kept = list(sequence[:length])
        ids[row, : len(kept)] = torch.tensor(kept, dtype=torch.long)
        lengths[row] = len(kept)
    return ids, lengths


def count_batches(examples: int, batch_size: int, *, drop_last: bool) -> int:
    """Batches of ``batch_size`` in ``examples``: a last, partial batch counts unless dropped.

    >>> count_batches(1045, 8, drop_last=True), count_batches(149, 8, drop_last=False)
    (130, 19)
    """
    return examples // batch_size if drop_last else -(-examples // batch_size)


@dataclass(frozen=True, eq=False)
class ClassificationSplit:
    """One split's examples as tensors, in a fixed order (the split's)."""

    name: str  # "train", "val" or "test"
    ids: torch.Tensor  # (N, T) token ids padded with the pad id
    lengths: torch.Tensor  # (N,) real tokens of each text after truncation, 1..T
    labels: torch.Tensor  # (N,) class ids
    token_counts: torch.Tensor  # (N,) tokens of each text before truncation
    drop_last: bool  # whether batching drops a last, partial batch (the training split)

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def truncated(self) -> int:
        """How many texts were cut to fit the padded length."""
        return int((self.token_counts > self.ids.shape[1]).sum())

    def num_batches(self, batch_size: int) -> int:
        return count_batches(len(self), batch_size, drop_last=self.drop_last)

    def batch(
        self, indices: Sequence[int] | torch.Tensor, *, trim: bool = False
    ) -> ClassificationBatch:
        """The examples at ``indices`` (CPU tensors). ``trim`` cuts the padding columns that no
        text of the batch reaches: cheaper, and the same for a head reading each text's last
        real token, but not for one reading the last position, which trimming moves."""
        index = torch.as_tensor(indices, dtype=torch.long)
        ids, lengths = self.ids[index], self.lengths[index]
        if trim and len(index):
            ids = ids[:, : int(lengths.max())]
        return {"ids": ids, "lengths": lengths, "labels": self.labels[index]}

    def batches(self, batch_size: int, *, trim: bool = False) -> Iterator[ClassificationBatch]:
        """The split in order, ``batch_size`` examples at a time (``num_batches`` of them)."""
        for start in range(0, self.num_batches(batch_size) * batch_size, batch_size):
            stop = min(start + batch_size, len(self))
            yield self.batch(torch.arange(start, stop), trim=trim)


@dataclass(frozen=True)
class SplitSummary:
    """What one split holds."""

    examples: int
    batches: int
    class_counts: dict[str, int]
    truncated: int  # texts cut to the padded length
    longest: int  # tokens of the longest text, before truncation (0 when empty)
    drop_last: bool


@dataclass(frozen=True)
class DataSummary:
    """The data step in figures: classes as read, after balancing, per split; the padding."""

    source: str  # "sms-spam", a file, or the train, val and test files
    labels: tuple[str, ...]  # class id i is labels[i]
    class_counts: dict[str, int]  # as read, before balancing (all files together)
    balanced_counts: dict[str, int] | None  # after balancing (None: not balanced)
    pad_length: int
    pad_length_from: str  # "max_length", "longest training text" or "context length"
    pad_id: int
    batch_size: int
    splits: dict[str, SplitSummary]  # train, val, test

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``results.json``)."""
        return {
            "source": self.source,
            "labels": list(self.labels),
            "class_counts": dict(self.class_counts),
            "balanced_counts": None if self.balanced_counts is None else dict(self.balanced_counts),
            "pad_length": self.pad_length,
            "pad_length_from": self.pad_length_from,
            "pad_id": self.pad_id,
            "batch_size": self.batch_size,
            "splits": {
                name: {
                    "examples": split.examples,
                    "batches": split.batches,
                    "class_counts": dict(split.class_counts),
                    "truncated": split.truncated,
                    "longest": split.longest,
                    "drop_last": split.drop_last,
                }
                for name, split in self.splits.items()
            },
        }

    def summary(self) -> str:
        """A few lines for people: counts as read, balanced, per split, and the padding."""
        lines = [f"{self.source}: {_counted(self.class_counts)} read"]
        if self.balanced_counts is not None:
            lines.append(f"balanced (undersampled): {_counted(self.balanced_counts)}")
        lines.append("classes: " + ", ".join(f"{i} {label}" for i, label in enumerate(self.labels)))
        truncated = sum(split.truncated for split in self.splits.values())
        lines.append(
            f"padded to {self.pad_length} tokens ({self.pad_length_from}) with id {self.pad_id}; "
            f"{truncated:,} text{'s' if truncated != 1 else ''} truncated"
        )
        for name, split in self.splits.items():
            dropped = ", last partial batch dropped" if split.drop_last else ""
            lines.append(
                f"{name:<5} {_counted(split.class_counts)}; {split.batches:,} batches of "
                f"{self.batch_size}{dropped}"
                + (f"; {split.truncated:,} truncated" if split.truncated else "")
            )
        return "\n".join(lines)


def _counted(class_counts: dict[str, int]) -> str:
    """``"1,494 examples (ham 747, spam 747)"``."""
    total = sum(class_counts.values())
    inner = ", ".join(f"{label} {count:,}" for label, count in class_counts.items())
    return f"{total:,} example{'s' if total != 1 else ''}" + (f" ({inner})" if inner else "")


@dataclass(frozen=True, eq=False)
class ClassificationData:
    """The three splits as tensors, the class names, and the summary of how they were made."""

    labels: tuple[str, ...]  # class id i is labels[i]
    train: ClassificationSplit
    val: ClassificationSplit
    test: ClassificationSplit  # may be empty
    pad_id: int
    batch_size: int
    summary: DataSummary

    @property
    def pad_length(self) -> int:
        return self.train.ids.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def split(self, name: str) -> ClassificationSplit:
        if name not in SPLIT_NAMES:
            raise ConfigError(f"no split {name!r}; the splits are {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    def num_batches(self, name: str) -> int:
        """Batches of ``batch_size`` in split ``name`` (training: the last partial one dropped)."""
        return self.split(name).num_batches(self.batch_size)


# ---- building -----------------------------------------------------------------------------------


def prepare_classification(
    options: ClassificationDataOptions,
    tokenizer: Tokenizer,
    *,
    batch_size: int = WALKTHROUGH_BATCH_SIZE,
    context_length: int | None = None,
) -> ClassificationData:
    """The whole data step: read, balance and split (``select_splits``), then tokenize and pad
    (``encode_splits``), as ``options`` say."""
    return encode_splits(
        select_splits(options),
        tokenizer,
        max_length=options.max_length or None,
        context_length=context_length,
        batch_size=batch_size,
    )


def encode_splits(
    splits: LabelledSplits,
    tokenizer: Tokenizer,
    *,
    max_length: int | None = None,
    context_length: int | None = None,
    batch_size: int = WALKTHROUGH_BATCH_SIZE,
    pad_id: int | None = None,
) -> ClassificationData:
    """Tokenize, truncate and pad every split (see the module docstring).

    ``max_length`` fixes the padded length (at most ``context_length``); without it, the
    longest training text sets it, capped at ``context_length``. ``pad_id`` defaults to the
    tokenizer's ``<|endoftext|>``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size}")
    if pad_id is None:
        pad_id = tokenizer.eot_id
        if pad_id is None:
            raise TokenizerError(
                f"the tokenizer ({tokenizer.describe()}) has no <|endoftext|> to pad with; "
                "give a pad_id"
            )
    encoded = {
        name: [tokenizer.encode_ordinary(example.text) for example in data.examples]
        for name, data in splits.splits.items()
    }
    longest = {name: max(map(len, sequences), default=0) for name, sequences in encoded.items()}
    pad_length, pad_length_from = _pad_length(longest["train"], max_length, context_length)
    class_ids = {label: index for index, label in enumerate(splits.labels)}
    tensors = {}
    for name, data in splits.splits.items():
        ids, lengths = pad_and_truncate(encoded[name], length=pad_length, pad_id=pad_id)
        tensors[name] = ClassificationSplit(
            name=name,
            ids=ids,
            lengths=lengths,
            labels=torch.tensor([class_ids[e.label] for e in data.examples], dtype=torch.long),
            token_counts=torch.tensor([len(s) for s in encoded[name]], dtype=torch.long),
            drop_last=name == "train",
        )
    summary = DataSummary(
        source=_source(splits),
        labels=splits.labels,
        class_counts=dict(splits.class_counts),
        balanced_counts=splits.balanced_counts,
        pad_length=pad_length,
        pad_length_from=pad_length_from,
        pad_id=pad_id,
        batch_size=batch_size,
        splits={
            name: SplitSummary(
                examples=len(split),
                batches=split.num_batches(batch_size),
                class_counts=_class_counts(splits.splits[name], splits.labels),
                truncated=split.truncated,
                longest=longest[name],
                drop_last=split.drop_last,
            )
            for name, split in tensors.items()
        },
    )
    return ClassificationData(
        splits.labels,
        tensors["train"],
        tensors["val"],
        tensors["test"],
        pad_id,
        batch_size,
        summary,
    )


def _pad_length(
    longest_train: int, max_length: int | None, context_length: int | None
) -> tuple[int, str]:
    """The padded length and what set it.

    >>> _pad_length(120, None, 1024), _pad_length(120, None, 64), _pad_length(120, 256, None)
    ((120, 'longest training text'), (64, 'context length'), (256, 'max_length'))
    """
    if max_length is not None:
        if max_length < 1:
            raise ConfigError(f"max_length must be a positive integer, got {max_length}")
        if context_length is not None and max_length > context_length:
            raise ConfigError(
                f"max_length {max_length} is longer than the model's context length "
                f"{context_length}; use at most {context_length}"
            )
        return max_length, "max_length"
    if context_length is not None and longest_train > context_length:
        return context_length, "context length"
    return longest_train, "longest training text"


def _class_counts(data: LabelledSet, labels: tuple[str, ...]) -> dict[str, int]:
    counts = data.class_counts()
    return {label: counts.get(label, 0) for label in labels}


def _source(splits: LabelledSplits) -> str:
    names = [data.name for data in splits.splits.values() if data.path is not None]
    return names[0] if len(set(names)) == 1 else " + ".join(names)
