"""Conversations as prompts: ``render_chat`` per format, its stop strings, and
``drop_oldest_turns``."""

from __future__ import annotations

import pytest

from scratchllm.errors import ConfigError
from scratchllm.finetune.prompts import (
    CHAT_TEMPLATES,
    PROMPT_FORMATS,
    ChatPrompt,
    drop_oldest_turns,
    render_chat,
)

CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Red."},
    {"role": "user", "content": "Another one?"},
]

ALPACA_CHAT = """Below is an instruction that describes a task. Write a response that \
appropriately completes the request.

Answer briefly.

### Instruction:
Name a colour.

### Response:
Red.

### Instruction:
Another one?

### Response:
"""


@pytest.mark.parametrize("name", sorted(PROMPT_FORMATS))
def test_one_user_message_is_what_the_model_was_finetuned_on(name):
    prompt_format = PROMPT_FORMATS[name]
    content = "What colour is snow?\nAnswer in one word."
    for given in (prompt_format, name):
        rendered = render_chat([{"role": "user", "content": content}], given)
        assert rendered.text == prompt_format.prompt(content, "")


def test_every_prompt_format_has_a_chat_layout():
    assert set(CHAT_TEMPLATES) == set(PROMPT_FORMATS)


def test_alpaca_lays_turns_out_as_instructions_a_blank_line_apart():
    rendered = render_chat(CHAT, PROMPT_FORMATS["alpaca"])
    assert rendered.text == ALPACA_CHAT
    assert "\n\n### Instruction:" in rendered.stop


@pytest.mark.parametrize("name", [*sorted(PROMPT_FORMATS), None])
def test_the_next_turn_after_an_answer_starts_with_a_stop_string(name):
    # were the model to write the next turn after its answer, a stop string cuts it off
    rendered = render_chat(CHAT, name)
    answered = [*CHAT, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "?"}]
    after_answer = render_chat(answered, name).text.removeprefix(rendered.text)
    assert after_answer.lstrip(" ").startswith("Blue.")
    next_turn = after_answer.lstrip(" ").removeprefix("Blue.")
    found = [next_turn.find(stop) for stop in rendered.stop if stop in next_turn]
    assert found and not next_turn[: min(found)].strip(), next_turn  # only spacing before it


def test_phi3_marks_each_turn():
    rendered = render_chat(CHAT, "phi3")
    assert rendered == ChatPrompt(
        "<|system|>\nAnswer briefly.\n<|user|>\nName a colour.\n<|assistant|>\nRed.\n"
        "<|user|>\nAnother one?\n<|assistant|>\n",
        ("<|user|>", "<|assistant|>", "<|system|>"),
    )


def test_a_base_model_reads_a_transcript():
    rendered = render_chat(CHAT, None)
    assert rendered.text == (
        "System: Answer briefly.\nUser: Name a colour.\nAssistant: Red.\n"
        "User: Another one?\nAssistant:"
    )
    assert rendered.stop[0] == "\nUser:"


def test_consecutive_messages_of_one_role_are_one_turn_and_text_parts_are_joined():
    parts = [{"type": "text", "text": "Name "}, {"type": "text", "text": "a colour."}]
    messages = [{"role": "user", "content": "Hello."}, {"role": "user", "content": parts}]
    assert render_chat(messages, None).text == "User: Hello.\n\nName a colour.\nAssistant:"


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (CHAT[:3], "the last message must be the user's .* got role 'assistant'"),
        ([], "at least one message"),
        ([{"role": "robot", "content": "Hi"}], "message 0: the role must be one of"),
        ([{"role": "user", "content": 3}], "message 0: the content must be text"),
    ],
)
def test_a_conversation_the_model_cannot_answer_is_a_clear_error(messages, message):
    with pytest.raises(ConfigError, match=message):
        render_chat(messages, "alpaca")


def test_an_unknown_format_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown prompt format 'chatml'"):
        render_chat(CHAT, "chatml")


def by_characters(text: str) -> int:  # a "tokenizer" whose counts are easy to check
    return len(text)


def test_the_oldest_turns_go_first_and_the_system_message_stays():
    chat = [*CHAT, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "A?"}]
    full = len(render_chat(chat, None).text)
    kept, dropped = drop_oldest_turns(chat, None, count_tokens=by_characters, context_length=full)
    assert (kept, dropped) == (chat, 0)
    # one character short, or a reserve: the first turn (question and answer) goes
    for context_length, reserve in ((full - 1, 0), (full, 1)):
        kept, dropped = drop_oldest_turns(
            chat, None, count_tokens=by_characters, context_length=context_length, reserve=reserve
        )
        assert dropped == 1
        assert kept == [chat[0], *chat[3:]]
        assert len(render_chat(kept, None).text) + reserve <= context_length
    # the system message and the question to answer always stay, even when they do not fit
    kept, dropped = drop_oldest_turns(chat, None, count_tokens=by_characters, context_length=5)
    assert (kept, dropped) == ([chat[0], chat[-1]], 2)


def test_dropping_turns_checks_the_messages():
    with pytest.raises(ConfigError, match="the last message must be the user's"):
        drop_oldest_turns(CHAT[:3], None, count_tokens=by_characters, context_length=5)
