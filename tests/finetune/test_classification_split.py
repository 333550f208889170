"""Balancing and splitting: the walkthrough's counts, its draws, and the checks on given splits.

Oracles: the walkthrough's printed counts (747 + 747 = 1,494 balanced; 1,045 / 149 / 300 after
the split), numpy's legacy ``RandomState`` (the generator pandas' ``sample(random_state=...)``
draws from, its stream fixed by numpy's policy), hand-made files with known labels.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.config import DATA_FORMATS, ClassificationDataOptions
from scratchllm.errors import ConfigError, LabelledDataError
from scratchllm.finetune.classification_split import (
    balanced_indices,
    select_splits,
    split_counts,
    split_indices,
)
from scratchllm.finetune.labelled import LABELLED_FORMATS


@pytest.fixture
def sms_cache(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache holding the SMS Spam Collection, so ``sms-spam`` is read without a download."""
    monkeypatch.setenv("SCRATCHLLM_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    return Path(shutil.copy(shared_data / "SMSSpamCollection", tmp_path / "cache"))


def write(path: Path, rows: list[tuple[str, str]]) -> str:
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows), "utf-8")
    return str(path)


# --- the draws ----------------------------------------------------------------------------------


def test_split_counts_are_the_walkthroughs() -> None:
    assert split_counts(1494, train_fraction=0.7, val_fraction=0.1) == (1045, 149, 300)
    assert split_counts(5574, train_fraction=0.7, val_fraction=0.1) == (3901, 557, 1116)
    assert split_counts(10, train_fraction=0.5, val_fraction=0.5) == (5, 5, 0)


def test_balanced_indices_draw_as_pandas_sample_does() -> None:
    # pandas' df[df.Label == "ham"].sample(k, random_state=seed) is
    # RandomState(seed).choice(len, k, replace=False), i.e. permutation(len)[:k]
    labels = ["ham"] * 7 + ["spam"] * 3
    labels[4], labels[8] = "spam", "ham"  # ham at 0,1,2,3,5,6,8; spam at 4,7,9
    ham = [i for i, label in enumerate(labels) if label == "ham"]
    drawn = np.random.RandomState(123).choice(len(ham), 3, replace=False)
    expected = [ham[i] for i in drawn] + [4, 7, 9]  # then every spam, in file order
    assert balanced_indices(labels, seed=123) == expected
    assert balanced_indices(labels, seed=124) != expected
    assert balanced_indices([], seed=0) == []


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.sampled_from("abc"), min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_balanced_indices_keep_the_smallest_class_size_of_each(
    labels: list[str], seed: int
) -> None:
    kept = balanced_indices(labels, seed=seed)
    counts = Counter(labels)
    assert len(set(kept)) == len(kept)  # no example twice
    assert Counter(labels[i] for i in kept) == {label: min(counts.values()) for label in counts}
    assert [labels[i] for i in kept] == sorted(labels[i] for i in kept)  # classes in order


def test_split_indices_shuffle_as_pandas_sample_frac_1_and_partition() -> None:
    train, val, test = split_indices(1494, train_fraction=0.7, val_fraction=0.1, seed=123)
    order = np.random.RandomState(123).permutation(1494).tolist()
    assert (train, val, test) == (order[:1045], order[1045:1194], order[1194:])
    assert sorted(train + val + test) == list(range(1494))


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data": ""}, "data must name"),
        ({"test_data": "t.csv"}, "test_data needs val_data"),
        ({"data_format": "xml"}, "data_format must be one of"),
        ({"label_column": "text"}, "two different non-empty names"),
        ({"balance": "yes"}, "balance must be true or false"),
        ({"data_seed": -1}, "data_seed must be an integer >= 0"),
        ({"data_seed": 2**32}, r"data_seed must be below 2\*\*32"),
        ({"max_length": 1.5}, "max_length must be an integer >= 0"),
        ({"train_fraction": 0.95}, "sum of at most 1"),
        ({"val_fraction": 0.0}, r"must be in \(0, 1\)"),
    ],
)
def test_options_reject_bad_values(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClassificationDataOptions(**changes)


def test_options_defaults_are_the_walkthroughs() -> None:
    options = ClassificationDataOptions()
    assert (options.data, options.balance, options.data_seed) == ("sms-spam", True, 123)
    assert (options.train_fraction, options.val_fraction, options.format) == (0.7, 0.1, None)
    assert ClassificationDataOptions(data_format="jsonl").format == "jsonl"
    assert ("auto", *LABELLED_FORMATS) == DATA_FORMATS  # what the reader reads, and auto
    assert ClassificationDataOptions(**options.to_dict()) == options


def test_options_make_flags_with_their_help() -> None:
    import argparse

    from scratchllm.cli.config_flags import add_config_flags, given_fields

    parser = argparse.ArgumentParser()
    add_config_flags(parser, ClassificationDataOptions)
    arguments = parser.parse_args(["--data", "x.csv", "--data-format", "csv", "--no-balance"])
    given = given_fields(arguments, ClassificationDataOptions)
    assert given == {"data": "x.csv", "data_format": "csv", "balance": False}
    assert "pad and truncate texts to N tokens" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--data-format", "xml"])


# --- one file: balanced, then split --------------------------------------------------------------


def test_sms_spam_balanced_and_split_as_the_walkthrough_counts(sms_cache: Path) -> None:
    splits = select_splits(ClassificationDataOptions())
    assert splits.labels == ("ham", "spam")
    assert splits.class_counts == {"ham": 4_827, "spam": 747}
    assert splits.balanced_counts == {"ham": 747, "spam": 747}  # the walkthrough's 1,494
    assert [len(data) for data in splits.splits.values()] == [1_045, 149, 300]
    lines = [e.line for data in splits.splits.values() for e in data.examples]
    assert len(set(lines)) == 1_494  # disjoint splits
    assert all(data.path == sms_cache for data in splits.splits.values())
    # the same options give the same splits; another seed others
    again = select_splits(ClassificationDataOptions())
    assert again.train.examples == splits.train.examples
    other = select_splits(ClassificationDataOptions(data_seed=7))
    assert other.train.examples != splits.train.examples


def test_unbalanced_split_keeps_every_message(sms_cache: Path) -> None:
    splits = select_splits(ClassificationDataOptions(balance=False))
    assert splits.balanced_counts is None
    assert [len(data) for data in splits.splits.values()] == [3_901, 557, 1_116]


def test_a_single_class_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "one.csv", [("a", "x"), ("b", "x")])
    with pytest.raises(LabelledDataError, match=r"one\.csv has a single class, 'x' \(2 examples\)"):
        select_splits(ClassificationDataOptions(data=path))


def test_too_few_examples_or_a_class_missing_from_training(tmp_path: Path) -> None:
    few = write(tmp_path / "few.csv", [("a", "x"), ("b", "y"), ("c", "x")])
    with pytest.raises(
        LabelledDataError, match="2 examples after balancing give 1 to train and 0 to validate"
    ):
        select_splits(ClassificationDataOptions(data=few))
    # one example of "rare": wherever the split puts it, if not in train it is an error
    rows = [(f"t{i}", "common" if i % 2 else "other") for i in range(20)] + [("r", "rare")]
    rare = write(tmp_path / "rare.csv", rows)
    outcomes = set()
    for seed in range(6):
        options = ClassificationDataOptions(data=rare, balance=False, data_seed=seed)
        try:
            splits = select_splits(options)
            outcomes.add("rare" in splits.train.labels)
        except LabelledDataError as error:
            assert "no training example of the class(es) 'rare' (1)" in str(error)
            assert f"data_seed {seed}" in str(error)
            outcomes.add("error")
    assert outcomes == {True, "error"}


# --- separate files ----------------------------------------------------------------------------


def test_given_files_are_not_split_and_only_training_is_balanced(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", [("a", "x"), ("b", "x"), ("c", "x"), ("d", "y")])
    val = write(tmp_path / "val.csv", [("e", "x"), ("f", "x")])
    test = write(tmp_path / "test.csv", [("g", "y")])
    splits = select_splits(ClassificationDataOptions(data=train, val_data=val, test_data=test))
    assert splits.labels == ("x", "y")
    assert splits.class_counts == {"x": 5, "y": 2}  # every file, as read
    assert splits.balanced_counts == {"x": 1, "y": 1}
    assert [e.text for e in splits.val.examples] == ["e", "f"]  # as given, one class is fine
    assert [e.text for e in splits.test.examples] == ["g"]

    unbalanced = select_splits(ClassificationDataOptions(data=train, val_data=val, balance=False))
    assert [e.text for e in unbalanced.train.examples] == ["a", "b", "c", "d"]
    assert len(unbalanced.test) == 0 and unbalanced.test.path is None


def test_a_label_unseen_in_training_names_split_label_and_line(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", [("a", "x"), ("b", "y")])
    val = write(tmp_path / "val.csv", [("c", "x")])
    test = write(tmp_path / "test.csv", [("d", "y"), ("e", "z")])
    with pytest.raises(LabelledDataError) as raised:
        select_splits(ClassificationDataOptions(data=train, val_data=val, test_data=test))
    message = str(raised.value)
    assert f"the test file {test} line 3 has the label 'z'" in message
    assert f"training file {train} never uses (its classes: x, y)" in message
