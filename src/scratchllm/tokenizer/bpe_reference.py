"""The textbook BPE training loop: the teaching reference that bpe.py is tested against.

This is byte-pair encoding as it is usually first explained (and as minbpe writes it): turn
every chunk of the text into its list of byte values, then, once per new token,

1. count every adjacent pair in the whole corpus (``get_stats``),
2. take the most frequent pair,
3. replace it everywhere by a new id (``merge``).

Each merge rescans the whole corpus, so training costs (number of merges) x (corpus size):
fine for a story, hopeless for a real corpus. ``BPETokenizer.train`` (bpe.py) learns exactly
the same merges, the same ranks and ids, far faster, by counting each distinct chunk once and
updating the pair counts only where a merge changed something. Both follow the same rules:

- text is cut into chunks by the pre-tokenisation pattern (merges never cross chunks), per
  document, after cutting out special tokens such as ``<|endoftext|>``;
- the most frequent pair wins; ties go to the lowest ``(left id, right id)``;
- when the merged bytes are already a token, the merge reuses that token's id.

A worked example, "hug hugs pug" with GPT-2's pattern: the chunks are "hug", " hugs", " pug",
the pairs (u, g) x3, (h, u) x2 and (space, h), (g, s), (space, p), (p, u) x1 each; so the first
merge is u + g -> 256, which leaves (h, 256) x2 as the best pair, merged into 257 ("hug"):

>>> tokens, merges = train_reference("hug hugs pug", 256 + 2 + 1)
>>> merges
[(117, 103, 256), (104, 256, 257)]
>>> tokens[256:]
[b'ug', b'hug']
"""

from __future__ import annotations

from collections.abc import Iterable

import regex

from scratchllm.tokenizer.base import ENDOFTEXT
from scratchllm.tokenizer.patterns import compile_pattern

#: a merge as (left id, right id, id of the merged token)
Merge = tuple[int, int, int]


def get_stats(ids: list[int], counts: dict[tuple[int, int], int] | None = None) -> dict:
    """Count the adjacent pairs of ``ids`` (adding to ``counts`` if given).

    >>> get_stats([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:], strict=False):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, left to right, by ``new_id``.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]
    >>> merge([7, 7, 7], (7, 7), 8)   # occurrences do not overlap: the leftmost goes first
    [8, 7]
    """
    merged = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def split_into_chunks(
    documents: Iterable[str], pattern: str = "gpt2", special_tokens: Iterable[str] = ()
) -> list[list[int]]:
    """Every chunk of every document, as a list of byte values.

    >>> split_into_chunks(["hi there<|endoftext|>!"], "gpt2", ["<|endoftext|>"])
    [[104, 105], [32, 116, 104, 101, 114, 101], [33]]
    """
    compiled = compile_pattern(pattern)
    specials = sorted(special_tokens, key=len, reverse=True)
    separator = regex.compile("|".join(map(regex.escape, specials))) if specials else None
    chunks = []
    for document in documents:
        for piece in separator.split(document) if separator else [document]:
            chunks.extend(list(chunk.encode("utf-8")) for chunk in compiled.findall(piece))
    return chunks


def train_reference(
    text: str | Iterable[str],
    vocab_size: int,
    *,
    special_tokens: Iterable[str] = (ENDOFTEXT,),
    pattern: str = "gpt2",
) -> tuple[list[bytes], list[Merge]]:
    """Learn merges the slow, obvious way; ``vocab_size`` counts bytes, merges and specials.

    Returns the tokens in rank order (``tokens[id]`` is the bytes of token ``id``) and the
    merges in the order learned, just like ``scratchllm.tokenizer.bpe.learn_bpe``.
    """
    special_tokens = list(dict.fromkeys(special_tokens))
    documents = [text] if isinstance(text, str) else list(text)
    chunks = split_into_chunks(documents, pattern, special_tokens)
    tokens = [bytes([byte]) for byte in range(256)]
    merges: list[Merge] = []
    while len(tokens) < vocab_size - len(special_tokens):
        stats: dict[tuple[int, int], int] = {}
        for chunk in chunks:
            get_stats(chunk, stats)
        if not stats:
            break  # every chunk is a single token
        # the most frequent pair; among equals, the lowest (left, right)
        pair = max(stats, key=lambda p: (stats[p], -p[0], -p[1]))
        merged_bytes = tokens[pair[0]] + tokens[pair[1]]
        if merged_bytes in tokens:
            new_id = tokens.index(merged_bytes)
        else:
            new_id = len(tokens)
            tokens.append(merged_bytes)
        merges.append((pair[0], pair[1], new_id))
        chunks = [merge(chunk, pair, new_id) for chunk in chunks]
    return tokens, merges
