"""How GPT-style byte-level BPE sees text before any merge: split patterns and a byte alphabet.

Two conventions that every GPT-2-style tokenizer shares, and that both our ``BPETokenizer``
(bpe.py) and the GPT-2 file readers (gpt2.py) rely on:

1. **Pre-tokenisation.** Before byte-pair merging, text is cut into chunks by a regular
   expression, and merges never cross a chunk boundary (so " dog." can never become one token).
   ``GPT2_PATTERN`` is GPT-2's (tiktoken's ``r50k_base``); ``GPT4_PATTERN`` is ``cl100k_base``'s,
   which also splits digits into groups of at most three and is case-insensitive for
   contractions. They are written for the third-party ``regex`` module (``\\p{L}`` is "any
   letter"), which is what tiktoken's patterns assume.

   >>> compile_pattern("gpt2").findall("Hello world's  123!!")
   ['Hello', ' world', "'s", ' ', ' 123', '!!']

   Speed: cutting text is about half the cost of encoding in pure Python, and the standard
   library's ``re`` runs GPT-2's pattern about 1.5x faster than ``regex``, but it has no
   ``\\p{L}``. So for GPT-2's pattern ``compile_pattern`` returns a ``Gpt2Splitter``, which
   uses the same expression spelled for ``re``, each property replaced by the explicit
   character ranges that ``regex`` itself assigns to it (``gpt2_pattern_for_re``), whenever
   the text has no character above U+FFFF; the tests check both cut every code point alike.
   Other patterns use ``regex``.

2. **A printable spelling of bytes.** GPT-2's ``encoder.json`` and ``vocab.bpe`` are text files,
   yet tokens are arbitrary bytes. ``bytes_to_unicode()`` maps every byte to one printable
   character: printable Latin-1 bytes map to themselves, the rest (space, control characters...)
   to characters from U+0100 upwards, so a space shows as ``Ġ`` and a newline as ``Ċ``.

   >>> spell_bytes(b" hello\\n")
   'ĠhelloĊ'
   >>> unspell_bytes("ĠhelloĊ")
   b' hello\\n'
"""

from __future__ import annotations

import array
import re
import sys
from functools import lru_cache

import regex

from scratchllm.errors import TokenizerError

#: GPT-2's split pattern as tiktoken writes it (r50k_base / gpt2). OpenAI's original was
#: ``'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+``; this form
#: gives the same chunks and runs faster (possessive quantifiers never backtrack).
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)

#: GPT-4's split pattern (tiktoken's cl100k_base).
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

#: names accepted wherever a pattern is expected; any other string is a custom regex
PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}


def resolve_pattern(pattern: str) -> str:
    """The regex source for a pattern name ("gpt2", "gpt4"), or ``pattern`` itself.

    >>> resolve_pattern("gpt2") == GPT2_PATTERN
    True
    >>> resolve_pattern(r"\\w+|\\s+")
    '\\\\w+|\\\\s+'
    """
    if not isinstance(pattern, str) or not pattern:
        raise TokenizerError(
            f"the pre-tokenisation pattern must be 'gpt2', 'gpt4' or a non-empty regex, "
            f"got {pattern!r}"
        )
    return PATTERNS.get(pattern, pattern)


def compile_pattern(pattern: str) -> Splitter:
    """Compile a pattern name or regex source; a bad regex raises ``TokenizerError``.

    GPT-2's pattern gives a ``Gpt2Splitter`` (same chunks, faster); others a ``regex`` pattern.
    Both have ``findall(text)``.
    """
    source = resolve_pattern(pattern)
    if source == GPT2_PATTERN:
        return Gpt2Splitter()
    try:
        return regex.compile(source)
    except regex.error as error:
        raise TokenizerError(
            f"the pre-tokenisation pattern {source!r} is not a valid regex ({error}); "
            f"use 'gpt2', 'gpt4' or fix the expression"
        ) from None


CodeRanges = list[tuple[int, int]]


class Gpt2Splitter:
    """GPT-2's pattern, compiled for ``re`` (fast) and for ``regex`` (complete).

    ``findall`` gives exactly ``regex.compile(GPT2_PATTERN).findall``. On text without
    characters above U+FFFF (nearly all text but emoji and a few rare scripts) it runs
    ``gpt2_pattern_for_re``, about 1.5x faster; otherwise the original with ``regex``.
    """

    pattern = GPT2_PATTERN

    def __init__(self) -> None:
        self._re = re.compile(gpt2_pattern_for_re())
        self._regex = regex.compile(GPT2_PATTERN)

    def findall(self, text: str) -> list[str]:
        """The chunks of ``text``, in order."""
        if text.isascii() or not _has_astral(text):  # isascii is O(1) in CPython
            return self._re.findall(text)
        return self._regex.findall(text)


def _has_astral(text: str) -> bool:
    """Whether ``text`` holds a character above U+FFFF (UTF-16 spends two units on those).

    >>> _has_astral("café"), _has_astral("ok 🙂")
    (False, True)
    """
    return len(text.encode("utf-16-le", "surrogatepass")) > 2 * len(text)


#: what ``compile_pattern`` returns: either way, ``findall(text)`` gives the chunks
Splitter = Gpt2Splitter | regex.Pattern[str]


@lru_cache(maxsize=1)
def gpt2_pattern_for_re() -> str:
    """``GPT2_PATTERN`` for the standard ``re`` module, for text without astral characters.

    ``\\p{L}``, ``\\p{N}`` and ``\\s`` become the explicit ranges below U+10000 that ``regex``'s
    own Unicode tables give them (built once per process, in a few hundredths of a second).
    Characters above U+FFFF would all count as "other" here, so ``Gpt2Splitter`` sends text
    holding any to ``regex`` (handling them in ``re`` is possible, but slows every chunk).
    """
    # the surrogates (U+D800-U+DFFF) are not characters and are left out
    bmp = (range(0xD800), range(0xE000, 0x10000))
    letter, number, space = map(_class_body, _ranges((r"\p{L}", r"\p{N}", r"\s"), bmp))
    # the alternatives of GPT2_PATTERN, in its order
    return "|".join(
        [
            "'(?:[sdmt]|ll|ve|re)",
            f" ?[{letter}]++",
            f" ?[{number}]++",
            f" ?[^{space}{letter}{number}]++",
            f"[{space}]++$",
            f"[{space}]+(?![^{space}])",
            f"[{space}]",
        ]
    )


def _ranges(properties: tuple[str, ...], blocks: tuple[range, ...]) -> list[CodeRanges]:
    """For each property regex, the runs of code points of ``blocks`` that match it.

    >>> _ranges((r"\\p{N}", r"\\p{P}"), (range(0x2F, 0x3C),))   # "/0123456789:;"
    [[(48, 57)], [(47, 47), (58, 59)]]
    """
    found: list[CodeRanges] = [[] for _ in properties]
    for block in blocks:
        # the block's characters as one string, built in C (a million in a few ms)
        codes = array.array("I", block).tobytes()
        characters = codes.decode("utf-32-le" if sys.byteorder == "little" else "utf-32-be")
        for property_regex, ranges in zip(properties, found, strict=True):
            for match in regex.finditer(f"(?:{property_regex})+", characters):
                ranges.append((block[match.start()], block[match.end() - 1]))
    return found


def _class_body(ranges: CodeRanges) -> str:
    """Code point ranges written inside ``[...]`` for ``re``.

    >>> _class_body([(48, 57), (95, 95)])
    '0-9_'
    """
    parts = []
    for first, last in ranges:
        low, high = re.escape(chr(first)), re.escape(chr(last))
        parts.append(low if first == last else f"{low}-{high}")
    return "".join(parts)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (256 entries, all distinct).

    >>> table = bytes_to_unicode()
    >>> table[ord("A")], table[ord(" ")], table[ord("\\n")], table[0]
    ('A', 'Ġ', 'Ċ', 'Ā')
    """
    # Bytes that print as themselves keep their character (the same set tiktoken's loader uses:
    # printable and not a space); the others take U+0100, U+0101, ... in byte order.
    table: dict[int, str] = {}
    shifted = 0
    for byte in range(256):
        character = chr(byte)
        if character.isprintable() and character != " ":
            table[byte] = character
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    """The inverse of ``bytes_to_unicode``."""
    return {character: byte for byte, character in bytes_to_unicode().items()}


def spell_bytes(data: bytes) -> str:
    """Write ``data`` in GPT-2's printable alphabet, one character per byte."""
    table = bytes_to_unicode()
    return "".join(table[byte] for byte in data)


def unspell_bytes(spelled: str) -> bytes:
    """Read back ``spell_bytes``'s output; a character outside the alphabet raises KeyError."""
    table = unicode_to_bytes()
    return bytes(table[character] for character in spelled)
