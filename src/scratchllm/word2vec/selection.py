"""Which points go on an embedding map: chosen words, the most frequent words, or GPT tokens.

For **word vectors** the map shows the words given (in groups, one colour per group) or the
``top`` most frequent (vectors from training are stored most frequent first; a word2vec text
file is conventionally in the same order).

For a trained GPT's **token-embedding table** (``model.wte.weight``, one row per token id)
the points are tokens, labelled with their decoded text (a space shown as ``·``). Without
chosen words it takes the ``top`` tokens most frequent in ``texts`` when given, else the first
``top`` ids whose text is a word of at least three letters (a BPE's early merges are its most
frequent pieces); either way only tokens containing a letter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from scratchllm.config import MAP_POINTS
from scratchllm.errors import ConfigError, UnknownWordError
from scratchllm.tokenizer.base import Tokenizer
from scratchllm.word2vec.vectors import WordVectors

DEFAULT_TOP = MAP_POINTS  # enough to show structure, few enough to read every label
MIN_WORD_LETTERS = 3  # for "ids that decode to a word" when no texts rank the tokens


@dataclass(frozen=True)
class MapPoints:
    """Labelled vectors for a map, with the group (colour) of each."""

    labels: list[str]
    vectors: torch.Tensor  # (n, D)
    groups: list[int]  # 0 for everything when no groups were given


def parse_word_groups(values: Sequence[str]) -> list[list[str]]:
    """``["list,tuple dict", "for,while"]`` -> ``[["list", "tuple", "dict"], ["for", "while"]]``.

    >>> parse_word_groups(["list,tuple dict", "for, while"])
    [['list', 'tuple', 'dict'], ['for', 'while']]
    """
    groups = [[word for word in value.replace(",", " ").split()] for value in values]
    return [group for group in groups if group]


def word_points(
    vectors: WordVectors, *, groups: Sequence[Sequence[str]] = (), top: int = DEFAULT_TOP
) -> MapPoints:
    """The points of ``groups`` of words (unknown ones are an error), else the ``top`` first."""
    if groups:
        words = [word for group in groups for word in group]
        group_of = [number for number, group in enumerate(groups) for _ in group]
    else:
        if top < 2:
            raise ConfigError(f"a map needs at least 2 words, got top={top}")
        words = vectors.words[:top]
        group_of = [0] * len(words)
    _check_unique(words)
    rows = [vectors.index(word) for word in words]  # UnknownWordError names a missing one
    return MapPoints(list(words), vectors.vectors[rows], group_of)


def token_label(text: str) -> str:
    """A token's text made visible: escapes for newlines and tabs, ``·`` for spaces.

    >>> token_label(" the"), token_label("\\n")
    ('·the', '\\\\n')
    """
    return repr(text)[1:-1].replace(" ", "\u00b7")


def token_for_word(tokenizer: Tokenizer, word: str) -> int:
    """The single token id for ``word``, trying it as written and with a leading space."""
    pieces = {}
    for text in (word, " " + word):
        ids = tokenizer.encode_ordinary(text)
        if len(ids) == 1:
            return ids[0]
        pieces[text] = ids
    split = [tokenizer.decode([token_id]) for token_id in pieces[word]]
    raise UnknownWordError(
        f"{word!r} is not a single token of this checkpoint's tokenizer (it splits into "
        f"{split}); choose words that are one token each, or leave out --words"
    )


def token_points(
    embeddings: torch.Tensor,
    tokenizer: Tokenizer,
    *,
    groups: Sequence[Sequence[str]] = (),
    texts: Iterable[str] | None = None,
    top: int = DEFAULT_TOP,
) -> MapPoints:
    """Points from a token-embedding table ``embeddings`` (vocab, C) (see the module docstring)."""
    if groups:
        ids = [token_for_word(tokenizer, word) for group in groups for word in group]
        group_of = [number for number, group in enumerate(groups) for _ in group]
    else:
        if top < 2:
            raise ConfigError(f"a map needs at least 2 tokens, got top={top}")
        ids = _frequent_tokens(tokenizer, texts, top) if texts is not None else []
        if not ids:
            ids = _word_tokens(tokenizer, top, limit=embeddings.shape[0])
        group_of = [0] * len(ids)
    if len(ids) < 2:
        raise ConfigError("found fewer than 2 tokens to draw; pass --words")
    labels = [token_label(tokenizer.decode([token_id])) for token_id in ids]
    _check_unique(labels)
    return MapPoints(labels, embeddings.detach().float().cpu()[ids], group_of)


def _frequent_tokens(tokenizer: Tokenizer, texts: Iterable[str], top: int) -> list[int]:
    counts: Counter[int] = Counter()
    for text in texts:
        counts.update(tokenizer.encode_ordinary(text))
    chosen = []
    for token_id, _ in counts.most_common():
        text = tokenizer.decode([token_id])
        if any(character.isalpha() for character in text) and "\ufffd" not in text:
            chosen.append(token_id)
            if len(chosen) == top:
                break
    return chosen


def _word_tokens(tokenizer: Tokenizer, top: int, *, limit: int) -> list[int]:
    chosen = []
    for token_id in range(min(tokenizer.vocab_size, limit)):
        text = tokenizer.decode([token_id]).strip()
        if len(text) >= MIN_WORD_LETTERS and text.isalpha():
            chosen.append(token_id)
            if len(chosen) == top:
                break
    return chosen


def _check_unique(labels: Sequence[str]) -> None:
    seen = set()
    for label in labels:
        if label in seen:
            raise ConfigError(f"{label!r} is listed twice; give each word once")
        seen.add(label)
