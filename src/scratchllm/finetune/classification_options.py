"""The options of a classifier's data: where the labelled examples come from, how they are
balanced, split and padded. The defaults are the walkthrough's chapter 6.

A torch-free dataclass importing only the standard library, so the CLI can make its flags
(``cli/config_flags.py`` reads each field's ``help`` and ``choices``) without loading the data
code; a finetuning run's config can carry these fields. ``classification_split.py`` and
``classification_data.py`` do what they say.

>>> ClassificationDataOptions(data="reviews.jsonl", balance=False).format is None  # by suffix
True
>>> ClassificationDataOptions(train_fraction=0.8, val_fraction=0.3)  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
scratchllm.errors.ConfigError: train_fraction and val_fraction must be in (0, 1) with a sum ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from scratchllm.errors import ConfigError

# "auto" (from each file's suffix) and labelled.LABELLED_FORMATS (a test keeps them in step)
DATA_FORMATS = ("auto", "csv", "tsv", "jsonl")


def _option(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002 - config_flags' key
    """A field with its help text (and argparse ``choices``), as ``config._option`` makes them:
    ``cli/config_flags.py`` turns it into a flag."""
    return dataclasses.field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class ClassificationDataOptions:
    """Where a classifier's labelled data comes from and how it is prepared; the defaults are
    the walkthrough's chapter 6. TOML has no null: "not set" is ``""`` or ``0``."""

    data: str = _option(
        "sms-spam",
        "labelled data: 'sms-spam' (downloaded once) or a CSV, TSV or JSONL file; with "
        "val_data, the training file",
    )
    val_data: str = _option("", "validation file; '' = split `data` into train/val/test")
    test_data: str = _option("", "test file (needs val_data); '' = no test split")
    data_format: str = _option(
        "auto",
        "format of the files: 'auto' (from the suffix), csv, tsv, jsonl",
        choices=DATA_FORMATS,
    )
    text_column: str = _option("text", "column (JSONL: key) holding the text")
    label_column: str = _option("label", "column (JSONL: key) holding the class name")
    balance: bool = _option(
        True,
        "undersample every class to the size of the smallest (with val_data: the training "
        "file only), as the walkthrough does",
    )
    data_seed: int = _option(123, "seeds balancing and the split (the walkthrough's 123)")
    train_fraction: float = _option(0.7, "share of the examples that train (when we split)")
    val_fraction: float = _option(0.1, "share that validates (when we split); the rest tests")
    max_length: int = _option(
        0,
        "pad and truncate texts to N tokens; 0 = the longest training text (at most the "
        "model's context length)",
    )

    def __post_init__(self) -> None:
        for name in ("data", "val_data", "test_data", "data_format", "text_column", "label_column"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        if not self.data:
            raise ConfigError("data must name a dataset ('sms-spam') or a file")
        if self.test_data and not self.val_data:
            raise ConfigError(
                "test_data needs val_data: give the validation file too, or leave both out "
                "and let `data` be split"
            )
        if self.data_format not in DATA_FORMATS:
            raise ConfigError(
                f"data_format must be one of {DATA_FORMATS}, got {self.data_format!r}"
            )
        if not self.text_column or not self.label_column or self.text_column == self.label_column:
            raise ConfigError(
                "text_column and label_column must be two different non-empty names, got "
                f"{self.text_column!r} and {self.label_column!r}"
            )
        if not isinstance(self.balance, bool):
            raise ConfigError(f"balance must be true or false, got {self.balance!r}")
        for name in ("data_seed", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if self.data_seed >= 2**32:  # numpy's RandomState takes 32-bit seeds
            raise ConfigError(f"data_seed must be below 2**32, got {self.data_seed}")
        train, val = self.train_fraction, self.val_fraction
        for name, value in (("train_fraction", train), ("val_fraction", val)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, got {value!r}")
        if not (0 < train < 1 and 0 < val < 1 and train + val <= 1):
            raise ConfigError(
                "train_fraction and val_fraction must be in (0, 1) with a sum of at most 1 "
                f"(the rest tests), got {train} and {val}"
            )

    @property
    def format(self) -> Literal["csv", "tsv", "jsonl"] | None:
        """The files' format, or None to take it from each file's suffix."""
        return None if self.data_format == "auto" else self.data_format  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for TOML and JSON; ``ClassificationDataOptions(**data)`` reads it back."""
        return dataclasses.asdict(self)
