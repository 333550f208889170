"""Classification tensors: padding, truncation, batches and the summary, against the walkthrough.

Oracles: tiktoken's own GPT-2 encoding (token counts, ids), the walkthrough's printed figures
(120 tokens for its training split, 130 / 19 / 38 batches of 8), its very split rebuilt from
the rows a quoting CSV reader finds (as pandas does) with the draws pandas makes, and
hand-derived small cases.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.config import ClassificationDataOptions
from scratchllm.errors import ConfigError, TokenizerError
from scratchllm.finetune.classification_data import (
    ClassificationData,
    count_batches,
    encode_splits,
    pad_and_truncate,
    prepare_classification,
)
from scratchllm.finetune.classification_split import (
    LabelledSplits,
    balanced_indices,
    select_splits,
    split_indices,
)
from scratchllm.finetune.labelled import LabelledExample, LabelledSet
from scratchllm.tokenizer import BPETokenizer, SimpleTokenizer, Tokenizer, get_tokenizer

EOT = 50256


@pytest.fixture(scope="module")
def gpt2(shared_data: Path) -> Tokenizer:
    return get_tokenizer("gpt2")  # offline: TIKTOKEN_CACHE_DIR points at the shared cache


@pytest.fixture(scope="module")
def sms_cache(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("cache")
    shutil.copy(shared_data / "SMSSpamCollection", cache)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCRATCHLLM_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture(scope="module")
def walkthrough_data(gpt2: Tokenizer, sms_cache: Path) -> ClassificationData:
    """sms-spam prepared with the walkthrough's defaults (balanced, 70/10/20, batches of 8)."""
    return prepare_classification(ClassificationDataOptions(), gpt2, context_length=1024)


# --- pure pieces -------------------------------------------------------------------------------


def test_pad_and_truncate_by_hand() -> None:
    ids, lengths = pad_and_truncate([[5, 6, 7], [8], [1, 2]], length=2, pad_id=0)
    assert ids.tolist() == [[5, 6], [8, 0], [1, 2]]
    assert lengths.tolist() == [2, 1, 2]
    assert ids.dtype == lengths.dtype == torch.long
    empty_ids, empty_lengths = pad_and_truncate([], length=4, pad_id=9)
    assert empty_ids.shape == (0, 4) and empty_lengths.shape == (0,)


@settings(max_examples=50, deadline=None)
@given(
    sequences=st.lists(st.lists(st.integers(0, 99), min_size=1, max_size=12), max_size=6),
    length=st.integers(1, 10),
)
def test_pad_and_truncate_keeps_the_first_ids_then_pads(
    sequences: list[list[int]], length: int
) -> None:
    ids, lengths = pad_and_truncate(sequences, length=length, pad_id=100)
    assert ids.shape == (len(sequences), length)
    for row, sequence in enumerate(sequences):
        kept = sequence[:length]
        assert lengths[row] == len(kept)
        assert ids[row].tolist() == kept + [100] * (length - len(kept))


def test_count_batches_as_the_walkthroughs_loaders() -> None:
    assert count_batches(1045, 8, drop_last=True) == 130
    assert count_batches(149, 8, drop_last=False) == 19
    assert count_batches(300, 8, drop_last=False) == 38
    assert count_batches(7, 8, drop_last=True) == 0 and count_batches(0, 8, drop_last=False) == 0


# --- the walkthrough's figures -----------------------------------------------------------------


def walkthrough_rows(path: Path) -> LabelledSet:
    """The 5,572 rows the walkthrough's ``pandas.read_csv(sep="\\t")`` shows, from a CSV reader
    with the same quoting (test_labelled.py checks the count)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    examples = tuple(LabelledExample(text, label, i + 1) for i, (label, text) in enumerate(rows))
    return LabelledSet("pandas rows", path, examples)


def test_our_draws_on_the_walkthroughs_rows_give_its_120_tokens_and_batches(
    shared_data: Path, gpt2: Tokenizer, sms_cache: Path
) -> None:
    rows = walkthrough_rows(shared_data / "SMSSpamCollection")
    balanced = rows.subset(balanced_indices([e.label for e in rows.examples], seed=123))
    assert balanced.class_counts() == {"ham": 747, "spam": 747}
    train, val, test = (
        balanced.subset(indices)
        for indices in split_indices(len(balanced), train_fraction=0.7, val_fraction=0.1, seed=123)
    )
    splits = LabelledSplits(("ham", "spam"), train, val, test, rows.class_counts(), None)
    data = encode_splits(splits, gpt2, batch_size=8)
    assert data.pad_length == 120  # the walkthrough prints train_dataset.max_length: 120
    assert data.train.ids.shape == (1045, 120)  # and "Input batch dimensions: [8, 120]"
    assert [data.num_batches(name) for name in ("train", "val", "test")] == [130, 19, 38]
    # From our reading of the file the spam messages are the same and land in the same places,
    # so each split has the same class counts, and the same 120 tokens.
    ours = select_splits(ClassificationDataOptions())
    for name in ("train", "val", "test"):
        assert ours.splits[name].class_counts() == splits.splits[name].class_counts()
    assert ours.train.class_counts() == {"ham": 528, "spam": 517}


def test_sms_spam_tensors_match_tiktoken(walkthrough_data: ClassificationData) -> None:
    encoding = tiktoken.get_encoding("gpt2")
    splits = select_splits(ClassificationDataOptions())  # the same examples, before tokens
    train_counts = [len(encoding.encode_ordinary(e.text)) for e in splits.train.examples]
    pad_length = max(train_counts)
    assert walkthrough_data.pad_length == pad_length == 120  # the walkthrough's figure too
    assert walkthrough_data.labels == ("ham", "spam")
    for name, split in walkthrough_data.summary.splits.items():
        tensors, examples = walkthrough_data.split(name), splits.splits[name].examples
        assert tensors.ids.shape == (len(examples), pad_length)
        expected_labels = [("ham", "spam").index(e.label) for e in examples]
        assert tensors.labels.tolist() == expected_labels
        truncated = 0
        for row, example in enumerate(examples[:50] if name == "train" else examples):
            ids = encoding.encode_ordinary(example.text)
            truncated += len(ids) > pad_length
            kept = ids[:pad_length]
            assert tensors.lengths[row] == len(kept) >= 1
            assert tensors.ids[row].tolist() == kept + [EOT] * (pad_length - len(kept))
        if name != "train":  # val and test are cut to the training length, as in chapter 6
            assert split.truncated == tensors.truncated == truncated
    assert walkthrough_data.summary.splits["train"].truncated == 0


def test_sms_spam_summary(walkthrough_data: ClassificationData) -> None:
    summary = walkthrough_data.summary
    data = summary.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-ready for results.json
    assert data["class_counts"] == {"ham": 4_827, "spam": 747}
    assert data["balanced_counts"] == {"ham": 747, "spam": 747}
    assert (data["pad_length"], data["pad_id"], data["batch_size"]) == (120, EOT, 8)
    assert data["pad_length_from"] == "longest training text"
    counts = {name: (s["examples"], s["batches"]) for name, s in data["splits"].items()}
    assert counts == {"train": (1045, 130), "val": (149, 19), "test": (300, 38)}
    for split in data["splits"].values():
        assert sum(split["class_counts"].values()) == split["examples"]
    assert data["splits"]["train"]["drop_last"] and not data["splits"]["val"]["drop_last"]
    text = summary.summary()
    assert "sms-spam: 5,574 examples (ham 4,827, spam 747) read" in text
    assert "balanced (undersampled): 1,494 examples (ham 747, spam 747)" in text
    assert "classes: 0 ham, 1 spam" in text
    assert "padded to 120 tokens (longest training text) with id 50256" in text
    assert "130 batches of 8, last partial batch dropped" in text


def test_batches_and_trimming(walkthrough_data: ClassificationData) -> None:
    train, val = walkthrough_data.train, walkthrough_data.val
    batch = train.batch([3, 0, 7])
    assert (
        batch["ids"].shape == (3, 120)
        and batch["labels"].tolist() == train.labels[[3, 0, 7]].tolist()
    )
    assert torch.equal(batch["ids"][1], train.ids[0])
    trimmed = train.batch([3, 0, 7], trim=True)
    width = int(train.lengths[[3, 0, 7]].max())
    assert trimmed["ids"].shape == (3, width) and width < 120
    assert torch.equal(trimmed["ids"], batch["ids"][:, :width])
    # in order, the last partial batch kept for val (149 = 18 x 8 + 5), dropped for train
    val_batches = list(val.batches(8))
    assert len(val_batches) == 19 and val_batches[-1]["ids"].shape[0] == 5
    assert torch.equal(torch.cat([b["labels"] for b in val_batches]), val.labels)
    train_batches = list(train.batches(8))
    assert len(train_batches) == 130 and {b["ids"].shape[0] for b in train_batches} == {8}
    with pytest.raises(ConfigError, match="no split 'validation'"):
        walkthrough_data.split("validation")


# --- options: fixed length, the context length, the pad token ----------------------------------


def tiny_splits(texts: dict[str, list[tuple[str, str]]]) -> LabelledSplits:
    sets = {
        name: LabelledSet(
            name, Path(f"{name}.csv"), tuple(LabelledExample(t, lab, 2) for t, lab in rows)
        )
        for name, rows in texts.items()
    }
    labels = sets["train"].labels
    return LabelledSplits(labels, sets["train"], sets["val"], sets["test"], {}, None)


@pytest.fixture
def words() -> SimpleTokenizer:
    return SimpleTokenizer.train("a b c d e f")  # one token a word; <|endoftext|> is id 6


def test_padded_length_fixed_or_capped_by_the_context(words: SimpleTokenizer) -> None:
    splits = tiny_splits(
        {
            "train": [("a b c", "x"), ("d", "y")],
            "val": [("a b c d e", "x")],
            "test": [("f", "y")],
        }
    )
    longest = encode_splits(splits, words)
    assert (longest.pad_length, longest.summary.pad_length_from) == (3, "longest training text")
    assert longest.val.ids.tolist() == [[0, 1, 2]] and longest.val.truncated == 1
    assert longest.test.ids.tolist() == [[5, 6, 6]] and longest.test.lengths.tolist() == [1]
    assert longest.train.labels.tolist() == [0, 1]

    fixed = encode_splits(splits, words, max_length=6)
    assert fixed.pad_length == 6 and fixed.summary.pad_length_from == "max_length"
    assert fixed.val.ids.tolist() == [[0, 1, 2, 3, 4, 6]] and fixed.val.truncated == 0

    capped = encode_splits(splits, words, context_length=2)
    assert (capped.pad_length, capped.summary.pad_length_from) == (2, "context length")
    assert capped.train.truncated == 1 and capped.summary.splits["train"].longest == 3
    with pytest.raises(ConfigError, match="max_length 6 is longer than the model's context"):
        encode_splits(splits, words, max_length=6, context_length=4)

    custom = encode_splits(splits, words, pad_id=99)
    assert custom.test.ids.tolist() == [[5, 99, 99]] and custom.summary.pad_id == 99


def test_special_token_text_in_a_message_is_plain_text(gpt2: Tokenizer) -> None:
    text = "reply <|endoftext|> now"
    splits = tiny_splits({"train": [(text, "x"), ("ok", "y")], "val": [("ok", "x")], "test": []})
    data = encode_splits(splits, gpt2)
    assert data.train.ids[0, : data.train.lengths[0]].tolist() == gpt2.encode_ordinary(text)
    assert EOT not in data.train.ids[0, : data.train.lengths[0]].tolist()
    assert data.test.ids.shape == (0, data.pad_length) and data.num_batches("test") == 0


def test_a_tokenizer_without_endoftext_needs_a_pad_id() -> None:
    plain = BPETokenizer.train("abc abc", vocab_size=256, special_tokens=())
    splits = tiny_splits({"train": [("ab", "x"), ("c", "y")], "val": [("a", "x")], "test": []})
    with pytest.raises(TokenizerError, match="no <\\|endoftext\\|> to pad with; give a pad_id"):
        encode_splits(splits, plain)
    assert encode_splits(splits, plain, pad_id=0).train.ids.tolist() == [[97, 98], [99, 0]]


def test_given_files_make_a_summary_naming_them(tmp_path: Path, words: SimpleTokenizer) -> None:
    for name, rows in (("train", "a,x\nb c,y\n"), ("val", "d,x\n")):
        (tmp_path / f"{name}.csv").write_text("text,label\n" + rows, encoding="utf-8")
    options = ClassificationDataOptions(
        data=str(tmp_path / "train.csv"), val_data=str(tmp_path / "val.csv"), max_length=4
    )
    data = prepare_classification(options, words, batch_size=1)
    summary = data.summary
    assert summary.source == f"{tmp_path / 'train.csv'} + {tmp_path / 'val.csv'}"
    assert (summary.pad_length, summary.balanced_counts) == (4, {"x": 1, "y": 1})
    assert {name: s.batches for name, s in summary.splits.items()} == {
        "train": 2,
        "val": 1,
        "test": 0,
    }
    assert summary.splits["test"].class_counts == {"x": 0, "y": 0}
