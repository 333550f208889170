"""Token files: the header byte by byte, round trips, and every way a file can be wrong."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.data.shards import HEADER_SIZE, read_tokens, token_dtype, write_tokens
from scratchllm.errors import DataFormatError

FINGERPRINT = "0123456789abcdef"
OTHER_FINGERPRINT = "fedcba9876543210"


def test_header_layout_byte_by_byte(tmp_path):
    path = tmp_path / "tokens.bin"
    write_tokens(path, [0, 1, 50256], vocab_size=50257, fingerprint=FINGERPRINT)
    raw = path.read_bytes()
    # the layout documented in shards.py, decoded by hand rather than with the module's struct
    assert raw[0:8] == b"SCRLLMTK"
    assert int.from_bytes(raw[8:12], "little") == 1  # format version
    assert int.from_bytes(raw[12:16], "little") == 1  # dtype code 1 = uint16
    assert int.from_bytes(raw[16:24], "little") == 3  # token count
    assert int.from_bytes(raw[24:32], "little") == 50257  # vocab size
    assert raw[32:48] == FINGERPRINT.encode("ascii")
    assert raw[48:64] == bytes(16)
    assert len(raw) == 64 + 3 * 2
    assert raw[64:] == bytes([0, 0, 1, 0, 0x50, 0xC4])  # 50256 = 0xC450, little-endian


def test_dtype_follows_the_vocabulary_size():
    # ids are 0 .. vocab_size - 1: a vocabulary of exactly 2**16 still fits in uint16
    assert token_dtype(50257) == np.uint16
    assert token_dtype(2**16) == np.uint16
    assert token_dtype(2**16 + 1) == np.uint32
    with pytest.raises(ValueError, match="vocab_size"):
        token_dtype(0)


def test_round_trip_uint16_is_a_read_only_memmap(tmp_path):
    path = tmp_path / "tokens.bin"
    tokens = np.array([40, 367, 2885, 1464, 50256], dtype=np.int64)
    header = write_tokens(path, tokens, vocab_size=50257, fingerprint=FINGERPRINT)
    token_file = read_tokens(path, expected_fingerprint=FINGERPRINT)
    assert token_file.header == header
    assert (header.count, header.vocab_size, header.fingerprint) == (5, 50257, FINGERPRINT)
    assert isinstance(token_file.tokens, np.memmap)
    assert token_file.tokens.dtype == np.uint16
    assert len(token_file) == 5
    np.testing.assert_array_equal(token_file.tokens, tokens)
    with pytest.raises(ValueError):  # mode "r": nobody edits a corpus by accident
        token_file.tokens[0] = 1


def test_round_trip_uint32_for_large_vocabularies(tmp_path):
    path = tmp_path / "tokens.bin"
    tokens = [0, 65535, 65536, 99_999]
    write_tokens(path, tokens, vocab_size=100_000, fingerprint=FINGERPRINT)
    token_file = read_tokens(path)
    assert token_file.tokens.dtype == np.uint32
    assert path.stat().st_size == HEADER_SIZE + 4 * 4
    assert token_file.tokens.tolist() == tokens


def test_empty_file_round_trips(tmp_path):
    path = tmp_path / "empty.bin"
    write_tokens(path, [], vocab_size=50257, fingerprint=FINGERPRINT)
    assert path.stat().st_size == HEADER_SIZE
    token_file = read_tokens(path)
    assert len(token_file) == 0
    assert token_file.tokens.dtype == np.uint16
    assert token_file.tokens.shape == (0,)


@settings(max_examples=40, deadline=None)
@given(
    vocab_size=st.integers(min_value=1, max_value=2**20),
    data=st.data(),
)
def test_round_trip_property(tmp_path_factory, vocab_size, data):
    tokens = data.draw(st.lists(st.integers(min_value=0, max_value=vocab_size - 1), max_size=200))
    path = tmp_path_factory.mktemp("prop") / "tokens.bin"
    write_tokens(path, tokens, vocab_size=vocab_size, fingerprint=FINGERPRINT)
    token_file = read_tokens(path, expected_fingerprint=FINGERPRINT)
    assert token_file.tokens.tolist() == tokens
    assert token_file.header.vocab_size == vocab_size


def test_overwrite_replaces_the_old_file(tmp_path):
    path = tmp_path / "tokens.bin"
    write_tokens(path, [1, 2, 3, 4], vocab_size=10, fingerprint=FINGERPRINT)
    write_tokens(path, [5], vocab_size=10, fingerprint=FINGERPRINT)
    assert read_tokens(path).tokens.tolist() == [5]
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.bin"]  # no temporary left behind


@pytest.mark.parametrize(
    ("tokens", "match"),
    [([1, 10], "token id 10 is outside the vocabulary 0..9"), ([-1, 2], "token id -1")],
)
def test_write_refuses_ids_outside_the_vocabulary(tmp_path, tokens, match):
    path = tmp_path / "tokens.bin"
    with pytest.raises(ValueError, match=match):
        write_tokens(path, tokens, vocab_size=10, fingerprint=FINGERPRINT)
    assert not path.exists()


@pytest.mark.parametrize(
    ("tokens", "fingerprint", "match"),
    [
        ([1], "abc", "fingerprint"),
        ([1], "0123456789ABCDEF", "fingerprint"),
        ([[1, 2]], FINGERPRINT, "one-dimensional"),
        ([1.5], FINGERPRINT, "integers"),
    ],
)
def test_write_refuses_malformed_input(tmp_path, tokens, fingerprint, match):
    with pytest.raises(ValueError, match=match):
        write_tokens(tmp_path / "t.bin", tokens, vocab_size=10, fingerprint=fingerprint)


# ---- reading files that are wrong ------------------------------------------------------------


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "tokens.bin"
    write_tokens(path, list(range(100)), vocab_size=50257, fingerprint=FINGERPRINT)
    return path


def test_missing_file(tmp_path):
    path = tmp_path / "nope.bin"
    with pytest.raises(DataFormatError, match=r"no token file at .*nope\.bin.*scratchllm prepare"):
        read_tokens(path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "numbers.bin"
    path.write_bytes(np.arange(100, dtype=np.uint16).tobytes())
    with pytest.raises(DataFormatError, match=r"numbers\.bin is not a scratchllm token file"):
        read_tokens(path)


def test_unsupported_version(good_file):
    raw = bytearray(good_file.read_bytes())
    raw[8:12] = (7).to_bytes(4, "little")
    good_file.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match="format version 7.*reads version 1"):
        read_tokens(good_file)


def test_unknown_dtype_code(good_file):
    raw = bytearray(good_file.read_bytes())
    raw[12:16] = (9).to_bytes(4, "little")
    good_file.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match="unknown dtype code 9"):
        read_tokens(good_file)


def test_truncated_tokens_say_expected_and_actual_bytes(good_file):
    good_file.write_bytes(good_file.read_bytes()[:-10])
    # 64 + 100 * 2 = 264 bytes promised, 254 present
    with pytest.raises(DataFormatError, match=r"100 tokens \(264 bytes\) but the file has 254"):
        read_tokens(good_file)


def test_truncated_header(good_file):
    good_file.write_bytes(good_file.read_bytes()[:20])
    with pytest.raises(DataFormatError, match="truncated: 20 bytes"):
        read_tokens(good_file)


def test_trailing_garbage_is_also_refused(good_file):
    good_file.write_bytes(good_file.read_bytes() + b"\0\0")
    with pytest.raises(DataFormatError, match="266 bytes"):
        read_tokens(good_file)


def test_fingerprint_mismatch_says_what_to_do(good_file):
    with pytest.raises(DataFormatError) as caught:
        read_tokens(good_file, expected_fingerprint=OTHER_FINGERPRINT)
    message = str(caught.value)
    assert f"made with tokenizer {FINGERPRINT}, you passed tokenizer {OTHER_FINGERPRINT}" in message
    assert "re-run `scratchllm prepare` with this tokenizer" in message
    assert "\n" not in message
