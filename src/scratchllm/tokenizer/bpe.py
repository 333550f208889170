"""Byte-level byte-pair encoding (BPE): train, encode, decode, save, load.

A ``BPETokenizer`` is the same object tiktoken calls an ``Encoding``:

- **mergeable ranks**, a map ``token bytes -> rank``; every single byte is a token, so any text
  can be encoded, and a token's rank is also its id;
- a **pre-tokenisation pattern** (patterns.py) that cuts text into chunks before merging;
- **special tokens** (``"<|endoftext|>" -> id``) with ids after the ranks; they never come out
  of ordinary text, only out of ``encode(..., allowed_special=...)``.

Encoding a chunk starts from its UTF-8 bytes and repeatedly merges the adjacent pair whose
concatenation has the lowest rank (the leftmost one on a tie) until no adjacent pair is a token.
That is tiktoken's rule, so loading our ranks into ``tiktoken.Encoding`` gives the same ids, and
loading GPT-2's ranks into a ``BPETokenizer`` gives GPT-2's ids (tests hold both).

Training (``BPETokenizer.train``) learns the ranks from text. It gives exactly the merges of the
textbook loop in bpe_reference.py, but instead of recounting every pair of the corpus after each
merge it

1. pre-tokenises once and keeps each distinct chunk once, with its frequency;
2. keeps the count of every adjacent pair and, per pair, the chunks it occurs in;
3. after a merge, revisits only the chunks holding the merged pair and adjusts the counts of
   the pairs around each merge site;
4. finds the next best pair with a heap whose outdated entries are skipped when popped.

**Tie-breaking** (both trainers): the most frequent pair wins; among equally frequent pairs, the
lowest ``(left id, right id)``. When the merged bytes already form a token (two different pairs
can spell the same bytes), the merge reuses that token's id and adds nothing to the vocabulary.

**The saved form** (``tokenizer.json``, format version 1) lists the tokens in rank order, each
spelled in GPT-2's printable byte alphabet (``Ġ`` is a space, ``Ċ`` a newline), with a space
between the two tokens that merge into it, as in GPT-2's ``vocab.bpe``: ``"Ġ t"`` is rank 256 of
GPT-2 (" t"), ``"Ġt he"`` is " the".
"""

from __future__ import annotations

import heapq
import itertools
import operator
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tqdm.auto import tqdm

from scratchllm.errors import TokenizerError
from scratchllm.tokenizer.base import (
    ENDOFTEXT,
    Tokenizer,
    ranks_fingerprint_source,
    special_token_regex,
)
from scratchllm.tokenizer.patterns import (
    Splitter,
    compile_pattern,
    resolve_pattern,
    spell_bytes,
    unspell_bytes,
)

#: a rank larger than any real one: "this pair is not a token"
_NOT_A_TOKEN = sys.maxsize
_SINGLE_BYTES = [bytes([byte]) for byte in range(256)]

#: encode_ordinary remembers each chunk's ids; the memory is emptied when it would grow past this
#: many chunks (about 50 MB), so it stays bounded however much text goes through one tokenizer.
#: Python's whole standard library has about 51,000 distinct GPT-2 chunks.
CHUNK_CACHE_LIMIT = 1 << 18

#: a merge as (left id, right id, id of the merged token)
Merge = tuple[int, int, int]

_TOKENS_HELP = (
    "tokens[rank] spelled in GPT-2's byte-to-unicode alphabet; 'A B' is the merge of the "
    "earlier tokens A and B"
)


def bpe_merge(ranks: Mapping[bytes, int], piece: bytes) -> list[int]:
    """Encode one chunk's bytes: merge the lowest-ranked adjacent pair until none is a token.

    >>> ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"bc": 257, b"abc": 258}
    >>> bpe_merge(ranks, b"abcd")   # a b c d -> ab c d (rank 256 beats 257) -> abc d
    [258, 100]
    >>> bpe_merge(_RanksBelow(ranks, 258), b"abc")   # how was "abc" made? from "ab" + "c"
    [256, 99]
    """
    get = ranks.get
    parts = list(map(_SINGLE_BYTES.__getitem__, piece))
    # pair_ranks[i] is the rank of parts[i] + parts[i + 1]; min() and index() scan it in C, so
    # even long chunks (runs of spaces) stay fast.
    pair_ranks = list(map(get, map(operator.add, parts, parts[1:]), itertools.repeat(_NOT_A_TOKEN)))
    while pair_ranks:
        best = min(pair_ranks)
        if best == _NOT_A_TOKEN:
            break
        i = pair_ranks.index(best)  # the leftmost of equal ranks, as tiktoken does
        parts[i] += parts.pop(i + 1)
        del pair_ranks[i]
        if i:
            pair_ranks[i - 1] = get(parts[i - 1] + parts[i], _NOT_A_TOKEN)
        if i < len(pair_ranks):
            pair_ranks[i] = get(parts[i] + parts[i + 1], _NOT_A_TOKEN)
    return [ranks[part] for part in parts]


class _RanksBelow:
    """A view of ``ranks`` without the tokens of rank ``limit`` and above: encoding a token's
    bytes with it shows which two earlier tokens merge into that token."""

    def __init__(self, ranks: Mapping[bytes, int], limit: int) -> None:
        self._ranks, self._limit = ranks, limit

    def get(self, token: bytes, default: int) -> int:
        rank = self._ranks.get(token, default)
        return rank if rank < self._limit else default

    def __getitem__(self, token: bytes) -> int:
        return self._ranks[token]


# ---- training -------------------------------------------------------------------------------


def iter_documents(text_or_corpus: Any) -> Iterator[str]:
    """The documents of a string (one document), a corpus with ``.documents()``, or an iterable
    of strings."""
    if isinstance(text_or_corpus, str):
        yield text_or_corpus
        return
    if hasattr(text_or_corpus, "documents"):
        for document in text_or_corpus.documents():
            yield document.text
        return
    try:
        documents = iter(text_or_corpus)
    except TypeError:
        raise TokenizerError(
            f"cannot train on a {type(text_or_corpus).__name__}: pass a string, an iterable of "
            f"strings, or a corpus (scratchllm.corpora.load_corpus)"
        ) from None
    for index, document in enumerate(documents):
        if not isinstance(document, str):
            raise TokenizerError(
                f"training document {index} is a {type(document).__name__}, not a string"
            )
        yield document


def count_chunks(
    documents: Iterable[str],
    pattern: Splitter,
    special_tokens: Iterable[str] = (),
    *,
    show_progress: bool = False,
) -> Counter[bytes]:
    """Count the pre-tokenised chunks of ``documents`` (as UTF-8 bytes).

    Chunks never span two documents, and special-token text is cut out first so that no merge
    is ever learned from it.

    >>> from scratchllm.tokenizer.patterns import compile_pattern
    >>> count_chunks(["the cat<|endoftext|>the"], compile_pattern("gpt2"), ["<|endoftext|>"])
    Counter({b'the': 2, b' cat': 1})
    """
    specials = frozenset(special_tokens)
    splitter = special_token_regex(specials) if specials else None
    counts: Counter[str] = Counter()
    for document in tqdm(documents, desc="pre-tokenising", unit="doc", disable=not show_progress):
        for piece in splitter.split(document) if splitter else (document,):
            counts.update(pattern.findall(piece))  # Counter.update on a list runs in C
    return Counter({chunk.encode("utf-8"): count for chunk, count in counts.items()})


def learn_bpe(
    chunk_counts: Mapping[bytes, int], num_tokens: int, *, show_progress: bool = False
) -> tuple[list[bytes], list[Merge]]:
    """Learn merges until there are ``num_tokens`` tokens (256 bytes + merges) or no pairs left.

    Returns the tokens in rank order (``tokens[id]`` is the bytes of ``id``; ids 0-255 are the
    bytes themselves) and the merges in the order they were learned.

    >>> tokens, merges = learn_bpe({b"aaab": 2, b"ab": 1}, 258)
    >>> merges   # (a, a) occurs 4 times, (a, b) 3: aa -> 256; then (a, b) 3 beats (aa, a) 2
    [(97, 97, 256), (97, 98, 257)]
    >>> tokens[256:]
    [b'aa', b'ab']
    """
    tokens = [bytes([byte]) for byte in range(256)]
    token_ids = {token: index for index, token in enumerate(tokens)}
    words = [list(chunk) for chunk in chunk_counts]
    frequencies = list(chunk_counts.values())

    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    # pair -> the words that hold it (or held it once: stale entries are skipped when met)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for index, word in enumerate(words):
        frequency = frequencies[index]
        for pair in zip(word, word[1:], strict=False):
            pair_counts[pair] += frequency
            where[pair].add(index)
    # max-heap through negated counts; ties go to the lowest (left, right) pair
    heap = [(-count, left, right) for (left, right), count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[Merge] = []
    progress = tqdm(
        total=max(num_tokens - len(tokens), 0), desc="merging", disable=not show_progress
    )
    while len(tokens) < num_tokens:
        best = _pop_best_pair(heap, pair_counts)
        if best is None:
            break  # every chunk is a single token: nothing left to merge
        left, right = best
        merged = tokens[left] + tokens[right]
        new_id = token_ids.get(merged)
        if new_id is None:
            new_id = len(tokens)
            tokens.append(merged)
            token_ids[merged] = new_id
            progress.update()
        merges.append((left, right, new_id))

        changes: dict[tuple[int, int], int] = defaultdict(int)
        for index in where.pop(best):
            new_word = _merge_word(words[index], best, new_id, frequencies[index], changes)
            if new_word is not None:
                words[index] = new_word
                for pair in zip(new_word, new_word[1:], strict=False):
                    if new_id in pair:
                        where[pair].add(index)
        for pair, change in changes.items():
            count = pair_counts[pair] + change
            assert count >= 0, f"pair {pair} count went negative"
            if count:
                pair_counts[pair] = count
            else:
                del pair_counts[pair]
            if change > 0:  # raised counts need a fresh heap entry; lowered ones are fixed lazily
                heapq.heappush(heap, (-count, *pair))
    progress.close()
    return tokens, merges


def _pop_best_pair(
    heap: list[tuple[int, int, int]], pair_counts: Mapping[tuple[int, int], int]
) -> tuple[int, int] | None:
    """Pop the most frequent pair, skipping heap entries whose count has changed since."""
    while heap:
        negative_count, left, right = heapq.heappop(heap)
        count = pair_counts.get((left, right), 0)
        if count == -negative_count:
            return left, right
        if count > 0:  # the count went down: put the pair back with its true count
            heapq.heappush(heap, (-count, left, right))
    return None


def _merge_word(
    word: list[int],
    pair: tuple[int, int],
    new_id: int,
    frequency: int,
    changes: dict[tuple[int, int], int],
) -> list[int] | None:
    """Replace each non-overlapping ``pair`` in ``word`` by ``new_id``, left to right, and add to
    ``changes`` the resulting change of every pair count. None if ``pair`` is not in ``word``.

    >>> from collections import defaultdict
    >>> changes = defaultdict(int)
    >>> _merge_word([1, 2, 1, 2, 3], (1, 2), 9, 1, changes)
    [9, 9, 3]
    >>> sorted((pair, n) for pair, n in changes.items() if n)
    [((1, 2), -2), ((2, 1), -1), ((2, 3), -1), ((9, 3), 1), ((9, 9), 1)]
    """
    left, right = pair
    merged: list[int] = []
    start = 0
    last = len(word) - 1
    found = False
    while True:
        try:
            position = word.index(left, start)
        except ValueError:
            break
        if position >= last or word[position + 1] != right:
            merged += word[start : position + 1]
            start = position + 1
            continue
        found = True
        merged += word[start:position]
        changes[pair] -= frequency
        # the left neighbour as it is now (it may be new_id from the previous site) loses its
        # pair with `left` and gains one with new_id; the old right neighbour likewise.
        if merged:
            neighbour = merged[-1]
            changes[neighbour, left] -= frequency
            changes[neighbour, new_id] += frequency
        if position + 2 <= last:
            neighbour = word[position + 2]
            changes[right, neighbour] -= frequency
            changes[new_id, neighbour] += frequency
        merged.append(new_id)
        start = position + 2
    if not found:
        return None
    merged += word[start:]
    return merged


# ---- the tokenizer --------------------------------------------------------------------------


class BPETokenizer(Tokenizer):
    """Byte-level BPE with tiktoken's encoding rule; see the module docstring.

    >>> tok = BPETokenizer.train("low lower lowest " * 50, 260)
    >>> [tok.decode([token]) for token in tok.encode("lowly")]
    ['low', 'l', 'y']
    """

    type_name = "bpe"
    format_version = 1

    def __init__(
        self,
        mergeable_ranks: Mapping[bytes, int],
        *,
        pattern: str = "gpt2",
        special_tokens: Mapping[str, int] | None = None,
    ) -> None:
        self._ranks = dict(mergeable_ranks)
        self._specials = dict(special_tokens or {})
        self.pattern = resolve_pattern(pattern)
        self._pattern = compile_pattern(pattern)  # compiled once; encode never recompiles
        self._check_vocabulary()
        self._decoder: dict[int, bytes] = {rank: token for token, rank in self._ranks.items()}
        self._decoder.update({id_: name.encode("utf-8") for name, id_ in self._specials.items()})
        self._vocab_size = max(self._decoder) + 1
        self._chunk_cache: dict[str, tuple[int, ...]] = {}
        self._spelled_tokens: list[str] | None = None  # the saved form's tokens, made on demand

    def _check_vocabulary(self) -> None:
        ranks, specials = self._ranks, self._specials
        if sorted(ranks.values()) != list(range(len(ranks))):
            raise TokenizerError(
                f"the {len(ranks)} mergeable ranks must be the ids 0..{len(ranks) - 1}, each once"
            )
        missing = [byte for byte in range(256) if bytes([byte]) not in ranks]
        if missing:
            raise TokenizerError(
                f"a byte-level vocabulary needs all 256 single bytes; missing {missing[:8]}"
            )
        for name, id_ in specials.items():
            if not name or not isinstance(id_, int) or id_ < len(ranks):
                raise TokenizerError(
                    f"special token {name!r} has id {id_!r}; special ids must come after the "
                    f"{len(ranks)} ranks"
                )
        if len(set(specials.values())) != len(specials):
            raise TokenizerError(f"special tokens share ids: {specials}")

    # ---- training ----------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        text_or_corpus: str | Iterable[str] | Any,
        vocab_size: int,
        *,
        special_tokens: Iterable[str] = (ENDOFTEXT,),
        pattern: str = "gpt2",
        show_progress: bool = False,
    ) -> BPETokenizer:
        """Learn a tokenizer of ``vocab_size`` ids (256 bytes + merges + special tokens).

        ``text_or_corpus``: a string, an iterable of document strings, or a corpus (anything
        with ``.documents()`` yielding objects with ``.text``). ``pattern``: "gpt2", "gpt4" or a
        regex. The result is smaller than ``vocab_size`` only if the text runs out of pairs.
        """
        specials = list(dict.fromkeys(special_tokens))
        if not all(isinstance(name, str) and name for name in specials):
            raise TokenizerError(f"special tokens must be non-empty strings, got {specials}")
        minimum = 256 + len(specials)
        if not isinstance(vocab_size, int) or vocab_size < minimum:
            raise TokenizerError(
                f"vocab_size {vocab_size!r} is too small: it counts the 256 byte tokens and the "
                f"{len(specials)} special tokens, so it must be at least {minimum}"
            )
        compiled = compile_pattern(pattern)
        counts = count_chunks(
            iter_documents(text_or_corpus), compiled, specials, show_progress=show_progress
        )
        tokens, _ = learn_bpe(counts, vocab_size - len(specials), show_progress=show_progress)
        ranks = {token: rank for rank, token in enumerate(tokens)}
        special_ids = {name: len(tokens) + index for index, name in enumerate(specials)}
        return cls(ranks, pattern=pattern, special_tokens=special_ids)

    # ---- the Tokenizer interface ---------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._specials)

    @property
    def mergeable_ranks(self) -> Mapping[bytes, int]:
        """Token bytes -> rank (read-only), as tiktoken's ``Encoding`` takes them."""
        return MappingProxyType(self._ranks)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text``; special-token text is encoded as ordinary text."""
        chunks = self._pattern.findall(text)
        cache = self._chunk_cache
        # Most chunks repeat, so each distinct one is encoded once and remembered; set
        # difference, map and chain all run in C, leaving Python work only for new chunks.
        missing = set(chunks).difference(cache)
        if missing:
            if len(cache) + len(missing) > CHUNK_CACHE_LIMIT:
                cache.clear()
                missing = set(chunks)
            try:
                for chunk in missing:
                    cache[chunk] = self._encode_chunk(chunk)
            except UnicodeEncodeError:
                # lone surrogates cannot be UTF-8: replace them with U+FFFD, as tiktoken does
                return self.encode_ordinary(
                    text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
                )
        try:
            return list(itertools.chain.from_iterable(map(cache.__getitem__, chunks)))
        except KeyError:  # another thread emptied the cache meanwhile: encode without it
            return [id_ for chunk in chunks for id_ in self._encode_chunk(chunk)]

    def _encode_chunk(self, chunk: str) -> tuple[int, ...]:
        piece = chunk.encode("utf-8")
        rank = self._ranks.get(piece)
        if rank is not None:  # most chunks are one whole token (tiktoken takes this path too)
            return (rank,)
        return tuple(bpe_merge(self._ranks, piece))

    def token_bytes(self, id_: int) -> bytes:
        """The bytes of one token (a special token's bytes are its UTF-8 text)."""
        try:
            return self._decoder[id_]
        except (KeyError, TypeError):
            raise TokenizerError(
                f"token id {id_!r} is not in this tokenizer (ids are 0..{self._vocab_size - 1})"
            ) from None

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids`` joined (they may end inside a multi-byte character)."""
        ids = list(ids)
        try:
            return b"".join(map(self._decoder.__getitem__, ids))
        except (KeyError, TypeError):
            for id_ in ids:
                self.token_bytes(id_)  # raises, naming the first unknown id
            raise

    def decode(self, ids: Iterable[int], *, errors: str = "replace") -> str:
        """Decode ``ids`` to text; invalid UTF-8 (a cut multi-byte character) follows
        ``errors`` ("replace" gives U+FFFD, as tiktoken does; "strict" raises)."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    # ---- saving --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        if self._spelled_tokens is None:  # spelling 50k tokens takes a second: do it once
            by_rank = sorted(self._ranks, key=self._ranks.__getitem__)
            self._spelled_tokens = [self._spell_token(token) for token in by_rank]
        return {
            "pattern": self.pattern,
            "special_tokens": dict(sorted(self._specials.items(), key=lambda item: item[1])),
            "tokens_format": _TOKENS_HELP,
            "tokens": list(self._spelled_tokens),
        }

    def fingerprint_source(self) -> bytes:
        return ranks_fingerprint_source(self.pattern, self._ranks, self._specials)

    def _spell_token(self, token: bytes) -> str:
        """``token`` in GPT-2's alphabet, as "A B" when it is the merge of two earlier tokens."""
        if len(token) > 1:
            parts = bpe_merge(_RanksBelow(self._ranks, self._ranks[token]), token)
            if len(parts) == 2:
                return " ".join(spell_bytes(self._decoder[part]) for part in parts)
        return spell_bytes(token)

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path | None = None) -> BPETokenizer:
        where = f" in {directory}" if directory is not None else ""
        try:
            pattern, specials, entries = data["pattern"], data["special_tokens"], data["tokens"]
        except (KeyError, TypeError) as error:
            raise TokenizerError(f"the saved BPE tokenizer{where} lacks {error}") from None
        if not isinstance(entries, list) or not isinstance(specials, dict):
            raise TokenizerError(f"the saved BPE tokenizer{where} is malformed")
        ranks: dict[bytes, int] = {}
        for rank, entry in enumerate(entries):
            try:
                parts = [unspell_bytes(part) for part in entry.split(" ")]
            except (KeyError, AttributeError):
                raise TokenizerError(
                    f"token {rank} ({entry!r}){where} is not spelled in GPT-2's byte alphabet"
                ) from None
            if len(parts) > 1 and not all(part in ranks for part in parts):
                raise TokenizerError(
                    f"token {rank} ({entry!r}){where} merges a token that does not come before it"
                )
            token = b"".join(parts)
            if not token or token in ranks:
                raise TokenizerError(f"token {rank} ({entry!r}){where} is empty or repeated")
            ranks[token] = rank
        return cls(ranks, pattern=pattern, special_tokens=specials)
