"""Our byte-level BPE: the merge rule, training, encoding against tiktoken, decoding, saving.

Oracles: hand-derived merges, tiktoken (a trained vocabulary loaded into ``tiktoken.Encoding``
must give the same ids) and a from-scratch recount of pair statistics.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import regex
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.errors import DisallowedSpecialTokenError, TokenizerError
from scratchllm.tokenizer import ENDOFTEXT, BPETokenizer, load_tokenizer
from scratchllm.tokenizer import bpe as bpe_module
from scratchllm.tokenizer.bpe import _merge_word, bpe_merge, count_chunks, learn_bpe
from scratchllm.tokenizer.patterns import (
    GPT2_PATTERN,
    GPT4_PATTERN,
    Gpt2Splitter,
    compile_pattern,
    gpt2_pattern_for_re,
)

BYTE_RANKS = {bytes([byte]): byte for byte in range(256)}


@pytest.fixture(scope="module")
def verdict(shared_data: Path) -> str:
    return (shared_data / "the-verdict.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trained(verdict: str) -> BPETokenizer:
    """A small tokenizer learned from The Verdict (a fraction of a second)."""
    return BPETokenizer.train(verdict, 600)


def as_tiktoken(tokenizer: BPETokenizer) -> tiktoken.Encoding:
    return tiktoken.Encoding(
        "trained",
        pat_str=tokenizer.pattern,
        mergeable_ranks=dict(tokenizer.mergeable_ranks),
        special_tokens=tokenizer.special_tokens,
    )


# ---- pre-tokenisation ---------------------------------------------------------------------------


def test_gpt2_pattern_for_re_cuts_like_regex_on_every_code_point() -> None:
    """GPT-2's pattern spelled for ``re`` must cut exactly as the original does in ``regex``
    (on text below U+10000, the only text ``Gpt2Splitter`` gives it)."""
    fast = re.compile(gpt2_pattern_for_re())
    reference = regex.compile(GPT2_PATTERN)
    codes = [*range(0xD800), *range(0xE000, 0x10000)]
    for start in range(0, len(codes), 20_000):
        # each character after a letter, a space, itself, a digit, a newline, and before 's
        characters = map(chr, codes[start : start + 20_000])
        text = "".join(f"x{c} {c}{c}1{c}\n{c}'s!{c}  {c}" for c in characters)
        assert fast.findall(text) == reference.findall(text)


@pytest.mark.parametrize(
    "text",
    [
        "ASCII only (re path)\n",
        "Latin-1 and CJK, naïve 日本 (re path)",
        "one astral letter 𝐀 and an emoji 🙂 (regex path)",
        "",
    ],
)
def test_gpt2_splitter_gives_regexs_chunks_on_both_paths(text: str) -> None:
    splitter = compile_pattern("gpt2")
    assert isinstance(splitter, Gpt2Splitter) and splitter.pattern == GPT2_PATTERN
    assert splitter.findall(text * 20) == regex.compile(GPT2_PATTERN).findall(text * 20)


# ---- the merge rule ---------------------------------------------------------------------------


def test_bpe_merge_takes_the_lowest_rank_first_and_the_leftmost_on_ties() -> None:
    ranks = BYTE_RANKS | {b"ab": 256, b"bc": 257, b"abc": 258, b"aa": 259}
    # a b c d: "ab" (256) beats "bc" (257), then "ab"+"c" is "abc" (258)
    assert bpe_merge(ranks, b"abcd") == [258, ord("d")]
    # b c a b: "ab" (256) first, then no pair of (b c ab) is a token except "bc"
    assert bpe_merge(ranks, b"bcab") == [257, 256]
    # a a a: two equal-rank pairs, the leftmost merges
    assert bpe_merge(ranks, b"aaa") == [259, ord("a")]
    assert bpe_merge(ranks, b"") == []
    assert bpe_merge(ranks, b"z") == [ord("z")]


def test_bpe_merge_handles_a_long_run_quickly() -> None:
    ranks = BYTE_RANKS | {b"  ": 256, b"    ": 257}
    ids = bpe_merge(ranks, b" " * 5001)
    assert ids == [257] * 1250 + [ord(" ")]


# ---- training ---------------------------------------------------------------------------------


def test_learn_bpe_hand_derived_example() -> None:
    # "aaab" x2 and "ab" x1: (a, a) occurs 4 times -> 256; then (a, b) 3 times beats (aa, a) 2
    tokens, merges = learn_bpe({b"aaab": 2, b"ab": 1}, 259)
    assert merges == [(97, 97, 256), (97, 98, 257), (256, 257, 258)]
    assert tokens[256:] == [b"aa", b"ab", b"aaab"]


@settings(max_examples=200, deadline=None)
@given(
    word=st.lists(st.integers(0, 4), max_size=12),
    pair=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    frequency=st.integers(1, 5),
)
def test_merge_word_changes_equal_a_full_recount(
    word: list[int], pair: tuple[int, int], frequency: int
) -> None:
    changes: dict[tuple[int, int], int] = defaultdict(int)
    merged = _merge_word(word, pair, 9, frequency, changes)
    expected = word if merged is None else merged
    assert merged is None or merged != word
    # the textbook merge gives the same word
    out, i = [], 0
    while i < len(word):
        if tuple(word[i : i + 2]) == pair:
            out.append(9)
            i += 2
        else:
            out.append(word[i])
            i += 1
    assert expected == out
    before = Counter(zip(word, word[1:], strict=False))
    after = Counter(zip(out, out[1:], strict=False))
    recount = {p: (after[p] - before[p]) * frequency for p in before | after}
    assert {p: n for p, n in changes.items() if n} == {p: n for p, n in recount.items() if n}


def test_count_chunks_counts_per_document_and_cuts_out_special_tokens() -> None:
    pattern = compile_pattern("gpt2")
    counts = count_chunks(["the cat<|endoftext|>the", "cat"], pattern, [ENDOFTEXT])
    assert counts == Counter({b"the": 2, b" cat": 1, b"cat": 1})


def test_train_sizes_ids_and_special_tokens(trained: BPETokenizer) -> None:
    assert trained.vocab_size == 600
    assert trained.special_tokens == {ENDOFTEXT: 599}
    assert trained.eot_id == 599
    assert sorted(trained.mergeable_ranks.values()) == list(range(599))
    assert all(trained.token_bytes(byte) == bytes([byte]) for byte in range(256))


def test_train_never_learns_special_token_text() -> None:
    text = "ab<|endoftext|>" * 200 + "<|fim|>x" * 100
    tok = BPETokenizer.train(text, 300, special_tokens=[ENDOFTEXT, "<|fim|>"])
    learned = [token for token in tok.mergeable_ranks if len(token) > 1]
    assert learned == [b"ab"]  # the only pair outside the special tokens
    assert tok.special_tokens == {ENDOFTEXT: 257, "<|fim|>": 258}
    assert tok.encode("ab<|fim|>", allowed_special="all") == [256, 258]


def test_train_stops_early_when_no_pair_is_left() -> None:
    # one-character documents: no chunk has a pair, so nothing can be merged
    tok = BPETokenizer.train(["x", "y"] * 50, 1000)
    assert tok.vocab_size == 257
    assert tok.special_tokens == {ENDOFTEXT: 256}


def test_train_accepts_strings_iterables_and_corpora(verdict: str) -> None:
    class Document:
        def __init__(self, text: str) -> None:
            self.text = text

    class Corpus:
        def documents(self):
            return (Document(part) for part in verdict.split("\n\n"))

    from_corpus = BPETokenizer.train(Corpus(), 300)
    from_list = BPETokenizer.train(iter(verdict.split("\n\n")), 300)
    assert dict(from_corpus.mergeable_ranks) == dict(from_list.mergeable_ranks)
    with pytest.raises(TokenizerError, match="document 1 is a int"):
        BPETokenizer.train(["ok", 3], 300)
    with pytest.raises(TokenizerError, match="cannot train on a int"):
        BPETokenizer.train(42, 300)


@pytest.mark.parametrize(
    ("vocab_size", "specials"), [(256, [ENDOFTEXT]), (257, ["<|a|>", "<|b|>"]), (300.0, [])]
)
def test_train_rejects_a_vocab_size_below_bytes_plus_specials(vocab_size, specials) -> None:
    with pytest.raises(TokenizerError, match="vocab_size"):
        BPETokenizer.train("hello", vocab_size, special_tokens=specials)


def test_train_patterns_by_name_and_custom_regex() -> None:
    text = "Hello world's 12345 numbers\n" * 20
    gpt2 = BPETokenizer.train(text, 300, pattern="gpt2")
    gpt4 = BPETokenizer.train(text, 300, pattern="gpt4")
    words = BPETokenizer.train(text, 300, pattern=r"\w+|\s+|[^\w\s]+")
    assert (gpt2.pattern, gpt4.pattern) == (GPT2_PATTERN, GPT4_PATTERN)
    assert b" 12345" in gpt2.mergeable_ranks  # GPT-4's pattern cuts digits into groups of 3
    assert b"123" in gpt4.mergeable_ranks and b"12345" not in gpt4.mergeable_ranks
    assert b" world" not in words.mergeable_ranks and b"world" in words.mergeable_ranks
    with pytest.raises(TokenizerError, match="not a valid regex"):
        BPETokenizer.train(text, 300, pattern="(unclosed")


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_trained_vocabulary_in_tiktoken_gives_the_same_ids(verdict: str, pattern: str) -> None:
    tok = BPETokenizer.train(verdict, 500, pattern=pattern)
    encoding = as_tiktoken(tok)
    samples = [verdict, "Gisburn's   99 ducks\n\n\tdon't  ", "naïve café 日本語 🙂", ""]
    for text in samples:
        assert tok.encode_ordinary(text) == encoding.encode_ordinary(text)
    special = "end<|endoftext|>start"
    assert tok.encode(special, allowed_special="all") == encoding.encode(
        special, allowed_special="all"
    )


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=60))
def test_trained_tokenizer_matches_tiktoken_and_round_trips(trained: BPETokenizer, text: str):
    encoding = as_tiktoken(trained)
    ids = trained.encode_ordinary(text)
    assert ids == encoding.encode_ordinary(text)
    assert trained.decode(ids) == text


# ---- encoding details -------------------------------------------------------------------------


def test_encode_follows_the_special_token_rules(trained: BPETokenizer) -> None:
    with pytest.raises(DisallowedSpecialTokenError):
        trained.encode("a<|endoftext|>")
    assert trained.encode("a<|endoftext|>", allowed_special="all")[-1] == 599
    assert trained.encode_ordinary("<|endoftext|>") == trained.encode(
        "<|endoftext|>", disallowed_special=()
    )
    assert 599 not in trained.encode_ordinary("<|endoftext|>")


def test_lone_surrogates_become_replacement_characters_as_in_tiktoken(trained) -> None:
    encoding = as_tiktoken(trained)
    text = "a\ud800b"
    assert trained.encode_ordinary(text) == encoding.encode_ordinary(text)
    assert trained.decode(trained.encode_ordinary(text)) == "a\ufffdb"


def test_chunk_cache_stays_bounded(trained: BPETokenizer, verdict: str, monkeypatch) -> None:
    expected = as_tiktoken(trained).encode_ordinary(verdict)
    monkeypatch.setattr(bpe_module, "CHUNK_CACHE_LIMIT", 100)
    fresh = BPETokenizer(trained.mergeable_ranks, special_tokens=trained.special_tokens)
    for start in range(0, len(verdict), 2000):
        piece = verdict[start : start + 2000]
        fresh.encode_ordinary(piece)
        # emptied when full: never more than the limit or one call's distinct chunks
        distinct = len(set(fresh._pattern.findall(piece)))
        assert len(fresh._chunk_cache) <= max(100, distinct)
    assert fresh.encode_ordinary(verdict) == expected  # a cleared cache changes nothing
    assert fresh.encode_ordinary("hello there") == trained.encode_ordinary("hello there")


# ---- decoding ---------------------------------------------------------------------------------


def test_decode_bytes_token_bytes_and_errors(trained: BPETokenizer) -> None:
    ids = trained.encode("café", allowed_special="all")
    assert trained.decode_bytes(ids) == "café".encode()
    assert b"".join(trained.token_bytes(i) for i in ids) == "café".encode()
    assert trained.token_bytes(599) == b"<|endoftext|>"
    cut = list("é".encode())[:1]  # half of a two-byte character
    assert trained.decode(cut) == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        trained.decode(cut, errors="strict")
    for bad in (600, -1, 10**12):
        with pytest.raises(TokenizerError, match=f"token id {bad}"):
            trained.decode([1, bad])
    with pytest.raises(TokenizerError, match="token id 'x'"):
        trained.token_bytes("x")


# ---- construction and saving ------------------------------------------------------------------


def test_constructor_rejects_inconsistent_vocabularies() -> None:
    with pytest.raises(TokenizerError, match="256 single bytes"):
        BPETokenizer({bytes([b]): b for b in range(255)} | {b"ab": 255})
    with pytest.raises(TokenizerError, match="ids 0..256"):
        BPETokenizer(BYTE_RANKS | {b"ab": 300})
    with pytest.raises(TokenizerError, match="must come after"):
        BPETokenizer(BYTE_RANKS, special_tokens={ENDOFTEXT: 3})
    with pytest.raises(TokenizerError, match="share ids"):
        BPETokenizer(BYTE_RANKS, special_tokens={"<|a|>": 256, "<|b|>": 256})
    with pytest.raises(TokenizerError, match="pattern"):
        BPETokenizer(BYTE_RANKS, pattern="")


def test_save_and_load_preserve_every_id(trained: BPETokenizer, verdict: str, tmp_path) -> None:
    path = trained.save(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert isinstance(loaded, BPETokenizer)
    assert dict(loaded.mergeable_ranks) == dict(trained.mergeable_ranks)
    assert loaded.special_tokens == trained.special_tokens
    assert loaded.pattern == trained.pattern
    assert loaded.fingerprint == trained.fingerprint
    assert loaded.encode(verdict) == trained.encode(verdict)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert (saved["type"], saved["format_version"]) == ("bpe", 1)
    # human-readable: each learned token is "A B", the two earlier tokens it merges
    first = saved["tokens"][256]
    left, right = first.split(" ")
    assert left in saved["tokens"][:256] and right in saved["tokens"][:256]
    assert all(len(entry.split(" ")) == 2 for entry in saved["tokens"][256:])


def _saved(trained: BPETokenizer, tmp_path: Path) -> tuple[Path, dict]:
    path = trained.save(tmp_path)
    return path, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: d["tokens"].__setitem__(300, "Ġ\u4e00"), "not spelled"),
        (lambda d: d["tokens"].__setitem__(300, d["tokens"][299]), "repeated"),
        (lambda d: d["tokens"].__setitem__(300, "zzzz qqqq"), "does not come before"),
        (lambda d: d.pop("tokens"), "lacks"),
        (lambda d: d.__setitem__("pattern", "(["), "not a valid regex"),
        (lambda d: d["special_tokens"].__setitem__(ENDOFTEXT, 5), "must come after"),
        (lambda d: d.__setitem__("format_version", 99), "format version 99"),
    ],
)
def test_load_rejects_corrupt_files(trained, tmp_path, corrupt, message) -> None:
    path, data = _saved(trained, tmp_path)
    corrupt(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match=message):
        load_tokenizer(tmp_path)
