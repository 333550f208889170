"""Which labelled examples train, validate and test: class balancing and the seeded split.

The walkthrough's chapter 6 prepares the SMS Spam Collection in two draws, both seeded with
123:

1. **balance** by undersampling: every class keeps as many examples as the smallest class has
   (``df[df.Label == "ham"].sample(747, random_state=123)`` with all 747 spam: 1,494 messages);
2. **split**: shuffle (``sample(frac=1, random_state=123)``) and cut at 70% and 80%, rounding
   down (``int(n * 0.7)``): train 1,045, validation 149, test 300.

``balanced_indices`` and ``split_indices`` draw exactly what those pandas calls draw, from the
same generator (numpy's ``RandomState(seed)``, whose stream numpy keeps fixed across releases),
without pandas: fed the walkthrough's 5,572 rows (``tests/finetune`` rebuilds them) they pick
its very rows, and its training texts pad to its 120 tokens. Our own reader finds the file's
5,574 messages (see ``labelled.py``). From ``sms-spam``, the 747 spam messages, all kept in file
order, are the walkthrough's and land in the same places, so every split has the walkthrough's
class counts (train 528 ham + 517 spam, val 70 + 79, test 149 + 151) and the training texts
pad to 120 tokens as well; the 747 ham are drawn from 4,827 messages rather than 4,825, and
differ.

With separate files (``val_data``, and optionally ``test_data``), nothing is split: balancing
applies to the training file only (validation and test keep the distribution they have), and
every class the validation or test file uses must occur in the training file.

The options (``ClassificationDataOptions``) live in the torch-free ``config.py``, which
imports nothing heavier than the standard library, for the CLI's flags.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scratchllm.config import ClassificationDataOptions
from scratchllm.errors import LabelledDataError
from scratchllm.finetune.labelled import LabelledSet, label_order, load_labelled

SPLIT_NAMES = ("train", "val", "test")


# ---- the draws: pure functions of the labels and a seed ---------------------------------------


def balanced_indices(labels: Sequence[str], *, seed: int) -> list[int]:
    """Indices of a class-balanced subset: every class keeps as many examples as the smallest.

    Classes follow each other in ``label_order``. A class larger than the smallest keeps the
    examples that ``numpy.random.RandomState(seed).permutation(size)[:smallest]`` draws, in
    drawn order (what pandas' ``.sample(smallest, random_state=seed)`` picks); a class of the
    smallest size is kept whole, in file order.

    >>> balanced_indices(["ham", "spam", "ham", "ham", "spam", "ham"], seed=123)
    [5, 0, 1, 4]
    """
    positions: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        positions.setdefault(label, []).append(index)
    if not positions:
        return []
    smallest = min(len(members) for members in positions.values())
    kept: list[int] = []
    for label in label_order(positions):
        members = positions[label]
        if len(members) > smallest:
            drawn = np.random.RandomState(seed).permutation(len(members))[:smallest]
            members = [members[i] for i in drawn]
        kept.extend(members)
    return kept


def split_counts(total: int, *, train_fraction: float, val_fraction: float) -> tuple[int, int, int]:
    """``(train, val, test)`` sizes, cut as the walkthrough cuts: ``int(total * fraction)``
    for train and validation (rounding down), the rest tests.

    >>> split_counts(1494, train_fraction=0.7, val_fraction=0.1)
    (1045, 149, 300)
    """
    train = int(total * train_fraction)
    val = int(total * val_fraction)
    return train, val, total - train - val


def split_indices(
    total: int, *, train_fraction: float, val_fraction: float, seed: int
) -> tuple[list[int], list[int], list[int]]:
    """The shuffled indices ``0 .. total - 1`` cut into train, val and test: the order
    ``numpy.random.RandomState(seed).permutation(total)`` gives (what pandas'
    ``sample(frac=1, random_state=seed)`` shuffles by), then ``split_counts``.

    >>> split_indices(10, train_fraction=0.7, val_fraction=0.1, seed=123)
    ([4, 0, 7, 5, 8, 3, 1], [6], [9, 2])
    """
    order = np.random.RandomState(seed).permutation(total).tolist()
    train, val, _ = split_counts(total, train_fraction=train_fraction, val_fraction=val_fraction)
    return order[:train], order[train : train + val], order[train + val :]


# ---- the splits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledSplits:
    """The examples of each split and the class names, before tokenization."""

    labels: tuple[str, ...]  # class id i is labels[i] (label_order of the training classes)
    train: LabelledSet
    val: LabelledSet
    test: LabelledSet  # may be empty (separate files without a test file)
    class_counts: dict[str, int]  # every example read, per class (all files together)
    balanced_counts: dict[str, int] | None  # what balancing kept (None: not balanced)

    @property
    def splits(self) -> dict[str, LabelledSet]:
        return {"train": self.train, "val": self.val, "test": self.test}


def select_splits(options: ClassificationDataOptions) -> LabelledSplits:
    """Read ``options.data`` (and the validation and test files, if given), balance and split
    as the options say (see the module docstring)."""

    def read(spec: str) -> LabelledSet:
        return load_labelled(
            spec,
            format=options.format,
            text_column=options.text_column,
            label_column=options.label_column,
        )

    if not options.val_data:
        return _split_one(read(options.data), options)
    train, val = read(options.data), read(options.val_data)
    test = read(options.test_data) if options.test_data else LabelledSet("(none)", None, ())
    return _given_splits(train, val, test, options)


def _split_one(data: LabelledSet, options: ClassificationDataOptions) -> LabelledSplits:
    _require_two_classes(data, options)
    class_counts = data.class_counts()
    balanced_counts = None
    if options.balance:
        data = data.subset(
            balanced_indices([e.label for e in data.examples], seed=options.data_seed)
        )
        balanced_counts = data.class_counts()
    train, val, test = (
        data.subset(indices)
        for indices in split_indices(
            len(data),
            train_fraction=options.train_fraction,
            val_fraction=options.val_fraction,
            seed=options.data_seed,
        )
    )
    if not len(train) or not len(val):
        raise LabelledDataError(
            f"{data.name}: {len(data)} examples{' after balancing' if options.balance else ''} "
            f"give {len(train)} to train and {len(val)} to "
            f"validate (train_fraction {options.train_fraction}, val_fraction "
            f"{options.val_fraction}); use more examples or larger fractions"
        )
    missing = [label for label in data.labels if label not in set(train.labels)]
    if missing:
        counts = data.class_counts()
        listed = ", ".join(f"{label!r} ({counts[label]})" for label in missing)
        raise LabelledDataError(
            f"{data.name}: no training example of the class(es) {listed} after the split with "
            f"data_seed {options.data_seed}; add examples of them, or give separate files"
        )
    return LabelledSplits(data.labels, train, val, test, class_counts, balanced_counts)


def _given_splits(
    train: LabelledSet, val: LabelledSet, test: LabelledSet, options: ClassificationDataOptions
) -> LabelledSplits:
    _require_two_classes(train, options)
    labels = train.labels
    for split, data in (("val", val), ("test", test)):
        for example in data.examples:
            if example.label not in labels:
                raise LabelledDataError(
                    f"the {split} file {data.where(example)} has the label {example.label!r}, "
                    f"which the training file {train.name} never uses (its classes: "
                    f"{', '.join(labels)}); a classifier predicts only classes it was trained on"
                )
    counts = Counter(e.label for data in (train, val, test) for e in data.examples)
    class_counts = {label: counts[label] for label in labels}
    balanced_counts = None
    if options.balance:
        train = train.subset(
            balanced_indices([e.label for e in train.examples], seed=options.data_seed)
        )
        balanced_counts = train.class_counts()
    return LabelledSplits(labels, train, val, test, class_counts, balanced_counts)


def _require_two_classes(data: LabelledSet, options: ClassificationDataOptions) -> None:
    labels = data.labels
    if len(labels) < 2:
        raise LabelledDataError(
            f"{data.name} has a single class, {labels[0]!r} ({len(data)} examples); a "
            f"classifier needs at least two (is {options.label_column!r} the label column?)"
        )
