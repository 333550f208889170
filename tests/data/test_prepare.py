"""Corpus preparation: tokens equal tiktoken's, splits land where documented, files read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiktoken
from hypothesis import given
from hypothesis import strategies as st

from scratchllm.corpora import Corpus, load_corpus
from scratchllm.data.prepare import (
    BOUNDARY_TOLERANCE,
    META_FILE,
    choose_split,
    load_prepared,
    prepare,
)
from scratchllm.data.shards import read_tokens
from scratchllm.errors import CorpusError, DataFormatError
from scratchllm.tokenizer import SimpleTokenizer, get_tokenizer

EOT = 50256


def make_corpus(texts: dict[str, str]) -> Corpus:
    """An in-memory corpus with documents in the given order."""
    return Corpus("hand-made", "test documents", tuple(texts), texts.__getitem__)


@pytest.fixture(scope="module")
def gpt2():
    return get_tokenizer("gpt2")


@pytest.fixture(scope="module")
def encoding():
    return tiktoken.get_encoding("gpt2")


def test_the_verdict_is_cut_inside_its_one_document(tmp_path, shared_data, gpt2):
    corpus = load_corpus(shared_data / "the-verdict.txt")
    report = prepare(corpus, gpt2, tmp_path, show_progress=False)
    # the published figures: 20,479 characters, 5,145 GPT-2 tokens (+ 1 end-of-text separator)
    assert (report.documents, report.characters, report.tokens) == (1, 20_479, 5_146)
    assert report.split == "tokens"
    assert report.train_tokens == round(0.9 * 5_146) == 4_631
    assert report.val_tokens == 5_146 - 4_631
    assert (report.train_documents, report.val_documents) == (1, 1)
    text = (shared_data / "the-verdict.txt").read_text(encoding="utf-8")
    expected = tiktoken.get_encoding("gpt2").encode_ordinary(text) + [EOT]
    prepared = load_prepared(tmp_path)
    assert prepared.train.tokens.tolist() == expected[:4_631]
    assert prepared.val.tokens.tolist() == expected[4_631:]


def test_documents_are_separated_and_split_at_a_boundary(tmp_path, gpt2, encoding):
    # ten documents of similar length: the last one is about 10% of the tokens
    texts = {
        f"doc{i}": f"Document number {i} says hello to the world once more." for i in range(10)
    }
    texts["doc3"] = "A literal <|endoftext|> in the text is only text."
    report = prepare(make_corpus(texts), gpt2, tmp_path, show_progress=False)
    pieces = [encoding.encode_ordinary(text) + [EOT] for text in texts.values()]
    expected = [token for piece in pieces for token in piece]
    assert report.split == "documents"
    assert report.tokens == len(expected)
    assert report.val_tokens == len(pieces[-1])
    assert (report.train_documents, report.val_documents) == (9, 1)
    train = read_tokens(report.train_path).tokens.tolist()
    val = read_tokens(report.val_path).tokens.tolist()
    assert train + val == expected
    assert val == pieces[-1]
    assert train[-1] == EOT  # the boundary is right after a separator
    assert expected.count(EOT) == 10  # the literal one in doc3 was encoded as text


def test_report_and_meta_json_agree(tmp_path, gpt2):
    report = prepare(make_corpus({"a": "one two three " * 50}), gpt2, tmp_path, show_progress=False)
    meta = json.loads((tmp_path / META_FILE).read_text(encoding="utf-8"))
    assert meta["files"] == {"train": "train.bin", "val": "val.bin", "tokenizer": "tokenizer"}
    assert meta["tokens"] == report.tokens == report.train_tokens + report.val_tokens
    assert meta["tokenizer_fingerprint"] == gpt2.fingerprint
    assert meta["corpus"] == "hand-made"
    assert "directory" not in meta  # the folder may move; paths are relative to it
    assert load_prepared(tmp_path).report == report
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "meta.json",
        "tokenizer",
        "train.bin",
        "val.bin",
    ]


def test_summary_names_the_counts_and_the_split(tmp_path, gpt2):
    report = prepare(make_corpus({"a": "one two " * 40}), gpt2, tmp_path, show_progress=False)
    summary = report.summary()
    assert f"{report.tokens:,} tokens" in summary
    assert f"val:   {report.val_tokens:,} tokens" in summary
    assert "inside a document" in summary  # one document: a token split
    assert str(tmp_path / "train.bin") in summary


def test_moved_directory_still_loads(tmp_path, gpt2):
    prepare(make_corpus({"a": "some words " * 20}), gpt2, tmp_path / "first", show_progress=False)
    (tmp_path / "first").rename(tmp_path / "second")
    prepared = load_prepared(tmp_path / "second")
    assert prepared.report.train_path == tmp_path / "second" / "train.bin"
    assert len(prepared.train) == prepared.report.train_tokens


def test_val_fraction_zero_writes_an_empty_val_file(tmp_path, gpt2):
    report = prepare(make_corpus({"a": "x y z " * 10}), gpt2, tmp_path, val_fraction=0.0)
    assert report.split == "none"
    assert (report.val_tokens, report.val_documents) == (0, 0)
    prepared = load_prepared(tmp_path)
    assert len(prepared.val) == 0
    assert len(prepared.train) == report.tokens


@pytest.mark.parametrize("val_fraction", [-0.1, 1.0, 1.5])
def test_val_fraction_is_validated(tmp_path, gpt2, val_fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        prepare(make_corpus({"a": "text"}), gpt2, tmp_path, val_fraction=val_fraction)
    assert not tmp_path.joinpath(META_FILE).exists()


def test_a_tokenizer_without_end_of_text_adds_no_separator(tmp_path):
    tokenizer = SimpleTokenizer.train("the cat sat on the mat .", special_tokens=())
    texts = {"a": "the cat sat .", "b": "the mat ."}
    report = prepare(make_corpus(texts), tokenizer, tmp_path, val_fraction=0.0)
    prepared = load_prepared(tmp_path)
    expected = tokenizer.encode_ordinary(texts["a"]) + tokenizer.encode_ordinary(texts["b"])
    assert prepared.train.tokens.tolist() == expected
    assert report.tokens == 7
    assert prepared.tokenizer.fingerprint == tokenizer.fingerprint


def test_empty_corpora_are_refused(tmp_path, gpt2):
    with pytest.raises(CorpusError, match="has no documents"):
        prepare(make_corpus({}), gpt2, tmp_path)
    with pytest.raises(CorpusError, match="tokenizes to nothing: its 2 document"):
        prepare(make_corpus({"a": "", "b": ""}), gpt2, tmp_path, show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_load_prepared_refuses_a_missing_directory(tmp_path):
    with pytest.raises(DataFormatError, match="not a prepared data directory"):
        load_prepared(tmp_path / "nothing")


def test_load_prepared_refuses_tokens_from_another_tokenizer(tmp_path, gpt2):
    prepare(make_corpus({"a": "the cat sat on the mat"}), gpt2, tmp_path, show_progress=False)
    other = SimpleTokenizer.train("the cat sat on the mat")
    other.save(tmp_path / "tokenizer")  # someone replaced the tokenizer copy
    with pytest.raises(DataFormatError, match="re-run `scratchllm prepare` with this tokenizer"):
        load_prepared(tmp_path)


def test_load_prepared_refuses_a_corrupt_meta_file(tmp_path, gpt2):
    prepare(make_corpus({"a": "the cat sat on the mat"}), gpt2, tmp_path, show_progress=False)
    (tmp_path / META_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"meta\.json is unreadable"):
        load_prepared(tmp_path)


# ---- the split rule ----------------------------------------------------------------------------


def test_choose_split_hand_derived():
    assert choose_split([30] * 10, 0.1) == (270, "documents")
    assert choose_split([100], 0.1) == (90, "tokens")
    assert choose_split([95, 5], 0.1) == (90, "tokens")  # 5% is more than 25% off 10%
    assert choose_split([92, 8], 0.1) == (92, "documents")  # 8% is within 25% of 10%
    assert choose_split([40, 30, 20, 10], 0.3) == (70, "documents")  # the last two documents
    # all 100 tokens would be closer to 99% than 95 are, but train keeps the first document
    assert choose_split([5, 95], 0.99) == (5, "documents")
    assert choose_split([10, 20], 0.5) == (15, "tokens")  # 20 of 30 is more than 25% off 15
    assert choose_split([50, 50], 0.0) == (100, "none")


@given(
    document_tokens=st.lists(st.integers(1, 1_000), min_size=1, max_size=30),
    val_fraction=st.floats(0.0, 0.99),
)
def test_choose_split_properties(document_tokens, val_fraction):
    total = sum(document_tokens)
    val_start, kind = choose_split(document_tokens, val_fraction)
    assert 0 <= val_start <= total
    boundaries = set(np.cumsum(document_tokens).tolist())
    if kind == "documents":
        assert val_start in boundaries and val_start < total  # some train, some val
        assert val_start >= document_tokens[0]
        target = val_fraction * total
        assert abs((total - val_start) - target) <= BOUNDARY_TOLERANCE * target
    elif kind == "tokens":
        assert val_start == round((1 - val_fraction) * total)
    else:
        assert val_fraction == 0 and val_start == total
