"""Instruction data: Alpaca-format entries from a JSON or JSONL file, or a named dataset.

The first step of instruction finetuning; ``prompts.py`` turns an entry into model text and
``instruction_batches.py`` tokenizes, pads or packs it.

An **entry** is a JSON object with three strings, as in the walkthrough's chapter 7 (and the
Alpaca data it follows):

- ``instruction``: the task, non-empty;
- ``input``: what the task works on, possibly empty (``""``) but present: a missing key is an
  error, so that a misspelt ``"inputs"`` does not silently turn into "no input";
- ``output``: the answer the model learns to give, non-empty.

Other keys are kept as they are (``model_response``, or ``chosen`` and ``rejected`` for
preference tuning); ``required=("chosen", "rejected")`` makes those non-empty strings too.

``read_instructions(path)`` reads a **JSON list** of entries, or **JSONL** (one entry a line,
empty lines skipped) when the suffix is ``.jsonl`` / ``.ndjson`` or the file starts with ``{``.
Files must be UTF-8 (a leading byte-order mark is dropped). Every problem raises
``InstructionDataError`` naming the file and the entry (counted from 0, as the list is indexed;
JSONL adds the line): ``instruction-data.json: entry 17: 'output' is empty``.

``load_instructions(spec)`` takes a file path or a dataset name, ``instruction-data`` (the
walkthrough's 1,100 examples) or ``instruction-preference`` (the same with ``chosen`` and
``rejected``), downloaded once and checked (``corpora.dataset_path``).

``split_instructions`` cuts the examples as the walkthrough does, in file order, no shuffle:
the first 85% (rounded down) train, the next 10% (rounded down) test, the rest validate; the
1,100 examples give 935 / 110 / 55.

>>> data = InstructionSet("toy", tuple({"instruction": f"Say {n}.", "input": "", "output": str(n)}
...                                    for n in range(20)))
>>> splits = split_instructions(data)
>>> len(splits.train), len(splits.test), len(splits.val), splits.test.entries[0]["output"]
(17, 2, 1, '17')
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scratchllm.corpora import dataset_path
from scratchllm.errors import InstructionDataError
from scratchllm.io import read_user_text

INSTRUCTION_KEYS = ("instruction", "input", "output")
PREFERENCE_KEYS = ("chosen", "rejected")  # what preference tuning requires on top
# instruction datasets by name (corpora.DATASETS holds their URLs and checksums)
INSTRUCTION_DATASETS = ("instruction-data", "instruction-preference")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# the walkthrough's chapter-7 split: int(n * 0.85) train, int(n * 0.1) test, the rest val
TRAIN_FRACTION = 0.85
TEST_FRACTION = 0.1


@dataclass(frozen=True)
class InstructionSet:
    """Entries read from one source, in file order (or a subset of them)."""

    source: str  # what the user gave: a path, or a dataset name such as "instruction-data"
    entries: tuple[dict[str, Any], ...]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.entries)

    def subset(self, indices: Iterable[int]) -> InstructionSet:
        """The entries at ``indices``, in that order, from the same source."""
        return InstructionSet(self.source, tuple(self.entries[index] for index in indices))


@dataclass(frozen=True)
class InstructionSplits:
    """The training, test and validation entries (the walkthrough's order of the three)."""

    train: InstructionSet
    test: InstructionSet
    val: InstructionSet


# ---- reading ----------------------------------------------------------------------------------


def load_instructions(
    spec: str | os.PathLike[str], *, required: tuple[str, ...] = ()
) -> InstructionSet:
    """The entries of a named dataset (``INSTRUCTION_DATASETS``) or of a JSON / JSONL file.

    A string that is a dataset name wins over a same-named path; write ``./instruction-data``
    (or pass a ``Path``) for the path.
    """
    if isinstance(spec, str) and spec in INSTRUCTION_DATASETS:
        data = read_instructions(dataset_path(spec), required=required)
        return InstructionSet(spec, data.entries)
    return read_instructions(spec, required=required)


def read_instructions(
    path: str | os.PathLike[str], *, required: tuple[str, ...] = ()
) -> InstructionSet:
    """Read and check a JSON list or a JSONL file of entries (see the module docstring)."""
    path = Path(path)
    text = _read_utf8(path)
    stripped = text.lstrip()
    if path.suffix.lower() in JSONL_SUFFIXES or stripped.startswith("{"):
        numbered = _parse_jsonl(text, path)
    else:
        numbered = [(None, entry) for entry in _parse_json_list(text, path)]
    if not numbered:
        raise InstructionDataError(
            f"{path} holds no entries; add objects with {_keys(INSTRUCTION_KEYS + required)}"
        )
    for index, (line, entry) in enumerate(numbered):
        problem = check_entry(entry, required=required)
        if problem is not None:
            where = f"entry {index}" + (f" (line {line})" if line is not None else "")
            raise InstructionDataError(f"{path}: {where}: {problem}")
    return InstructionSet(str(path), tuple(entry for _, entry in numbered))


def check_entry(entry: Any, *, required: tuple[str, ...] = ()) -> str | None:
    """What is wrong with one entry, or None when nothing is.

    >>> check_entry({"instruction": "Add 2 and 3.", "input": "", "output": "5"}) is None
    True
    >>> print(check_entry({"instruction": "Add 2 and 3.", "output": "5"}))
    'input' is missing (write "input": "" for an instruction without one)
    >>> print(check_entry({"instruction": "Hi", "input": "", "output": " "}))
    'output' is empty
    """
    if not isinstance(entry, dict):
        return (
            f"expected an object with {_keys(INSTRUCTION_KEYS + required)}, "
            f"got a JSON {_json_type(entry)}"
        )
    for key in INSTRUCTION_KEYS + tuple(k for k in required if k not in INSTRUCTION_KEYS):
        if key not in entry:
            if key == "input":
                return '\'input\' is missing (write "input": "" for an instruction without one)'
            return f"{key!r} is missing (each entry needs {_keys(INSTRUCTION_KEYS + required)})"
        value = entry[key]
        if not isinstance(value, str):
            return f"{key!r} must be a string, got a JSON {_json_type(value)}"
        if key != "input" and not value.strip():
            return f"{key!r} is empty"
    return None


def _parse_json_list(text: str, path: Path) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InstructionDataError(
            f"{path} is not JSON: {error.msg} on line {error.lineno}, column {error.colno}; "
            "give a JSON list of entries, or JSONL (one entry a line, suffix .jsonl)"
        ) from None
    if not isinstance(data, list):
        raise InstructionDataError(
            f"{path} holds a JSON {_json_type(data)}, not a list of entries; wrap the entries "
            "in [...], or write one entry a line as JSONL"
        )
    return data


def _parse_jsonl(text: str, path: Path) -> list[tuple[int, Any]]:
    """``(line number, entry)`` for each non-empty line."""
    numbered = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            numbered.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            if not numbered and _is_one_object(text):
                raise InstructionDataError(
                    f"{path} holds one JSON object, not a list of entries; wrap the entries in "
                    "[...], or write one entry a line as JSONL"
                ) from None
            raise InstructionDataError(
                f"{path}: line {number} is not JSON ({error.msg}, column {error.colno}); JSONL "
                "takes one whole entry a line"
            ) from None
    return numbered


def _is_one_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _read_utf8(path: Path) -> str:
    return read_user_text(
        path, InstructionDataError,
        missing="give a JSON or JSONL file of instructions, or a dataset name "
        f"({', '.join(INSTRUCTION_DATASETS)})",
    )  # fmt: skip


def _keys(keys: tuple[str, ...]) -> str:
    """The keys, quoted, for a message.

    >>> print(_keys(("instruction", "input", "output")))
    'instruction', 'input' and 'output'
    """
    names = [repr(key) for key in dict.fromkeys(keys)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


# ---- splitting --------------------------------------------------------------------------------


def split_instructions(data: InstructionSet) -> InstructionSplits:
    """The walkthrough's split, in file order: ``int(n * 0.85)`` train, ``int(n * 0.1)`` test,
    the rest validation (935 / 110 / 55 of 1,100). Each split must get at least one entry."""
    count = len(data)
    train_count = int(count * TRAIN_FRACTION)
    test_count = int(count * TEST_FRACTION)
    val_count = count - train_count - test_count
    if min(train_count, test_count, val_count) < 1:
        raise InstructionDataError(
            f"{data.source}: {count} entries are too few to split 85% / 10% / 5% "
            f"({train_count} train, {test_count} test, {val_count} validation); every split "
            "needs at least one, so give at least 10 entries"
        )
    return InstructionSplits(
        train=data.subset(range(train_count)),
        test=data.subset(range(train_count, train_count + test_count)),
        val=data.subset(range(train_count + test_count, count)),
    )
