"""Our byte-level BPE as Hugging Face tokenizer files, and back.

Oracles: ``transformers.AutoTokenizer`` (through the ``tokenizers`` library) loading what we
write must give our ids on the tokenizer tests' edge cases and on random text; GPT-2's own
``vocab.json`` + ``merges.txt`` (OpenAI's ``encoder.json`` + ``vocab.bpe``) must read back as
tiktoken's gpt2.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.errors import TokenizerError
from scratchllm.tokenizer import BPETokenizer, SimpleTokenizer, get_tokenizer
from scratchllm.tokenizer.patterns import GPT2_PATTERN, compile_pattern, spell_bytes
from scratchllm.weights.hf_tokenizer import (
    HF_TOKENIZER_FILES,
    load_hf_tokenizer_json,
    load_hf_vocab_and_merges,
    merges_of,
    read_hf_tokenizer,
    tokenizer_json,
    vocabulary_from_tokenizer_json,
    vocabulary_of,
    write_hf_tokenizer,
)

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()  # tiny vocabularies: bos/eos and length warnings
transformers.logging.disable_progress_bar()
tokenizers = pytest.importorskip("tokenizers")

# the tokenizer tests' edge cases (tests/tokenizer/test_gpt2.py; test modules cannot import
# each other under --import-mode=importlib)
# the tokenizer tests' edge cases (tests/tokenizer/edge_cases.json)
EDGE_CASES = json.loads(
    (Path(__file__).parents[1] / "tokenizer" / "edge_cases.json").read_text(encoding="utf-8")
)


@pytest.fixture(scope="module")
def verdict(shared_data: Path) -> str:
    return (shared_data / "the-verdict.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def gpt2() -> object:
    return get_tokenizer("gpt2")  # tiktoken's, from TIKTOKEN_CACHE_DIR (tests/conftest.py)


@pytest.fixture(scope="module", params=["gpt2", "gpt4"])
def trained(request, verdict: str) -> BPETokenizer:
    return BPETokenizer.train(verdict, 500, pattern=request.param)


@pytest.fixture(scope="module")
def exported_gpt2(gpt2, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("gpt2-hf")
    write_hf_tokenizer(gpt2, directory, model_max_length=1024)
    return directory


def hf_ids(hf_tokenizer, text: str) -> list[int]:
    return hf_tokenizer(text, add_special_tokens=False)["input_ids"]


def test_hf_gpt2_byte_level_regex_cuts_like_our_gpt2_pattern(verdict: str):
    # what lets us read GPT-2's own tokenizer.json (ByteLevel with its built-in regex)
    byte_level = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    ours = compile_pattern("gpt2")
    for text in [*EDGE_CASES, verdict]:
        theirs = [piece for piece, _ in byte_level.pre_tokenize_str(text)]
        assert theirs == [spell_bytes(chunk.encode()) for chunk in ours.findall(text)], text


@pytest.mark.slow  # GPT-2's 50,000 merges, spelled and read back: about 3 s
def test_gpt2_exports_to_autotokenizer_and_back(gpt2, exported_gpt2: Path, verdict: str):
    assert sorted(p.name for p in exported_gpt2.iterdir()) == sorted(HF_TOKENIZER_FILES)
    hf = transformers.AutoTokenizer.from_pretrained(exported_gpt2)
    for text in [*EDGE_CASES, verdict]:
        ids = gpt2.encode(text, allowed_special="all")
        assert hf_ids(hf, text) == ids, text
        assert hf.decode(ids) == gpt2.decode(ids)
    assert (hf.eos_token_id, hf.bos_token_id) == (50256, 50256)
    back = read_hf_tokenizer(exported_gpt2)
    assert back.fingerprint == gpt2.fingerprint


def test_gpt2s_vocab_json_and_merges_txt_are_tiktokens_gpt2(gpt2, shared_data: Path):
    tokenizer = load_hf_vocab_and_merges(shared_data / "encoder.json", shared_data / "vocab.bpe")
    assert tokenizer.special_tokens == {"<|endoftext|>": 50256}
    assert tokenizer.fingerprint == gpt2.fingerprint
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces"
    assert tokenizer.encode(text, allowed_special="all") == gpt2.encode(text, allowed_special="all")


def test_trained_bpe_exports_and_reads_back(trained: BPETokenizer, tmp_path: Path):
    write_hf_tokenizer(trained, tmp_path, model_max_length=256)
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert len(hf) == trained.vocab_size
    for text in EDGE_CASES:
        ids = trained.encode(text, allowed_special="all")
        assert hf_ids(hf, text) == ids, text
        assert hf.decode(ids) == trained.decode(ids)
    for reader in (lambda d: load_hf_tokenizer_json(d / "tokenizer.json"), read_hf_tokenizer):
        back = reader(tmp_path)
        assert back.fingerprint == trained.fingerprint  # same vocabulary, same token files
        assert back.encode(EDGE_CASES[12]) == trained.encode(EDGE_CASES[12])
    # vocab.json + merges.txt alone carry GPT-2's pattern only
    (tmp_path / "tokenizer.json").unlink()
    if trained.pattern == GPT2_PATTERN:
        assert read_hf_tokenizer(tmp_path).fingerprint == trained.fingerprint


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> tuple[BPETokenizer, object]:
    """A BPE trained on varied text (a few hundred code points) and its AutoTokenizer export."""
    sample = "Ünïcödé  text, 123 numbers!\n\tand 'quotes' we've done 🙂 " * 30
    trained = BPETokenizer.train(sample + "".join(map(chr, range(32, 600))), 400)
    directory = tmp_path_factory.mktemp("varied-hf")
    write_hf_tokenizer(trained, directory, model_max_length=64)
    return trained, transformers.AutoTokenizer.from_pretrained(directory)


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=60))
def test_random_text_hf_equals_ours(varied, text: str):
    trained, hf = varied
    assert hf_ids(hf, text) == trained.encode_ordinary(text)


def test_merges_are_each_tokens_canonical_split():
    ranks = {bytes([b]): b for b in range(256)} | {b"bc": 256, b"ab": 257, b"abc": 258}
    assert merges_of(ranks) == [(b"b", b"c"), (b"a", b"b"), (b"a", b"bc")]


def test_the_word_level_tokenizer_is_refused():
    with pytest.raises(TokenizerError, match="simple tokenizer cannot be written"):
        vocabulary_of(SimpleTokenizer.train("a b c"))


def _document(trained: BPETokenizer) -> dict:
    return json.loads(json.dumps(tokenizer_json(vocabulary_of(trained))))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: d["model"]["merges"].__setitem__(3, d["model"]["merges"][4]), "merge 4"),
        (lambda d: d["model"]["vocab"].__setitem__("\u4e00", 7), "not spelled in GPT-2's byte"),
        (lambda d: d["model"].__setitem__("type", "WordPiece"), "not a byte-level BPE"),
        (lambda d: d.__setitem__("normalizer", {"type": "NFC"}), "normalizes text"),
        (lambda d: d.__setitem__("pre_tokenizer", {"type": "Whitespace"}), "pre-tokenizer"),
        (lambda d: d["added_tokens"][0].__setitem__("id", 3), "has the ordinary id 3"),
        (lambda d: d["model"].pop("merges"), "not a tokenizers BPE file"),
    ],
)
def test_foreign_tokenizer_json_is_refused_with_the_reason(verdict, corrupt, message):
    document = _document(BPETokenizer.train(verdict[:3000], 300))
    assert vocabulary_from_tokenizer_json(copy.deepcopy(document), where="t.json").ranks
    corrupt(document)
    with pytest.raises(TokenizerError, match=message):
        vocabulary_from_tokenizer_json(document, where="t.json")


def test_gpt2s_own_byte_level_pre_tokenizer_is_read_as_our_pattern(verdict):
    trained = BPETokenizer.train(verdict[:3000], 300)
    document = _document(trained)
    document["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    assert vocabulary_from_tokenizer_json(document, where="t.json").pattern == trained.pattern
