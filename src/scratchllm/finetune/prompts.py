"""Prompt formats as data: how an instruction (and its optional input) becomes model text.

A checkpoint stores its format's *name* (``weights/checkpoint.py``); ``generate``, ``respond``,
chat and the server look it up here, so a model is always prompted the way it was finetuned.

``alpaca`` is the walkthrough's chapter-7 template, character for character: the preamble,
``### Instruction:``, a ``### Input:`` block only when the input is non-empty, and the response
after ``### Response:``. ``phi3`` is a chat-style format with ``<|user|>`` / ``<|assistant|>``
markers (as Phi-3 writes its turns), which the walkthrough's chapter-7 exercise compares.

``render_chat`` lays a whole conversation (OpenAI-style messages) out in a format, for the chat
REPL and the server; ``drop_oldest_turns`` makes one fit the model's window (docs/chat.md).

>>> print(PROMPT_FORMATS["alpaca"].prompt("Name a colour.", "")[47:], end="|")
Write a response that appropriately completes the request.
<BLANKLINE>
### Instruction:
Name a colour.
<BLANKLINE>
### Response:
|
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scratchllm.errors import ConfigError


@dataclass(frozen=True)
class PromptFormat:
    """A template: ``prompt(instruction, input)`` is what the model reads before its answer."""

    name: str
    preamble: str  # before the instruction
    input_block: str  # "{input}" goes in; left out when the input is empty
    response_prefix: str  # after the instruction and input; the answer follows it

    def prompt(self, instruction: str, input: str = "") -> str:  # noqa: A002 - the data's key
        """The prompt text for one example, up to and including the response prefix."""
        block = self.input_block.format(input=input) if input else ""
        return self.preamble.format(instruction=instruction) + block + self.response_prefix


PROMPT_FORMATS: dict[str, PromptFormat] = {
    "alpaca": PromptFormat(
        name="alpaca",
        preamble=(
            "Below is an instruction that describes a task. Write a response that "
            "appropriately completes the request.\n\n### Instruction:\n{instruction}"
        ),
        input_block="\n\n### Input:\n{input}",
        response_prefix="\n\n### Response:\n",
    ),
    "phi3": PromptFormat(
        name="phi3",
        preamble="<|user|>\n{instruction}",
        input_block="\n{input}",
        response_prefix="\n<|assistant|>\n",
    ),
}


def get_prompt_format(name: str) -> PromptFormat:
    """The format called ``name``, or a clear error listing the known ones."""
    try:
        return PROMPT_FORMATS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown prompt format {name!r}; known formats: {', '.join(PROMPT_FORMATS)}"
        ) from None


# ---- conversations: a list of chat messages as one prompt -------------------------------------

CHAT_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatPrompt:
    """What a model reads before its next answer, and the texts that end that answer (the
    start of a turn the model should leave to the user); neither appears in the answer."""

    text: str
    stop: tuple[str, ...]


@dataclass(frozen=True)
class ChatTemplate:
    """How a conversation is laid out in one prompt format: each ``{content}`` goes in.

    The prompt is ``header``, then each message through its role's template; an answer is
    generated after the last ``user`` template, and ``stop`` ends it.
    """

    header: str  # once, at the start
    system: str
    user: str  # ends where the answer starts
    assistant: str  # an earlier answer, and what separates it from the next turn
    stop: tuple[str, ...]

    def render(self, messages: Sequence[tuple[str, str]]) -> str:
        templates = {"system": self.system, "user": self.user, "assistant": self.assistant}
        return self.header + "".join(
            templates[role].format(content=content) for role, content in messages
        )


# one per prompt format (keyed by its name), and BASE_TRANSCRIPT for a model without one. The
# first user turn after the header is the format's own ``prompt(instruction, "")``: what the
# model was finetuned on (tests/test_chat_render.py checks it for every format).
CHAT_TEMPLATES: dict[str, ChatTemplate] = {
    "alpaca": ChatTemplate(
        header=(
            "Below is an instruction that describes a task. Write a response that "
            "appropriately completes the request.\n\n"
        ),
        system="{content}\n\n",  # a paragraph after the preamble, before the next instruction
        user="### Instruction:\n{content}\n\n### Response:\n",
        assistant="{content}\n\n",  # a blank line between turns
        stop=("\n\n### Instruction:", "\n\n### Input:", "\n\n### Response:"),
    ),
    "phi3": ChatTemplate(
        header="",
        system="<|system|>\n{content}\n",
        user="<|user|>\n{content}\n<|assistant|>\n",
        assistant="{content}\n",
        stop=("<|user|>", "<|assistant|>", "<|system|>"),
    ),
}
BASE_TRANSCRIPT = ChatTemplate(
    header="",
    system="System: {content}\n",
    user="User: {content}\nAssistant:",  # the answer starts with its own space
    assistant=" {content}\n",
    stop=("\nUser:", "\nSystem:"),
)


def chat_template(prompt_format: PromptFormat | str | None) -> ChatTemplate:
    """The conversation layout of a prompt format (or its name); None: a base model's plain
    transcript."""
    if prompt_format is None:
        return BASE_TRANSCRIPT
    name = prompt_format if isinstance(prompt_format, str) else prompt_format.name
    if name not in CHAT_TEMPLATES:
        get_prompt_format(name)  # an unknown name: the error that lists the known ones
        raise ConfigError(f"the prompt format {name!r} has no chat layout; known: alpaca, phi3")
    return CHAT_TEMPLATES[name]


def render_chat(
    messages: Sequence[Mapping[str, Any]], prompt_format: PromptFormat | str | None
) -> ChatPrompt:
    """The prompt for the model's answer to a conversation, in the checkpoint's format.

    ``messages`` are OpenAI-style ``{"role": "system" | "user" | "assistant", "content": str}``
    (a content may also be a list of ``{"type": "text", "text": ...}`` parts), oldest first;
    the last one must be the user's. Consecutive messages of one role are one turn, joined by
    a blank line. Each format lays the turns out as its finetuning data did (the first user
    turn is exactly ``prompt_format.prompt(content, "")``):

    - ``alpaca``: the preamble, a system message as a paragraph after it, each user message as
      an ``### Instruction:`` with its answer after ``### Response:``, turns a blank line
      apart; stops at the next ``### Instruction:`` (or ``Input``/``Response``) heading;
    - ``phi3``: ``<|system|>``, ``<|user|>`` and ``<|assistant|>`` lines before each message;
      stops at any of the three markers;
    - None (a base model): a transcript of ``System: ...``, ``User: ...`` and
      ``Assistant: ...`` lines ending with ``Assistant:``; stops at ``\\nUser:``.

    >>> render_chat([{"role": "user", "content": "Hi."}], None)
    ChatPrompt(text='User: Hi.\\nAssistant:', stop=('\\nUser:', '\\nSystem:'))
    """
    turns = _turns(messages)
    if turns[-1][0] != "user":
        raise ConfigError(
            f"the last message must be the user's (role 'user') for the model to answer it; "
            f"got role {turns[-1][0]!r}"
        )
    template = chat_template(prompt_format)
    return ChatPrompt(template.render(turns), template.stop)


def drop_oldest_turns(
    messages: Sequence[Mapping[str, Any]],
    prompt_format: PromptFormat | str | None,
    *,
    count_tokens: Callable[[str], int],
    context_length: int,
    reserve: int = 0,
) -> tuple[list[Mapping[str, Any]], int]:
    """Drop the oldest turns until the rendered prompt's tokens plus ``reserve`` (room for
    the answer) fit in ``context_length``; return the messages kept and how many turns went.

    A turn is a user message with the answers after it. System messages and the last turn
    (the question to answer) are always kept, so the prompt may still not fit: the decoder
    then keeps its last ``context_length`` tokens, with a warning. ``count_tokens`` is the
    tokenizer's (``len(tokenizer.encode(text, allowed_special="all"))``).

    >>> chat = [{"role": "user", "content": "a " * 10}, {"role": "assistant", "content": "b"},
    ...         {"role": "user", "content": "c"}]
    >>> kept, dropped = drop_oldest_turns(chat, None, count_tokens=len, context_length=20)
    >>> [message["content"] for message in kept], dropped
    (['c'], 1)
    """
    return keep_fitting_turns(
        messages,
        lambda kept: (
            count_tokens(render_chat(kept, prompt_format).text) + reserve <= context_length
        ),
    )


def keep_fitting_turns(
    messages: Sequence[Mapping[str, Any]],
    fits: Callable[[list[Mapping[str, Any]]], bool],
) -> tuple[list[Mapping[str, Any]], int]:
    """``drop_oldest_turns`` with any test of fitting (``fits(kept)``): a remote chat asks its
    server to count (``chat/remote.py``). The oldest turns go first; system messages and the
    last turn stay.

    >>> chat = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "a"},
    ...         {"role": "user", "content": "2"}]
    >>> keep_fitting_turns(chat, lambda kept: len(kept) < 2)
    ([{'role': 'user', 'content': '2'}], 1)
    """
    messages = list(messages)
    _turns(messages)  # the same checks as render_chat
    starts = [i for i, message in enumerate(messages) if message["role"] == "user"]
    # a run of user messages is one turn: it starts at the first of them
    starts = [i for i in starts if i == 0 or messages[i - 1]["role"] != "user"]
    dropped = 0
    kept = messages
    while True:
        if fits(kept) or dropped + 1 >= len(starts):
            return kept, dropped
        dropped += 1
        # keep every system message, and everything from the next kept turn on
        kept = [
            message
            for i, message in enumerate(messages)
            if i >= starts[dropped] or message["role"] == "system"
        ]


def _turns(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(role, content)`` pairs, checked, with consecutive messages of one role joined."""
    if not messages:
        raise ConfigError("a chat needs at least one message, the user's")
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in CHAT_ROLES:
            raise ConfigError(
                f"message {index}: the role must be one of {', '.join(CHAT_ROLES)}; got "
                f"{role if isinstance(message, Mapping) else message!r}"
            )
        content = _text_of(message.get("content"), index)
        if turns and turns[-1][0] == role:
            turns[-1] = (role, turns[-1][1] + "\n\n" + content)
        else:
            turns.append((role, content))
    return turns


def _text_of(content: Any, index: int) -> str:
    """A message's text: a string, or OpenAI's list of ``{"type": "text", "text": ...}``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, Mapping)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
        for part in content
    ):
        return "".join(part["text"] for part in content)
    raise ConfigError(
        f"message {index}: the content must be text (a string, or a list of "
        f"{{'type': 'text', 'text': ...}} parts); got {type(content).__name__}"
    )
