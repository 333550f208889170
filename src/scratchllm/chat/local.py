"""Answers from a checkpoint on this machine.

The conversation is laid out in the checkpoint's prompt format (``render_chat``; a base model
reads a plain ``User:`` / ``Assistant:`` transcript) and continued by the project's one
decoder, ``generate.generate_text``: KV cache, sampling, end-of-text and the format's stop
strings. Closing a reply early (Ctrl-C) closes that generator, which hands the model back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from scratchllm.config import SamplingConfig
from scratchllm.finetune.prompts import drop_oldest_turns, render_chat
from scratchllm.generate import generate_text
from scratchllm.tokenizer.base import Tokenizer


class LocalChat:
    """A model, its tokenizer and its prompt format (None for a base model), chatting."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Tokenizer,
        prompt_format: str | None,
        *,
        name: str = "local model",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        self.name = name
        self._seed: int | None = None
        self._generator: torch.Generator | None = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str]) -> LocalChat:
        from scratchllm.weights.checkpoint import read_checkpoint

        checkpoint = read_checkpoint(path)
        return cls(checkpoint.model, checkpoint.tokenizer, checkpoint.prompt_format, name=str(path))

    @property
    def context_length(self) -> int:
        return self.model.config.context_length

    def describe(self) -> str:
        layout = f"the {self.prompt_format} format" if self.prompt_format else "a transcript"
        return f"{self.name} ({layout}, a window of {self.context_length} tokens)"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, allowed_special="all"))

    def fit(
        self, messages: Sequence[Mapping[str, str]], settings: SamplingConfig
    ) -> tuple[list[Mapping[str, str]], int]:
        """The messages whose prompt leaves room for the answer (up to half the window), and
        how many of the oldest turns had to go."""
        return drop_oldest_turns(
            messages,
            self.prompt_format,
            count_tokens=self.count_tokens,
            context_length=self.context_length,
            reserve=min(settings.max_new_tokens, self.context_length // 2),
        )

    def reply(self, messages: Sequence[Mapping[str, str]], settings: SamplingConfig) -> LocalReply:
        prompt = render_chat(messages, self.prompt_format)
        pieces = generate_text(
            self.model,
            self.tokenizer,
            prompt.text,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_k=settings.top_k,
            top_p=settings.top_p,
            generator=self._generator_for(settings),
            stop_strings=prompt.stop + settings.stop_strings,
        )
        return LocalReply(pieces, self.count_tokens, most=settings.max_new_tokens)

    def _generator_for(self, settings: SamplingConfig) -> torch.Generator | None:
        """One generator per seed, carried from reply to reply: a seeded chat is reproducible
        as a whole, and /retry still draws a new answer."""
        if settings.seed != self._seed or self._generator is None:
            self._seed = settings.seed
            device = next(self.model.parameters()).device
            self._generator = settings.make_generator(device)
        return self._generator


class LocalReply:
    """The answer's text pieces as they are generated; ``tokens`` counts the answer's tokens
    once it is read: its text encoded again (the ids a good model writes; a character cut
    between byte-level tokens would count double, hence the cap at ``most``)."""

    def __init__(self, pieces: Iterator[str], count_tokens: Callable[[str], int], *, most: int):
        self._pieces = pieces
        self._count_tokens = count_tokens
        self._most = most
        self._text: list[str] = []
        self.tokens: int | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in self._pieces:
                self._text.append(piece)
                yield piece
        finally:
            self.close()

    def close(self) -> None:
        self._pieces.close()
        self.tokens = min(self._count_tokens("".join(self._text)), self._most)
