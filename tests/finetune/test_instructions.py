"""Instruction files: the walkthrough's JSON data, JSONL, the split, and one-line errors.

Oracles: the walkthrough's chapter 7 (1,100 examples split 935 / 110 / 55 in file order) and
its published test-set responses (``instruction-data-with-response.json``: the 110 test
entries, in order), and hand-made files with known contents.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scratchllm.errors import InstructionDataError, ScratchLLMError
from scratchllm.finetune.instructions import (
    PREFERENCE_KEYS,
    InstructionSet,
    load_instructions,
    read_instructions,
    split_instructions,
)

ENTRY = {"instruction": "Add 2 and 3.", "input": "", "output": "5"}


@pytest.fixture
def instruction_cache(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache holding both instruction files, so the named datasets read without a download."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SCRATCHLLM_CACHE_DIR", str(cache))
    cache.mkdir()
    for name in ("instruction-data.json", "instruction-data-with-preference.json"):
        shutil.copy(shared_data / name, cache / name)
    return cache


def test_the_walkthrough_data_splits_935_110_55_in_file_order(
    instruction_cache: Path, shared_data: Path
) -> None:
    data = load_instructions("instruction-data")
    assert (data.source, len(data)) == ("instruction-data", 1_100)
    assert data.entries[0] == {
        "instruction": "Evaluate the following phrase by transforming it into the spelling given.",
        "input": "freind --> friend",
        "output": 'The spelling of the given phrase "freind" is incorrect, the correct spelling '
        'is "friend".',
    }
    splits = split_instructions(data)
    assert (len(splits.train), len(splits.test), len(splits.val)) == (935, 110, 55)
    assert splits.train.entries + splits.test.entries + splits.val.entries == data.entries
    # the walkthrough's published test responses are for exactly these entries, in order
    with (shared_data / "instruction-data-with-response.json").open(encoding="utf-8") as file:
        responses = json.load(file)
    keys = ("instruction", "input", "output")
    assert [{k: e[k] for k in keys} for e in responses] == list(splits.test.entries)


def test_the_preference_data_has_chosen_and_rejected(instruction_cache: Path) -> None:
    data = load_instructions("instruction-preference", required=PREFERENCE_KEYS)
    assert len(data) == 1_100 and set(data.entries[0]) == {
        "instruction",
        "input",
        "output",
        "chosen",
        "rejected",
    }
    plain = load_instructions("instruction-data")
    assert [e["instruction"] for e in data] == [e["instruction"] for e in plain]
    with pytest.raises(InstructionDataError, match="instruction-data.json: entry 0: 'chosen' is"):
        load_instructions("instruction-data", required=PREFERENCE_KEYS)


def test_jsonl_by_suffix_or_content_keeps_extra_keys(tmp_path: Path) -> None:
    lines = [json.dumps({**ENTRY, "id": n}) for n in range(3)]
    for name in ("data.jsonl", "data.txt", "data.json"):  # the content tells JSONL too
        path = tmp_path / name
        path.write_text("\ufeff" + lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n", "utf-8")
        data = read_instructions(path)
        assert data.source == str(path)
        assert [entry["id"] for entry in data] == [0, 1, 2] and data.entries[0]["input"] == ""
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([ENTRY, {**ENTRY, "extra": [1]}]), "utf-8")
    assert read_instructions(listed).entries[1] == {**ENTRY, "extra": [1]}
    assert load_instructions(str(listed)) == read_instructions(listed)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"input": "", "output": "5"}, "'instruction' is missing"),
        ({**ENTRY, "instruction": "  "}, "'instruction' is empty"),
        ({"instruction": "Add.", "output": "5"}, '\'input\' is missing .write "input": ""'),
        ({**ENTRY, "input": None}, "'input' must be a string, got a JSON null"),
        ({**ENTRY, "output": ""}, "'output' is empty"),
        ({**ENTRY, "output": 5}, "'output' must be a string, got a JSON number"),
        (["Add 2 and 3.", "", "5"], "expected an object with 'instruction', 'input' and 'output'"),
    ],
)
def test_a_bad_entry_names_the_file_and_the_entry(
    tmp_path: Path, entry: object, message: str
) -> None:
    path = tmp_path / "instruction-data.json"
    path.write_text(json.dumps([ENTRY] * 17 + [entry] + [ENTRY]), "utf-8")
    with pytest.raises(InstructionDataError, match=f"instruction-data.json: entry 17: {message}"):
        read_instructions(path)
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(json.dumps(ENTRY) + "\n\n" + json.dumps(entry) + "\n", "utf-8")
    with pytest.raises(InstructionDataError, match=f"data.jsonl: entry 1 .line 3.: {message}"):
        read_instructions(jsonl)


def test_required_keys_must_be_non_empty_strings(tmp_path: Path) -> None:
    path = tmp_path / "prefs.json"
    path.write_text(json.dumps([{**ENTRY, "chosen": "5", "rejected": ""}]), "utf-8")
    assert len(read_instructions(path)) == 1
    with pytest.raises(InstructionDataError, match="entry 0: 'rejected' is empty"):
        read_instructions(path, required=PREFERENCE_KEYS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[", "is not JSON: Expecting value on line 1"),
        ('"just text"', "holds a JSON string, not a list of entries"),
        ('{\n  "instruction": "a",\n  "input": "",\n  "output": "b"\n}', "holds one JSON object"),
        ('{"instruction": "a", "input": "", "output": "b"}\n{"oops"\n', "line 2 is not JSON"),
        ("[]", "holds no entries"),
    ],
)
def test_a_file_that_is_not_a_list_of_entries_is_one_clear_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "data.json"
    path.write_text(content, "utf-8")
    with pytest.raises(InstructionDataError, match=message):
        read_instructions(path)


def test_missing_or_undecodable_files_say_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(InstructionDataError, match="no file at .*nowhere.json.*instruction-data"):
        load_instructions(str(tmp_path / "nowhere.json"))
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"instruction": "café"}]'.encode("latin-1"))
    with pytest.raises(InstructionDataError, match="not valid UTF-8: byte 0xe9 on line 1"):
        read_instructions(path)
    assert issubclass(InstructionDataError, ScratchLLMError)


def test_too_few_entries_to_split_is_an_error() -> None:
    for count in (10, 19, 20):
        splits = split_instructions(InstructionSet("toy", (ENTRY,) * count))
        assert min(len(splits.train), len(splits.test), len(splits.val)) >= 1
    with pytest.raises(InstructionDataError, match=r"toy: 9 entries are too few .* 0 test"):
        split_instructions(InstructionSet("toy", (ENTRY,) * 9))


def test_subset_keeps_the_source_and_the_order() -> None:
    data = InstructionSet("toy", tuple({**ENTRY, "output": str(n)} for n in range(5)))
    part = data.subset([3, 1])
    assert part.source == "toy" and [entry["output"] for entry in part] == ["3", "1"]
