"""An instruction model's responses: the answer after the prompt, and a whole split of them.

The walkthrough's chapter 7 prompts its finetuned model with each test instruction in the
Alpaca format, generates up to 256 tokens greedily, stops at ``<|endoftext|>``, keeps the text
after the prompt (``.strip()``-ed) and stores it as ``model_response`` next to the entry:
``instruction-data-with-response.json``, which a judge model then scores (``judge.py``).
``respond`` is one such answer through the project's one decode path
(``generate.generate_with_config``: KV cache, end-of-text and stop strings, whole characters),
``respond_all`` a list of entries, and both serve the sample a run prints at each evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch import nn

from scratchllm.config import SamplingConfig
from scratchllm.finetune.prompts import PromptFormat
from scratchllm.generate import generate_with_config
from scratchllm.judge import DEFAULT_RESPONSE_KEY as RESPONSE_KEY  # "model_response"
from scratchllm.tokenizer import Tokenizer

DEFAULT_MAX_NEW_TOKENS = 256  # the walkthrough's for its test responses


def respond(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompt_format: PromptFormat,
    instruction: str,
    input: str = "",  # noqa: A002 - the data's key
    *,
    sampling: SamplingConfig | None = None,
) -> str:
    """The model's response to one instruction (and input): the text generated after the
    prompt, up to end-of-text or ``sampling.max_new_tokens``, stripped of surrounding space.
    Greedy with the walkthrough's 256 tokens unless ``sampling`` says otherwise."""
    sampling = sampling or SamplingConfig(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    prompt = prompt_format.prompt(instruction, input)
    return "".join(generate_with_config(model, tokenizer, prompt, sampling)).strip()


def respond_all(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompt_format: PromptFormat,
    entries: Iterable[Mapping[str, Any]],
    *,
    sampling: SamplingConfig | None = None,
    key: str = RESPONSE_KEY,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = iter,
) -> list[dict[str, Any]]:
    """Each entry (a dict with ``instruction`` and ``input``) copied with its response added
    under ``key``; ``progress`` wraps the loop (e.g. a tqdm bar)."""
    answered = []
    for entry in progress(list(entries)):
        response = respond(
            model, tokenizer, prompt_format, entry["instruction"], entry.get("input", ""),
            sampling=sampling,
        )  # fmt: skip
        answered.append({**entry, key: response})
    return answered


__all__ = ["RESPONSE_KEY", "DEFAULT_MAX_NEW_TOKENS", "respond", "respond_all"]
