"""Prompt formats as data: how an instruction (and its optional input) becomes model text.

A checkpoint stores its format's *name* (``weights/checkpoint.py``); ``generate``, ``respond``,
chat and the server look it up here, so a model is always prompted the way it was finetuned.

``alpaca`` is the walkthrough's chapter-7 template, character for character: the preamble,
``### Instruction:``, a ``### Input:`` block only when the input is non-empty, and the response
after ``### Response:``. ``phi3`` is a chat-style format with ``<|user|>`` / ``<|assistant|>``
markers (as Phi-3 writes its turns), which the walkthrough's chapter-7 exercise compares.

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

from dataclasses import dataclass

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
