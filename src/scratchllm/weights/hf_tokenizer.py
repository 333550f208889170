"""Hugging Face tokenizer files <-> our byte-level BPE: one vocabulary, two spellings.

A byte-level BPE is three pieces of data: the **ranks** (token bytes -> id; every single byte
is a token), the **pre-tokenisation pattern** that cuts text into chunks, and the **special
tokens**. Our ``BPETokenizer`` and ``TiktokenTokenizer`` hold exactly that (``Vocabulary``
here). Hugging Face writes the same data in two layouts, both read and written here:

- ``tokenizer.json``, the ``tokenizers`` library's format, which ``AutoTokenizer`` loads: a
  ``BPE`` model (``vocab``: token spelled in GPT-2's byte alphabet -> id; ``merges``: ``"A B"``
  in priority order), a pre-tokenizer, a ``ByteLevel`` decoder, and the special tokens as
  ``added_tokens``;
- ``vocab.json`` + ``merges.txt``: OpenAI's ``encoder.json`` + ``vocab.bpe`` under new names
  (GPT-2's own repository holds the very same bytes), read with GPT-2's pattern.

Two encoding rules meet here. tiktoken (and our ``bpe_merge``) merges, in a chunk, the
adjacent pair whose concatenation has the lowest rank; ``tokenizers`` merges the listed pair
with the lowest priority. They agree when merge ``k`` is the **canonical split** of the token
of rank ``256 + k``: the two earlier tokens that ``bpe_merge`` over the lower ranks ends with
(``merges_of``). That is how GPT-2's ``vocab.bpe`` is written, how our saved form spells its
tokens, and how transformers' own tiktoken converter derives merges; reading, we check it
(``vocabulary_from_merges``), so a foreign file that breaks it is refused rather than
tokenized differently. The tests hold both directions against ``AutoTokenizer`` on the
tokenizer tests' edge cases.

The pattern. Exporting, we write a ``Split`` pre-tokenizer with our exact regex followed by
``ByteLevel(use_regex=False)``, so any pattern (GPT-2's, GPT-4's, a custom one) is kept as is
(``tokenizers`` runs tiktoken's possessive quantifiers). Reading, we also accept GPT-2's own
``ByteLevel(use_regex=True)``, whose built-in regex is OpenAI's original GPT-2 pattern: it cuts
text as our ``GPT2_PATTERN`` does (the tests compare the two on the edge cases).

The word-level ``SimpleTokenizer`` has no Hugging Face form here: ``tokenizers`` has no decoder
for its rule "join with spaces, then drop the space before punctuation", so an export would
not give back our text; ``vocabulary_of`` refuses it with a message saying so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tiktoken

from scratchllm.errors import TokenizerError
from scratchllm.io import atomic_write_text
from scratchllm.tokenizer import BPETokenizer, TiktokenTokenizer, Tokenizer
from scratchllm.tokenizer.bpe import _RanksBelow, bpe_merge
from scratchllm.tokenizer.patterns import GPT2_PATTERN, spell_bytes, unspell_bytes

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
VOCAB_JSON = "vocab.json"
MERGES_TXT = "merges.txt"
MERGES_HEADER = "#version: 0.2"  # the first line of GPT-2's vocab.bpe / merges.txt

#: the files ``write_hf_tokenizer`` writes, in that order
HF_TOKENIZER_FILES = (VOCAB_JSON, MERGES_TXT, TOKENIZER_JSON, TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP)


@dataclass(frozen=True)
class Vocabulary:
    """A byte-level BPE as plain data: ranks (= ids), split pattern, special tokens."""

    ranks: Mapping[bytes, int]
    pattern: str
    special_tokens: Mapping[str, int]


# ---- our tokenizers -> data -> Hugging Face's files ----------------------------------------------


def vocabulary_of(tokenizer: Tokenizer) -> Vocabulary:
    """The ranks, pattern and special tokens of one of our byte-level tokenizers.

    A ``SimpleTokenizer`` (word-level) raises ``TokenizerError``: see the module docstring.
    """
    if isinstance(tokenizer, BPETokenizer):
        ranks = dict(tokenizer.mergeable_ranks)
        return Vocabulary(ranks, tokenizer.pattern, tokenizer.special_tokens)
    if isinstance(tokenizer, TiktokenTokenizer):
        encoding = tokenizer.encoding
        special_ids = set(tokenizer.special_tokens.values())
        ranks = {
            encoding.decode_single_token_bytes(id_): id_
            for id_ in range(encoding.max_token_value + 1)
            if id_ not in special_ids
        }
        # tiktoken has no public accessor for the pattern; _pat_str is what it pickles
        return Vocabulary(ranks, encoding._pat_str, tokenizer.special_tokens)
    raise TokenizerError(
        f"a {tokenizer.type_name} tokenizer cannot be written as a Hugging Face tokenizer: only "
        f"byte-level BPE vocabularies can (Hugging Face has no decoder for the word-level "
        f"tokenizer's spacing rule); train a BPE tokenizer (`scratchllm train-tokenizer`, the "
        f"default kind) and a model with it"
    )


def merges_of(ranks: Mapping[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merges, in rank order: for each token of two or more bytes, the two earlier tokens
    that ``bpe_merge`` over the lower ranks ends with (its canonical split).

    >>> ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"bc": 257, b"abc": 258}
    >>> merges_of(ranks)   # abc: a b c -> ab c (rank 256 beats 257) -> abc
    [(b'a', b'b'), (b'b', b'c'), (b'ab', b'c')]
    """
    by_rank = sorted(ranks, key=ranks.__getitem__)
    merges = []
    for token in by_rank:
        if len(token) < 2:
            continue
        parts = bpe_merge(_RanksBelow(ranks, ranks[token]), token)
        if len(parts) != 2:
            raise TokenizerError(
                f"token {ranks[token]} ({spell_bytes(token)!r}) is not the merge of two earlier "
                f"tokens, so it has no merge rule"
            )
        merges.append((by_rank[parts[0]], by_rank[parts[1]]))
    return merges


def tokenizer_json(vocabulary: Vocabulary) -> dict[str, Any]:
    """``tokenizer.json`` (the ``tokenizers`` library's format) for ``vocabulary``."""
    vocab = {spell_bytes(token): rank for token, rank in vocabulary.ranks.items()}
    merges = [f"{spell_bytes(a)} {spell_bytes(b)}" for a, b in merges_of(vocabulary.ranks)]
    added = [
        {
            "id": id_,
            "content": name,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,  # matched in the raw text, as our encode(allowed_special=...)
            "special": True,
        }
        for name, id_ in sorted(vocabulary.special_tokens.items(), key=lambda item: item[1])
    ]
    byte_level = {"add_prefix_space": False, "trim_offsets": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": vocabulary.pattern},
                    "behavior": "Isolated",  # every match is a chunk of its own
                    "invert": False,
                },
                {"type": "ByteLevel", **byte_level, "use_regex": False},  # bytes -> alphabet
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", **byte_level, "use_regex": False},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,  # byte-level: every text has a spelling, nothing is unknown
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": merges,  # "A B" strings: the byte alphabet has no plain spaces
        },
    }


def write_hf_tokenizer(
    tokenizer: Tokenizer, directory: str | os.PathLike[str], *, model_max_length: int
) -> list[Path]:
    """Write ``tokenizer`` into ``directory`` as Hugging Face's files (``HF_TOKENIZER_FILES``):
    ``AutoTokenizer.from_pretrained(directory)`` then gives our ids. Returns the paths."""
    vocabulary = vocabulary_of(tokenizer)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    document = tokenizer_json(vocabulary)
    vocab = dict(document["model"]["vocab"])
    vocab.update(vocabulary.special_tokens)  # GPT-2's vocab.json lists <|endoftext|> too
    merges = "\n".join([MERGES_HEADER, *document["model"]["merges"]]) + "\n"
    eot = "<|endoftext|>" if "<|endoftext|>" in vocabulary.special_tokens else None
    specials = {"bos_token": eot, "eos_token": eot, "unk_token": eot} if eot else {}
    config = {
        # the generic class: it takes tokenizer.json as written, pre-tokenizer included
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,  # decode must give back the text, " ." included
        **specials,
    }
    contents = {
        VOCAB_JSON: json.dumps(vocab, ensure_ascii=False),
        MERGES_TXT: merges,
        TOKENIZER_JSON: json.dumps(document, ensure_ascii=False, indent=1),
        TOKENIZER_CONFIG: json.dumps(config, indent=1),
        SPECIAL_TOKENS_MAP: json.dumps(specials, indent=1),
    }
    paths = []
    for name in HF_TOKENIZER_FILES:
        atomic_write_text(directory / name, contents[name] + "\n")
        paths.append(directory / name)
    return paths


# ---- Hugging Face's files -> data -> our tokenizer ---------------------------------------------


def vocabulary_from_merges(
    vocab: Mapping[str, int],
    merges: list[tuple[str, str]],
    *,
    pattern: str,
    special_tokens: Mapping[str, int],
    where: str,
) -> Vocabulary:
    """Check a Hugging Face BPE (spelled vocab, merges in priority order, special tokens) and
    return it as ranks. Refused, naming the entry: a token outside GPT-2's byte alphabet, a
    missing byte, ids that are not ``0..n-1`` then the special tokens, or a merge list that is
    not each token's canonical split in rank order (tiktoken's rule would then tokenize
    differently)."""
    ranks: dict[bytes, int] = {}
    for spelled, id_ in vocab.items():
        if spelled in special_tokens:
            if special_tokens[spelled] != id_:
                raise TokenizerError(f"{where}: {spelled!r} has two ids, {id_} and its added one")
            continue
        try:
            ranks[unspell_bytes(spelled)] = id_
        except KeyError:
            raise TokenizerError(
                f"{where}: the token {spelled!r} is not spelled in GPT-2's byte alphabet; only "
                f"byte-level BPE tokenizers (GPT-2's kind) can be read"
            ) from None
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise TokenizerError(
            f"{where}: the {len(ranks):,} ordinary tokens do not have the ids 0..{len(ranks) - 1}"
        )
    missing = [byte for byte in range(256) if bytes([byte]) not in ranks]
    if missing:
        raise TokenizerError(f"{where}: single bytes {missing[:8]} are not tokens")
    by_rank = sorted(ranks, key=ranks.__getitem__)
    made = [token for token in by_rank if len(token) > 1]
    if len(merges) != len(made):
        raise TokenizerError(
            f"{where}: {len(merges):,} merges for {len(made):,} tokens of two or more bytes; "
            f"each such token must come from exactly one merge"
        )
    for number, ((left, right), token) in enumerate(zip(merges, made, strict=True), start=1):
        parts = [ranks.get(_unspell_or_empty(left)), ranks.get(_unspell_or_empty(right))]
        if parts != bpe_merge(_RanksBelow(ranks, ranks[token]), token):
            raise TokenizerError(
                f"{where}: merge {number} ({left} {right}) is not how token {ranks[token]} "
                f"({spell_bytes(token)!r}) is made from earlier tokens; this BPE does not follow "
                f"the rank order scratchllm (and tiktoken) encode with"
            )
    for name, id_ in special_tokens.items():
        if id_ < len(ranks):
            raise TokenizerError(f"{where}: the special token {name!r} has the ordinary id {id_}")
    return Vocabulary(ranks, pattern, dict(special_tokens))


def _unspell_or_empty(spelled: str) -> bytes:
    try:
        return unspell_bytes(spelled)
    except KeyError:
        return b""


def vocabulary_from_tokenizer_json(document: Any, *, where: str) -> Vocabulary:
    """Read ``tokenizer.json``'s content (parsed): a byte-level BPE, or ``TokenizerError``."""
    try:
        model = document["model"]
        if model["type"] != "BPE":
            raise TokenizerError(f"{where}: a {model['type']} model, not a byte-level BPE")
        vocab, raw_merges = model["vocab"], model["merges"]
        pattern = _pattern_of(document.get("pre_tokenizer"), where=where)
        added = document.get("added_tokens") or []
        special_tokens = {token["content"]: token["id"] for token in added}
        # two spellings of a merge: "A B" (older files) or ["A", "B"] (tokenizers >= 0.20)
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in raw_merges]
    except (KeyError, TypeError, AttributeError) as error:
        raise TokenizerError(f"{where} is not a tokenizers BPE file ({error!r})") from None
    if document.get("normalizer") is not None:
        raise TokenizerError(
            f"{where}: it normalizes text before tokenizing ({document['normalizer'].get('type')})"
            f", which scratchllm's tokenizers do not"
        )
    if any(len(merge) != 2 for merge in merges):
        raise TokenizerError(f"{where}: a merge is not a pair of tokens")
    return vocabulary_from_merges(
        vocab, merges, pattern=pattern, special_tokens=special_tokens, where=where
    )


def _pattern_of(pre_tokenizer: Any, *, where: str) -> str:
    """Our split pattern for the two byte-level pre-tokenizers we read (module docstring)."""
    if isinstance(pre_tokenizer, dict) and pre_tokenizer.get("type") == "ByteLevel":
        if pre_tokenizer.get("add_prefix_space") or not pre_tokenizer.get("use_regex", True):
            raise TokenizerError(
                f"{where}: its ByteLevel pre-tokenizer adds a prefix space or splits nothing; "
                f"only GPT-2's own settings can be read"
            )
        return GPT2_PATTERN
    steps = pre_tokenizer.get("pretokenizers") if isinstance(pre_tokenizer, dict) else None
    if (
        pre_tokenizer.get("type") == "Sequence"
        and isinstance(steps, list)
        and len(steps) == 2
        and steps[0].get("type") == "Split"
        and steps[0].get("behavior") == "Isolated"
        and not steps[0].get("invert")
        and "Regex" in steps[0].get("pattern", {})
        and steps[1].get("type") == "ByteLevel"
        and not steps[1].get("add_prefix_space")
        and not steps[1].get("use_regex", True)
    ):
        return steps[0]["pattern"]["Regex"]
    raise TokenizerError(
        f"{where}: its pre-tokenizer ({json.dumps(pre_tokenizer)[:120]}) is neither GPT-2's "
        f"ByteLevel nor Split(regex) + ByteLevel; scratchllm cannot reproduce it"
    )


def read_hf_tokenizer(
    directory: str | os.PathLike[str], *, name: str = "hf-bpe"
) -> TiktokenTokenizer | None:
    """Our tokenizer from a Hugging Face folder's ``tokenizer.json`` (preferred: it names the
    special tokens and the pattern) or ``vocab.json`` + ``merges.txt``; None when the folder
    has neither. See ``load_hf_tokenizer_json`` and ``load_hf_vocab_and_merges``."""
    directory = Path(directory)
    if (directory / TOKENIZER_JSON).is_file():
        return load_hf_tokenizer_json(directory / TOKENIZER_JSON, name=name)
    if (directory / VOCAB_JSON).is_file() and (directory / MERGES_TXT).is_file():
        return load_hf_vocab_and_merges(directory / VOCAB_JSON, directory / MERGES_TXT, name=name)
    return None


def load_hf_tokenizer_json(
    path: str | os.PathLike[str], *, name: str = "hf-bpe"
) -> TiktokenTokenizer:
    """Our tokenizer from a ``tokenizer.json``. It runs in tiktoken (``name`` is its encoding's
    name); its fingerprint is that of the same vocabulary in ``BPETokenizer``."""
    vocabulary = vocabulary_from_tokenizer_json(_read_json(Path(path)), where=str(path))
    return _tiktoken_tokenizer(vocabulary, name=name, where=str(path))


def load_hf_vocab_and_merges(
    vocab_json: str | os.PathLike[str],
    merges_txt: str | os.PathLike[str],
    *,
    name: str = "hf-bpe",
) -> TiktokenTokenizer:
    """Our tokenizer from ``vocab.json`` + ``merges.txt``, with GPT-2's pattern; the entries
    of ``vocab.json`` that are neither single bytes nor made by a merge are the special tokens
    (GPT-2's ``<|endoftext|>``)."""
    vocab_json, merges_txt = Path(vocab_json), Path(merges_txt)
    vocab = _read_json(vocab_json)
    if not isinstance(vocab, dict):
        raise TokenizerError(f"{vocab_json} is not a JSON object of token -> id")
    try:
        lines = merges_txt.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise TokenizerError(f"cannot read {merges_txt}: {error}") from None
    # the first line is a "#version: 0.2" header ("# #" further down is a real merge)
    start = 1 if lines and lines[0].startswith("#version") else 0
    merges = [tuple(line.split(" ")) for line in lines[start:] if line]
    if any(len(merge) != 2 for merge in merges):
        raise TokenizerError(f"{merges_txt}: a line is not a merge 'A B'")
    made = {left + right for left, right in merges}
    special_tokens = {
        spelled: id_
        for spelled, id_ in vocab.items()
        if spelled not in made and len(_unspell_or_empty(spelled)) != 1
    }
    where = f"{vocab_json} + {merges_txt.name}"
    vocabulary = vocabulary_from_merges(
        vocab, merges, pattern=GPT2_PATTERN, special_tokens=special_tokens, where=where
    )
    return _tiktoken_tokenizer(vocabulary, name=name, where=where)


def _tiktoken_tokenizer(vocabulary: Vocabulary, *, name: str, where: str) -> TiktokenTokenizer:
    try:
        encoding = tiktoken.Encoding(
            name,
            pat_str=vocabulary.pattern,
            mergeable_ranks=dict(vocabulary.ranks),
            special_tokens=dict(vocabulary.special_tokens),
        )
    except (ValueError, TypeError) as error:
        raise TokenizerError(f"the tokenizer in {where} does not load: {error}") from None
    return TiktokenTokenizer(encoding)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenizerError(f"cannot read {path}: {error}") from None
