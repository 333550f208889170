"""Labelled text: ``(text, label)`` examples from a file or the named dataset ``sms-spam``.

The first step of classification finetuning; ``classification_split.py`` then balances and
splits the examples, and ``classification_data.py`` tokenizes and pads them.

``read_labelled(path)`` reads one file, its format taken from its suffix (or ``format=``):

- **CSV** (``.csv``): a header row naming the columns, then one record a row, with RFC 4180
  quoting (a field in double quotes may hold commas, newlines and doubled quotes ``""``). A
  stray quote, such as an opening quote that is never closed, is an error rather than a record
  that silently swallows the lines after it;
- **TSV** (``.tsv``, ``.tab``): a header line, then one record a line, fields split at tabs, and
  **no quoting** (the IANA ``text/tab-separated-values`` format): a quote is part of the text,
  and a text holds no tab or newline;
- **JSONL** (``.jsonl``, ``.ndjson``): one JSON object a line; the text must be a string, the
  label a string or an integer.

The text and label columns are ``text`` and ``label`` unless named otherwise; a CSV or TSV file
without a header line takes its column names from ``columns=``. Files must be UTF-8 (a leading
byte-order mark is dropped); empty lines are skipped; labels lose surrounding whitespace, texts
are kept as they are. Every problem raises ``LabelledDataError`` naming the file and the line.

``load_labelled(spec)`` takes a file path or the name ``sms-spam``: the SMS Spam Collection,
downloaded once from UCI and checked (``corpora.dataset_path``). Its file has no header: one
message a line, ``ham`` or ``spam``, a tab, the text; 5,574 messages, 4,827 ham and 747 spam.
Read with CSV quoting, as the walkthrough reads it (``pandas.read_csv(..., sep="\\t")``), the
message on line 5,082 opens a double quote it never closes, so lines 5,082 to 5,084 become one
"message" and the file shows 5,572 rows, 4,825 of them ham (and texts wrapped in quotes lose
them). We read it as what it is, tab-separated lines without quoting.

Classes are numbered in ``label_order``: sorted names, so ``ham`` is 0 and ``spam`` 1 as in the
walkthrough, and the same labels always get the same ids.

>>> examples = parse_labelled('text,label\\n"Hi, you",ham\\nWIN NOW,spam \\n', "csv")
>>> [(example.text, example.label, example.line) for example in examples]
[('Hi, you', 'ham', 2), ('WIN NOW', 'spam', 3)]
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scratchllm.corpora import dataset_path
from scratchllm.errors import ConfigError, LabelledDataError
from scratchllm.io import read_user_text

LabelledFormat = Literal["csv", "tsv", "jsonl"]
LABELLED_FORMATS: tuple[LabelledFormat, ...] = ("csv", "tsv", "jsonl")
SUFFIX_FORMATS: dict[str, LabelledFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class LabelledExample:
    """One text and its class name, with the line of its file it starts on (1-based)."""

    text: str
    label: str
    line: int


@dataclass(frozen=True)
class LabelledSet:
    """Examples read from one file, in file order (or a subset of them, lines kept)."""

    name: str  # what the user gave: a path, or a dataset name such as "sms-spam"
    path: Path | None  # the file the lines refer to (None: an empty set standing for no file)
    examples: tuple[LabelledExample, ...]

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def labels(self) -> tuple[str, ...]:
        """The class names that occur, in ``label_order``."""
        return label_order(example.label for example in self.examples)

    def class_counts(self) -> dict[str, int]:
        """Examples per class, in ``label_order``."""
        counts = Counter(example.label for example in self.examples)
        return {label: counts[label] for label in label_order(counts)}

    def where(self, example: LabelledExample) -> str:
        """Where ``example`` comes from, for messages: ``"data/train.csv line 12"``."""
        return f"{self.path or self.name} line {example.line}"

    def subset(self, indices: Iterable[int]) -> LabelledSet:
        """The examples at ``indices``, in that order."""
        return LabelledSet(self.name, self.path, tuple(self.examples[i] for i in indices))


def label_order(labels: Iterable[str]) -> tuple[str, ...]:
    """The distinct ``labels`` in class-id order: sorted, by value when all are integers.

    Sorting makes the ids reproducible (they do not depend on which label a file happens to
    show first), and integer labels keep their own numbering.

    >>> label_order(["spam", "ham", "spam"])
    ('ham', 'spam')
    >>> label_order(["10", "2", "0"])
    ('0', '2', '10')
    """
    distinct = set(labels)
    if distinct and all(_INTEGER.fullmatch(label) for label in distinct):
        return tuple(sorted(distinct, key=lambda label: (int(label), label)))
    return tuple(sorted(distinct))


# ---- reading ----------------------------------------------------------------------------------


def load_labelled(
    spec: str | os.PathLike[str],
    *,
    format: LabelledFormat | None = None,  # noqa: A002 - the word users know
    text_column: str = "text",
    label_column: str = "label",
    columns: Sequence[str] | None = None,
) -> LabelledSet:
    """The examples of a named dataset (``sms-spam``) or of a file (see ``read_labelled``).

    A string that is a dataset name wins over a same-named path; write ``./sms-spam`` (or pass
    a ``Path``) for the path.
    """
    if isinstance(spec, str) and spec in NAMED_DATASETS:
        return NAMED_DATASETS[spec]()
    return read_labelled(
        spec, format=format, text_column=text_column, label_column=label_column, columns=columns
    )


def read_labelled(
    path: str | os.PathLike[str],
    *,
    format: LabelledFormat | None = None,  # noqa: A002
    text_column: str = "text",
    label_column: str = "label",
    columns: Sequence[str] | None = None,
) -> LabelledSet:
    """Read a CSV, TSV or JSONL file of texts and labels (see the module docstring).

    ``format`` defaults to the one the suffix names; ``columns`` gives the column names of a
    CSV or TSV file that has no header line.
    """
    path = Path(path)
    text = _read_utf8(path)
    if format is None:
        format = SUFFIX_FORMATS.get(path.suffix.lower())  # noqa: A001
        if format is None:
            suffixes = ", ".join(SUFFIX_FORMATS)
            raise LabelledDataError(
                f"cannot tell the format of {path} from its suffix {path.suffix!r}; name the "
                f"file {suffixes}, or give the format ({', '.join(LABELLED_FORMATS)})"
            )
    elif format not in LABELLED_FORMATS:
        raise ConfigError(f"format must be one of {LABELLED_FORMATS}, got {format!r}")
    examples = parse_labelled(
        text,
        format,
        source=str(path),
        text_column=text_column,
        label_column=label_column,
        columns=columns,
    )
    if not examples:
        raise LabelledDataError(f"{path} holds no examples; add some lines after the header")
    return LabelledSet(str(path), path, examples)


def read_sms_spam(path: str | os.PathLike[str], *, name: str = "sms-spam") -> LabelledSet:
    """The SMS Spam Collection's file: one message a line, ``ham``/``spam``, a tab, the text.

    No quoting (see the module docstring): 5,574 messages where a CSV reader finds 5,572.
    """
    path = Path(path)
    examples = parse_labelled(_read_utf8(path), "tsv", source=str(path), columns=("label", "text"))
    return LabelledSet(name, path, examples)


def _sms_spam() -> LabelledSet:
    return read_sms_spam(dataset_path("sms-spam"))


# labelled datasets by name: each downloads (corpora.DATASETS) and reads its own file
NAMED_DATASETS: dict[str, Callable[[], LabelledSet]] = {"sms-spam": _sms_spam}


def _read_utf8(path: Path) -> str:
    return read_user_text(
        path, LabelledDataError,
        missing=f"give a CSV, TSV or JSONL file, or a dataset name ({', '.join(NAMED_DATASETS)})",
    )  # fmt: skip


def parse_labelled(
    text: str,
    format: LabelledFormat,  # noqa: A002
    *,
    source: str = "<text>",
    text_column: str = "text",
    label_column: str = "label",
    columns: Sequence[str] | None = None,
) -> tuple[LabelledExample, ...]:
    """The examples in ``text``, the contents of a file in ``format``; ``source`` names the
    file in error messages. A pure function: ``read_labelled`` is this on a file's text."""
    if text_column == label_column:
        raise ConfigError(f"the text and label columns must differ, both are {text_column!r}")
    if format == "jsonl":
        if columns is not None:
            raise ConfigError("columns= names the columns of a CSV or TSV file without a header")
        return _parse_jsonl(text, source, text_column, label_column)
    if format == "csv":
        rows = _csv_rows(text, source)
    elif format == "tsv":
        rows = _tsv_rows(text)
    else:
        raise ConfigError(f"format must be one of {LABELLED_FORMATS}, got {format!r}")
    return _parse_rows(rows, source, text_column, label_column, columns)


def _csv_rows(text: str, source: str) -> Iterable[tuple[int, list[str]]]:
    """``(line the record starts on, fields)`` for each record; strict RFC 4180 quoting."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise LabelledDataError(
                f"{source} line {start}: not valid CSV ({error}); a field that holds a quote "
                'must be quoted as a whole, the quote doubled ("say ""hi"""), or save the file '
                "as TSV, which has no quoting"
            ) from None
        if row:  # an empty line gives []
            yield start, row
        start = reader.line_num + 1


def _tsv_rows(text: str) -> Iterable[tuple[int, list[str]]]:
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line:
            yield number, line.split("\t")


def _parse_rows(
    rows: Iterable[tuple[int, list[str]]],
    source: str,
    text_column: str,
    label_column: str,
    columns: Sequence[str] | None,
) -> tuple[LabelledExample, ...]:
    rows = iter(rows)
    if columns is None:
        first = next(rows, None)
        if first is None:
            return ()
        header_line, header = first
        where = f"{source} line {header_line} (the header)"
    else:
        header, where = list(columns), f"the columns given for {source}"
    text_index = _column_index(header, text_column, "text", where)
    label_index = _column_index(header, label_column, "label", where)
    examples = []
    for line, fields in rows:
        if len(fields) != len(header):
            raise LabelledDataError(
                f"{source} line {line} has {len(fields)} field(s) where the header has "
                f"{len(header)} ({', '.join(map(repr, header))}); in a TSV file a text cannot "
                "hold a tab, in a CSV file quote a text that holds a comma"
            )
        examples.append(
            _example(fields[text_index], fields[label_index], line, f"{source} line {line}")
        )
    return tuple(examples)


def _column_index(header: Sequence[str], column: str, role: str, where: str) -> int:
    names = [name.strip() for name in header]
    if names.count(column) != 1:
        problem = "has no" if column not in names else "has more than one"
        raise LabelledDataError(
            f"{where} {problem} column {column!r} (its columns: {', '.join(map(repr, names))}); "
            f"name the {role} column with {role}_column"
        )
    return names.index(column)


def _parse_jsonl(
    text: str, source: str, text_column: str, label_column: str
) -> tuple[LabelledExample, ...]:
    examples = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise LabelledDataError(
                f"{where} is not valid JSON: {error.msg} at column {error.colno}; JSON Lines "
                "holds one complete object per line"
            ) from None
        if not isinstance(record, dict):
            raise LabelledDataError(
                f"{where} holds a JSON {type(record).__name__}, not an object with the keys "
                f"{text_column!r} and {label_column!r}"
            )
        for key in (text_column, label_column):
            if key not in record:
                keys = ", ".join(map(repr, record)) or "none"
                raise LabelledDataError(
                    f"{where} has no key {key!r} (its keys: {keys}); name the text and label "
                    "keys with text_column and label_column"
                )
        value, label = record[text_column], record[label_column]
        if not isinstance(value, str):
            raise LabelledDataError(f"{where}: the text must be a string, got {value!r}")
        if isinstance(label, bool) or not isinstance(label, str | int):
            raise LabelledDataError(
                f"{where}: the label must be a string or an integer, got {label!r}"
            )
        examples.append(_example(value, str(label), number, where))
    return tuple(examples)


def _example(text: str, label: str, line: int, where: str) -> LabelledExample:
    if not text.strip():
        raise LabelledDataError(f"{where} has an empty text; remove the line or give its text")
    label = label.strip()
    if not label:
        raise LabelledDataError(f"{where} has an empty label; every text needs its class")
    return LabelledExample(text, label, line)
