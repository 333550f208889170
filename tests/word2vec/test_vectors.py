"""Word vectors: queries on hand-made vectors, file round trips, and clear errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from scratchllm.errors import ConfigError, UnknownWordError, VectorsFormatError
from scratchllm.word2vec.vectors import TENSORS_FILE, TEXT_FILE, VOCAB_FILE, WordVectors

WORDS = ["king", "queen", "man", "woman", "apple"]
# gender on axis 0, royalty on axis 1, fruit on axis 2: king - man + woman = queen exactly
ROWS = [[1.0, 1.0, 0.0], [-1.0, 1.0, 0.0], [1.0, 0.0, 0.1], [-1.0, 0.0, 0.1], [0.0, -0.2, 1.0]]


@pytest.fixture
def vectors() -> WordVectors:
    return WordVectors(WORDS, torch.tensor(ROWS), counts=[50, 40, 30, 20, 10])


def test_similarity_is_the_cosine(vectors):
    # king . man = 1, |king| = sqrt(2), |man| = sqrt(1.01)
    assert vectors.similarity("king", "man") == pytest.approx(1 / (math.sqrt(2) * math.sqrt(1.01)))
    assert vectors.similarity("king", "king") == pytest.approx(1.0)


def test_most_similar_leaves_out_the_word_and_ranks_by_cosine(vectors):
    neighbours = vectors.most_similar("king", k=4)
    # cosines with king: man 0.70, queen 0, apple -0.14, woman -0.70
    assert [word for word, _ in neighbours] == ["man", "queen", "apple", "woman"]
    scores = [score for _, score in neighbours]
    assert scores == sorted(scores, reverse=True)
    assert len(vectors.most_similar("king", k=100)) == 4


def test_analogy_king_minus_man_plus_woman_is_queen(vectors):
    assert vectors.analogy("king", "man", "woman", k=1)[0][0] == "queen"


def test_an_unknown_word_names_itself_and_suggests_close_ones(vectors):
    with pytest.raises(UnknownWordError, match=r"'quen'.*close matches: queen") as caught:
        vectors.most_similar("quen")
    assert not isinstance(caught.value, KeyError)
    with pytest.raises(UnknownWordError, match="'zebra'"):
        vectors.similarity("king", "zebra")


def test_save_and_load_round_trip_our_format(vectors, tmp_path):
    vectors.metadata["note"] = "hello"
    vectors.save(tmp_path / "out")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(
        [TENSORS_FILE, VOCAB_FILE, TEXT_FILE]
    )
    loaded = WordVectors.load(tmp_path / "out")
    assert loaded.words == WORDS and loaded.counts == [50, 40, 30, 20, 10]
    assert torch.equal(loaded.vectors, vectors.vectors)
    assert loaded.metadata == {"note": "hello"}


def parse_word2vec_text(path):
    """An independent reader of the word2vec text format, as its C tool defines it."""
    lines = path.read_text(encoding="utf-8").split("\n")
    count, dim = (int(field) for field in lines[0].split(" "))
    table = {}
    for line in lines[1 : 1 + count]:
        word, *values = line.split(" ")
        assert len(values) == dim
        table[word] = [float(value) for value in values]
    assert lines[1 + count :] == [""]  # nothing after the last vector but the final newline
    return table


def test_the_text_file_is_standard_word2vec_text(vectors, tmp_path):
    vectors.save(tmp_path)
    table = parse_word2vec_text(tmp_path / TEXT_FILE)
    assert list(table) == WORDS
    for word, row in zip(WORDS, ROWS, strict=True):
        assert table[word] == pytest.approx(row, abs=1e-6)
    # and our loader reads it back, as a file or as a folder with only that file
    (tmp_path / VOCAB_FILE).unlink()
    for source in (tmp_path / TEXT_FILE, tmp_path):
        loaded = WordVectors.load(source)
        assert loaded.words == WORDS
        torch.testing.assert_close(loaded.vectors, vectors.vectors, atol=1e-6, rtol=1e-5)


def test_random_vectors_survive_the_text_format_to_six_digits(tmp_path):
    generator = torch.Generator().manual_seed(0)
    original = WordVectors([f"w{i}" for i in range(20)], torch.randn(20, 7, generator=generator))
    loaded = WordVectors.load_text(original.save_text(tmp_path / "v.txt"))
    torch.testing.assert_close(loaded.vectors, original.vectors, rtol=1e-5, atol=1e-6)


def test_glove_style_text_without_a_header_loads(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("the 0.5 -1.0\nof 2 3\n", encoding="utf-8")
    loaded = WordVectors.load(path)
    assert loaded.words == ["the", "of"] and loaded.vectors.tolist() == [[0.5, -1.0], [2.0, 3.0]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"2 3\nthe 1 2 3\n", "announces 2 words but the file holds 1"),
        (b"1 3\nthe 1 2\n", "line 2: expected a word and 3 numbers"),
        (b"1 2\nthe 1 x\n", "line 2: a value is not a number"),
        (b"1 2\n\xff\xfe binary", "not UTF-8"),
        (b"", "holds no word vectors"),
    ],
)
def test_a_corrupt_text_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(VectorsFormatError, match=message):
        WordVectors.load(path)


def test_a_corrupt_or_missing_folder_is_a_clear_error(vectors, tmp_path):
    with pytest.raises(VectorsFormatError, match="no such vectors"):
        WordVectors.load(tmp_path / "missing")
    with pytest.raises(VectorsFormatError, match="holds no word vectors"):
        WordVectors.load(tmp_path)
    vectors.save(tmp_path / "v")
    (tmp_path / "v" / TENSORS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(VectorsFormatError, match="corrupt"):
        WordVectors.load(tmp_path / "v")
    vectors.save(tmp_path / "w")
    vocab = json.loads((tmp_path / "w" / VOCAB_FILE).read_text())
    (tmp_path / "w" / VOCAB_FILE).write_text(json.dumps({**vocab, "words": WORDS[:2]}))
    with pytest.raises(VectorsFormatError, match="lists 2 words"):
        WordVectors.load(tmp_path / "w")
    (tmp_path / "w" / VOCAB_FILE).write_text("{broken")
    with pytest.raises(VectorsFormatError, match="not a valid vocabulary"):
        WordVectors.load(tmp_path / "w")


def test_construction_checks_shapes_and_uniqueness():
    with pytest.raises(ConfigError, match="one vector row per word"):
        WordVectors(["a", "b"], torch.zeros(3, 2))
    with pytest.raises(ConfigError, match="unique"):
        WordVectors(["a", "a"], torch.zeros(2, 2))
    with pytest.raises(ConfigError, match="cannot be written"):
        WordVectors(["two words", "b"], torch.zeros(2, 2)).save_text("unused.txt")
