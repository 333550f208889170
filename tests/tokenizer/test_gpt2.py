"""GPT-2's vocabulary: both file formats, our BPE against tiktoken, and the tiktoken fast path.

Oracles: tiktoken's own gpt2 encoding (token for token), tiktoken's own reader of the ranks
file, GPT-2's ``vocab.bpe`` (our saved merges must spell it line for line) and the published
figure of 5,145 tokens for The Verdict.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.corpora import load_corpus
from scratchllm.errors import DisallowedSpecialTokenError, TokenizerError
from scratchllm.tokenizer import (
    ENDOFTEXT,
    BPETokenizer,
    TiktokenTokenizer,
    load_gpt2_bpe,
    load_gpt2_tiktoken,
    load_tokenizer,
)
from scratchllm.tokenizer.patterns import GPT2_PATTERN, bytes_to_unicode, unspell_bytes

EXAMPLE = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
EXAMPLE_IDS = [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812]
EXAMPLE_IDS += [2114, 286, 617, 34680, 27271, 13]

# texts where tokenizers tend to differ; shared with tests/weights/test_hf_tokenizer.py
EDGE_CASES = json.loads((Path(__file__).parent / "edge_cases.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tiktoken_gpt2(shared_data: Path) -> tiktoken.Encoding:
    return tiktoken.get_encoding("gpt2")  # from TIKTOKEN_CACHE_DIR, set by conftest


@pytest.fixture(scope="module")
def ours(shared_data: Path) -> BPETokenizer:
    return load_gpt2_tiktoken(shared_data / "gpt2.tiktoken")


@pytest.fixture(scope="module")
def verdict(shared_data: Path) -> str:
    return (shared_data / "the-verdict.txt").read_text(encoding="utf-8")


# ---- the two file formats ---------------------------------------------------------------------


def test_both_file_formats_give_tiktokens_ranks(shared_data: Path, ours: BPETokenizer) -> None:
    from_pair = load_gpt2_bpe(shared_data / "encoder.json", shared_data / "vocab.bpe")
    expected = tiktoken.load.load_tiktoken_bpe(str(shared_data / "gpt2.tiktoken"))
    assert dict(ours.mergeable_ranks) == expected
    assert dict(from_pair.mergeable_ranks) == expected
    for tokenizer in (ours, from_pair):
        assert tokenizer.special_tokens == {ENDOFTEXT: 50256}
        assert tokenizer.vocab_size == 50257
        assert tokenizer.pattern == GPT2_PATTERN


def test_byte_alphabet_is_gpt2s(shared_data: Path) -> None:
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert (table[ord(" ")], table[ord("\n")], table[ord("!")]) == ("Ġ", "Ċ", "!")
    encoder = json.loads((shared_data / "encoder.json").read_text(encoding="utf-8"))
    # GPT-2's first 256 ids are the single bytes, spelled with exactly this alphabet
    first = sorted(encoder, key=encoder.__getitem__)[:256]
    assert set(first) == set(table.values())
    assert sorted(unspell_bytes(spelled) for spelled in first) == [bytes([b]) for b in range(256)]
    assert all(table[byte] == chr(byte) for byte in range(ord("!"), ord("~") + 1))


@pytest.mark.slow  # spells and re-reads all 50,256 tokens: about 2 s
def test_saved_gpt2_spells_vocab_bpe_and_round_trips(shared_data, ours, tmp_path) -> None:
    ours.save(tmp_path)
    saved = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    merges = (shared_data / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
    assert saved["tokens"][256:] == [line for line in merges if line]
    loaded = load_tokenizer(tmp_path)
    assert dict(loaded.mergeable_ranks) == dict(ours.mergeable_ranks)
    assert loaded.special_tokens == ours.special_tokens
    assert loaded.fingerprint == ours.fingerprint


def test_missing_files_name_the_file(tmp_path: Path, shared_data: Path) -> None:
    missing = tmp_path / "nope.tiktoken"
    with pytest.raises(TokenizerError, match="nope.tiktoken"):
        load_gpt2_tiktoken(missing)
    with pytest.raises(TokenizerError, match="encoder.json"):
        load_gpt2_bpe(tmp_path / "encoder.json", shared_data / "vocab.bpe")
    with pytest.raises(TokenizerError, match="vocab.bpe"):
        load_gpt2_bpe(shared_data / "encoder.json", tmp_path / "vocab.bpe")


def test_corrupt_ranks_file_names_file_and_line(tmp_path: Path, shared_data: Path) -> None:
    lines = (shared_data / "gpt2.tiktoken").read_bytes().splitlines()
    bad = tmp_path / "bad.tiktoken"
    bad.write_bytes(b"\n".join([*lines[:3], b"!!notbase64 3", *lines[4:]]))
    with pytest.raises(TokenizerError, match=r"bad.tiktoken line 4"):
        load_gpt2_tiktoken(bad)
    gap = tmp_path / "gap.tiktoken"  # a rank missing: not a byte-level vocabulary
    gap.write_bytes(b"\n".join(lines[:300]).replace(b" 299", b" 999"))
    with pytest.raises(TokenizerError, match="gap.tiktoken is not a GPT-2 vocabulary"):
        load_gpt2_tiktoken(gap)
    empty = tmp_path / "empty.tiktoken"
    empty.write_bytes(b"")
    with pytest.raises(TokenizerError, match="holds no tokens"):
        load_gpt2_tiktoken(empty)


def test_mismatched_or_corrupt_encoder_and_merges(tmp_path: Path, shared_data: Path) -> None:
    encoder = shared_data / "encoder.json"
    lines = (shared_data / "vocab.bpe").read_text(encoding="utf-8").splitlines()
    swapped = tmp_path / "vocab.bpe"
    swapped.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]), encoding="utf-8")
    with pytest.raises(TokenizerError, match="do not match"):
        load_gpt2_bpe(encoder, swapped)
    short = tmp_path / "short.bpe"
    short.write_text("\n".join(lines[:-10]), encoding="utf-8")
    with pytest.raises(TokenizerError, match="do not match"):
        load_gpt2_bpe(encoder, short)
    not_json = tmp_path / "encoder.json"
    not_json.write_text("{oops", encoding="utf-8")
    with pytest.raises(TokenizerError, match="encoder.json is not GPT-2's encoder.json"):
        load_gpt2_bpe(not_json, shared_data / "vocab.bpe")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"a b": 0}), encoding="utf-8")
    with pytest.raises(TokenizerError, match="not spelled in GPT-2's byte alphabet"):
        load_gpt2_bpe(foreign, shared_data / "vocab.bpe")


# ---- our BPE with GPT-2's vocabulary equals tiktoken -------------------------------------------


def test_the_exact_example(ours: BPETokenizer) -> None:
    assert ours.encode(EXAMPLE, allowed_special={ENDOFTEXT}) == EXAMPLE_IDS
    with pytest.raises(DisallowedSpecialTokenError):
        ours.encode(EXAMPLE)
    assert ours.decode(EXAMPLE_IDS) == EXAMPLE


def test_the_verdict_has_5145_tokens(ours, tiktoken_gpt2, verdict: str) -> None:
    ids = ours.encode(verdict)
    assert len(ids) == 5145
    assert ids == tiktoken_gpt2.encode_ordinary(verdict)
    assert ours.decode(ids) == verdict


def test_python_docs_equal_tiktoken(ours, tiktoken_gpt2) -> None:
    text = load_corpus("python-docs").text()
    assert len(text) > 100_000
    assert ours.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


def test_python_stdlib_sample_equals_tiktoken(ours, tiktoken_gpt2) -> None:
    corpus = load_corpus("python-stdlib")
    names = corpus.document_names[:: max(1, len(corpus.document_names) // 12)]
    assert len(names) >= 12
    for name in names:
        text = corpus.read_document(name)
        assert ours.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text), name


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases_equal_tiktoken(ours, tiktoken_gpt2, text: str) -> None:
    assert ours.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)
    assert ours.encode(text, allowed_special="all") == tiktoken_gpt2.encode(
        text, allowed_special="all"
    )
    assert ours.decode(ours.encode_ordinary(text)) == text


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80) | st.text(alphabet=" \t\n\r'sSdm1aé🙂", max_size=40))
def test_arbitrary_text_equals_tiktoken_and_round_trips(ours, tiktoken_gpt2, text: str) -> None:
    ids = ours.encode_ordinary(text)
    assert ids == tiktoken_gpt2.encode_ordinary(text)
    assert ours.decode(ids) == text


# ---- the tiktoken fast path -------------------------------------------------------------------


def test_tiktoken_tokenizer_from_its_cache(verdict: str, tiktoken_gpt2) -> None:
    tok = TiktokenTokenizer.gpt2()
    assert tok.type_name == "tiktoken"
    assert (tok.vocab_size, tok.special_tokens, tok.eot_id) == (50257, {ENDOFTEXT: 50256}, 50256)
    assert len(tok.encode(verdict)) == 5145
    assert tok.encode(EXAMPLE, allowed_special={ENDOFTEXT}) == EXAMPLE_IDS
    with pytest.raises(DisallowedSpecialTokenError):
        tok.encode(EXAMPLE)
    assert tok.decode(EXAMPLE_IDS) == EXAMPLE
    assert tok.token_bytes(50256) == b"<|endoftext|>"
    assert tok.decode_bytes([15496]) == b"Hello"
    for bad in (50257, -1):
        with pytest.raises(TokenizerError, match=f"token id {bad}"):
            tok.decode([15496, bad])


def test_tiktoken_tokenizer_from_a_path(shared_data: Path, tmp_path: Path, verdict: str):
    expected = TiktokenTokenizer.gpt2().encode(verdict)
    (tmp_path / "ranks").mkdir()
    shutil.copy(shared_data / "gpt2.tiktoken", tmp_path / "ranks" / "gpt2.tiktoken")
    for path in (shared_data / "gpt2.tiktoken", shared_data, tmp_path / "ranks"):
        assert TiktokenTokenizer.gpt2(path).encode(verdict) == expected, path
    with pytest.raises(TokenizerError, match="neither encoder.json"):
        TiktokenTokenizer.gpt2(tmp_path)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No tiktoken cache, no already-built encodings, and every download fails."""
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})

    def no_network(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise ConnectionError(f"network disabled in tests: {blobpath}")
        return Path(blobpath).read_bytes()

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    return empty


def test_without_cache_or_network_the_error_says_what_to_do(offline: Path) -> None:
    with pytest.raises(TokenizerError) as caught:
        TiktokenTokenizer.gpt2()
    message = str(caught.value)
    assert "TIKTOKEN_CACHE_DIR" in message and str(offline) in message
    assert "Pass the path" in message and "ConnectionError" in message


def test_saved_tiktoken_tokenizer_loads_offline(tmp_path, offline, shared_data, verdict) -> None:
    tok = TiktokenTokenizer.gpt2(shared_data / "gpt2.tiktoken")
    tok.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "ranks.tiktoken").read_bytes() == (
        shared_data / "gpt2.tiktoken"
    ).read_bytes()
    loaded = load_tokenizer(tmp_path / "saved")
    assert isinstance(loaded, TiktokenTokenizer)
    assert loaded.encode(verdict) == tok.encode(verdict)
    assert loaded.fingerprint == tok.fingerprint
    assert loaded.special_tokens == {ENDOFTEXT: 50256}


def test_saved_tiktoken_tokenizer_with_a_changed_ranks_file_is_refused(tmp_path, shared_data):
    tok = TiktokenTokenizer.gpt2(shared_data / "gpt2.tiktoken")
    tok.save(tmp_path)
    ranks = tmp_path / "ranks.tiktoken"
    ranks.write_bytes(ranks.read_bytes().replace(base64.b64encode(b"!") + b" 0", b"IQ== 1"))
    with pytest.raises(TokenizerError, match="checksum"):
        load_tokenizer(tmp_path)
    ranks.unlink()
    with pytest.raises(TokenizerError, match="ranks.tiktoken"):
        load_tokenizer(tmp_path)


def test_same_vocabulary_same_fingerprint_in_both_implementations(
    ours: BPETokenizer, tmp_path: Path
) -> None:
    from scratchllm.data.shards import read_tokens, write_tokens

    tiktoken_gpt2 = TiktokenTokenizer.gpt2()

    assert ours.fingerprint == tiktoken_gpt2.fingerprint
    trained = BPETokenizer.train("a few words of text, a few words", 270)
    assert trained.fingerprint != ours.fingerprint
    # so a token file written through tiktoken reads back with our BPE
    path = tmp_path / "tokens.bin"
    ids = tiktoken_gpt2.encode_ordinary("the same ids either way")
    write_tokens(
        path, ids, vocab_size=tiktoken_gpt2.vocab_size, fingerprint=tiktoken_gpt2.fingerprint
    )
    assert read_tokens(path, expected_fingerprint=ours.fingerprint).tokens.tolist() == ids
