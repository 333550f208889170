"""The server's per-sequence text (``serve/app.py``'s ``_Sequence``): a character split across
byte-level tokens waits for its end, never leaving as U+FFFD, and a stop string cut across
tokens never reaches the client; both with GPT-2's tokenizer, token by token."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the server needs the serve extra")

from scratchllm.generate.engine import TokenEvent  # noqa: E402
from scratchllm.generate.text_stream import TextStream  # noqa: E402
from scratchllm.serve.app import _Sequence  # noqa: E402
from scratchllm.tokenizer import get_tokenizer  # noqa: E402


def pieces_of(text: str, stop: tuple[str, ...] = ()) -> tuple[list[str], _Sequence]:
    tokenizer = get_tokenizer("gpt2")
    sequence = _Sequence(0, TextStream(tokenizer, stop_strings=stop), tokenizer, 0)
    ids = tokenizer.encode(text)
    pieces = []
    for index, token in enumerate(ids):
        last = index == len(ids) - 1
        event = TokenEvent(0, token, None, (), "length" if last else None)
        pieces.append(sequence.take(event))
        if sequence.finish_reason is not None:
            break
    return pieces, sequence


def test_a_character_split_across_tokens_is_never_a_replacement_character():
    text = "clef 𝄞 and 🦙 llama"  # 4-byte characters: GPT-2 splits each over tokens
    tokenizer = get_tokenizer("gpt2")
    assert any("\ufffd" in tokenizer.decode([t]) for t in tokenizer.encode(text))  # it does split
    pieces, sequence = pieces_of(text)
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) == sequence.text == text
    assert sequence.tokens == len(tokenizer.encode(text)) and sequence.finish_reason == "length"


def test_a_stop_string_cut_across_tokens_never_leaves():
    pieces, sequence = pieces_of("The answer is 42.\n\n### Instruction:\nMore", stop=("\n\n###",))
    assert "".join(pieces) == "The answer is 42." and sequence.finish_reason == "stop"
    assert all("#" not in piece for piece in pieces)
