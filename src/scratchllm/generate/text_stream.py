"""Token ids in, text pieces out: the incremental detokenizer behind streaming generation.

Streaming text one token at a time has three traps:

1. A byte-level token can end in the middle of a multi-byte UTF-8 character ("é" may be split
   over two tokens). Decoding then gives a replacement character U+FFFD at the end; we hold it
   back until the next token completes the character (or generation ends).
2. A stop string ("\\n\\n", "User:") can be spread over several tokens. Text that might be the
   start of a stop string is held back until it either completes the stop string -- generation
   stops and the stop string is never shown -- or turns out to be ordinary text.

3. How a token reads depends on what comes before it. The word-level tokenizer decodes
   ``["always", "ourselves"]`` as "always ourselves" but each alone without the space, so text
   decoded apart from its prompt ("I had always" + "ourselves") loses the space between them.

``TextStream`` decodes the prompt's ids (``context_ids``) and all ids pushed so far at every
step, and emits the part not yet shown, which is simple and exact as long as
``tokenizer.decode`` of a longer id list extends that of a shorter one (true of byte-level BPE;
the word-level tokenizer only re-spaces punctuation at the junction): prompt + emitted text is
then ``tokenizer.decode(prompt_ids + new_ids)``.

With GPT-2's tokenizer and the stop string "\\n\\n", pushing the ids of "Hello", ",", " world",
"!", "\\n\\n" returns "Hello", ",", " world", "!", "" and then ``stopped`` is True.
"""

from __future__ import annotations

from collections.abc import Sequence

from scratchllm.tokenizer.base import Tokenizer

CONTEXT_TOKENS = 8  # how many of the prompt's last ids each decode is read after
REPLACEMENT_CHARACTER = "\ufffd"  # what decoding gives for a cut multi-byte character


class TextStream:
    """Accumulates token ids and returns, for each, the newly completed text."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        stop_strings: Sequence[str] = (),
        context_ids: Sequence[int] = (),
    ) -> None:
        """``context_ids``: the ids the pushed ones continue (the prompt's), decoded with them
        but never emitted."""
        if any(not stop for stop in stop_strings):
            raise ValueError(f"stop strings must be non-empty, got {list(stop_strings)}")
        self.tokenizer = tokenizer
        self.stop_strings = tuple(stop_strings)
        # the last few are enough for a junction (the word-level tokenizer's space), and keep
        # each step's decode short however long the prompt is
        self.context_ids = list(context_ids)[-CONTEXT_TOKENS:]
        self._context_text = tokenizer.decode(self.context_ids) if self.context_ids else ""
        self.ids: list[int] = []
        self.text = ""  # everything emitted so far
        self.stopped = False  # a stop string was found; later pushes return ""

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (often "", sometimes several tokens')."""
        self.ids.append(token_id)
        return self._emit(self._decoded().rstrip(REPLACEMENT_CHARACTER), final=False)

    def finish(self) -> str:
        """Generation ended: return whatever was held back (a cut character shows as U+FFFD)."""
        return self._emit(self._decoded(), final=True)

    def _decoded(self) -> str:
        """The pushed ids' text as it reads after the context."""
        if self.context_ids:
            decoded = self.tokenizer.decode(self.context_ids + self.ids)
            if decoded.startswith(self._context_text):
                return decoded[len(self._context_text) :]
        # no context, or a tokenizer whose decoding of the context changes with what follows
        return self.tokenizer.decode(self.ids)

    def _emit(self, decoded: str, *, final: bool) -> str:
        if self.stopped:
            return ""
        start = len(self.text)
        # held-back text never contains the start of a stop string, so a match begins at `start`
        # or later (if decoding is prefix-stable, see the module docstring)
        matches = [i for i in (decoded.find(stop, start) for stop in self.stop_strings) if i >= 0]
        if matches:
            end = min(matches)
            self.stopped = True
        elif final:
            end = len(decoded)
        else:
            end = len(decoded) - _longest_stop_prefix(decoded, start, self.stop_strings)
        piece = decoded[start:end] if end > start else ""
        self.text += piece
        return piece


def _longest_stop_prefix(text: str, start: int, stop_strings: Sequence[str]) -> int:
    """Length of the longest end of ``text[start:]`` that is a proper prefix of a stop string.

    >>> _longest_stop_prefix("Hello\\nUs", 0, ["\\nUser:"])
    3
    >>> _longest_stop_prefix("Hello", 0, ["\\nUser:"])
    0
    """
    longest = 0
    for stop in stop_strings:
        for length in range(min(len(stop) - 1, len(text) - start), longest, -1):
            if text.endswith(stop[:length]):
                longest = length
                break
    return longest
