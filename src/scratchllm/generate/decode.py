"""Autoregressive decoding: the one token generator that the CLI, training samples, the chat
and the server all use.

A GPT predicts the next token from the tokens before it. Generation repeats: run the model,
pick a token from the last position's logits (``sampling.py``), append it, run again. Done
naively, every step re-runs the whole sequence. With a KV cache (``model/kv_cache.py``) it has
two phases, as in gpt-fast:

- ``prefill``: one forward pass over the prompt writes every layer's keys and values into the
  caches and gives the logits for the first new token;
- ``decode_one_token``: each later step feeds only the newest token at its position; attention
  reads the earlier keys and values from the caches.

``generate_tokens`` streams token ids; ``generate_text`` turns them into text pieces and stops
at stop strings (``text_stream.py``).

The context window. The model has learned positions ``0 .. context_length - 1`` only, so it
sees at most the last ``context_length`` tokens -- exactly the walkthrough's uncached loop,
which feeds ``idx[:, -context_size:]`` at every step:

- a prompt longer than the window is cropped to its last ``context_length`` tokens, with a
  ``UserWarning`` saying so;
- once prompt + generated tokens outgrow the window, the window slides. GPT-2's positions are
  absolute, so sliding changes every token's position and the cached keys are stale: from then
  on each step recomputes the last ``context_length`` tokens without the cache (the uncached
  loop's cost). The cached and uncached paths therefore pick the same tokens throughout.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence

import torch
from torch import nn

from scratchllm.errors import ConfigError
from scratchllm.generate.sampling import SamplingConfig, sample_next_token
from scratchllm.generate.text_stream import TextStream
from scratchllm.model.kv_cache import KVCache
from scratchllm.tokenizer.base import Tokenizer

#: picks one token id from the last position's logits (1, V)
TokenPicker = Callable[[torch.Tensor], int]


def prefill(model: nn.Module, prompt_ids: torch.Tensor, kv_caches: list[KVCache]) -> torch.Tensor:
    """Run ``prompt_ids`` ``(B, T)`` from position 0, filling ``kv_caches``; return the last
    position's logits ``(B, V)``, the distribution of the first new token."""
    logits = model(prompt_ids, kv_caches=kv_caches, start_position=0)  # (B, T, V)
    return logits[:, -1, :]


def decode_one_token(
    model: nn.Module, token: torch.Tensor, kv_caches: list[KVCache], position: int
) -> torch.Tensor:
    """Feed ``token`` ``(B, 1)`` at ``position`` (the number of tokens already cached); return its
    logits ``(B, V)``, the distribution of the token after it."""
    logits = model(token, kv_caches=kv_caches, start_position=position)  # (B, 1, V)
    return logits[:, -1, :]


def generate_tokens(
    model: nn.Module,
    prompt_ids: Sequence[int] | torch.Tensor,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    eot_id: int | None = None,
    stop_ids: Collection[int] = (),
    use_cache: bool = True,
) -> Iterator[int]:
    """Yield up to ``max_new_tokens`` token ids continuing ``prompt_ids``, one as soon as it is
    picked.

    ``prompt_ids`` is a list of ids or a ``(T,)`` / ``(1, T)`` tensor (one sequence). Tokens are
    picked by ``sample_next_token`` (``temperature=0``, the default, is greedy; ``generator``
    makes sampling reproducible and must live on the model's device). Generation stops before
    ``eot_id`` or any of ``stop_ids``: those are not yielded. ``use_cache=False`` runs the
    walkthrough's loop, the whole window every step (the reference the cache is tested against).

    The model is put in eval mode while the generator runs (its previous mode comes back when
    the generator finishes or is closed) and every model call runs under
    ``torch.inference_mode()``; the caller's code between two tokens is not affected.
    """
    ids = _one_sequence(prompt_ids)
    # the same checks (and messages) as the CLI's options
    SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens)
    context_length = model.config.context_length
    if len(ids) > context_length:
        warnings.warn(
            f"the prompt has {len(ids)} tokens but the model sees at most {context_length}; "
            f"keeping its last {context_length}",
            stacklevel=2,
        )
        ids = ids[-context_length:]
    stops = set(stop_ids) | ({eot_id} if eot_id is not None else set())

    def pick(logits: torch.Tensor) -> int:
        next_token = sample_next_token(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        return int(next_token.item())

    # a generator function runs nothing until the first next(); the checks above run at the call
    return _generate(model, ids, max_new_tokens, pick, stops, use_cache=use_cache)


def _generate(
    model: nn.Module,
    ids: list[int],
    max_new_tokens: int,
    pick: TokenPicker,
    stops: set[int],
    *,
    use_cache: bool,
) -> Iterator[int]:
    """The loop behind ``generate_tokens`` (arguments already checked)."""
    if max_new_tokens == 0:
        return
    was_training = model.training
    model.eval()
    try:
        sequence = list(ids)  # every token so far; the model sees the last context_length
        if use_cache:
            next_token = _CachedSteps(model, len(ids) + max_new_tokens - 1).next_token
        else:
            next_token = functools.partial(_uncached_next_token, model)
        for _ in range(max_new_tokens):
            token = next_token(sequence, pick)
            if token in stops:
                return
            yield token
            sequence.append(token)
    finally:
        model.train(was_training)


@torch.inference_mode()
def _uncached_next_token(model: nn.Module, sequence: list[int], pick: TokenPicker) -> int:
    """The walkthrough's step: the whole window (the last context_length tokens) every time."""
    window = sequence[-model.config.context_length :]
    token_ids = torch.tensor([window], dtype=torch.long, device=_device_of(model))  # (1, T)
    logits = model(token_ids)[:, -1, :]  # (1, V)
    return pick(logits)


class _CachedSteps:
    """Prefill once, then one cached decode step per token until the window is full."""

    def __init__(self, model: nn.Module, total_length: int) -> None:
        self.model = model
        self.device = _device_of(model)
        # the last generated token is never fed back, hence total = prompt + max_new_tokens - 1
        self.max_length = min(total_length, model.config.context_length)
        self.kv_caches: list[KVCache] | None = None
        self.position = 0  # how many tokens the caches hold

    @torch.inference_mode()
    def next_token(self, sequence: list[int], pick: TokenPicker) -> int:
        if self.kv_caches is None:
            # created under inference mode, like every tensor the steps write into them
            parameter = next(self.model.parameters())
            self.kv_caches = self.model.make_kv_caches(
                1, self.max_length, dtype=parameter.dtype, device=self.device
            )
            prompt = torch.tensor([sequence], dtype=torch.long, device=self.device)
            logits = prefill(self.model, prompt, self.kv_caches)
            self.position = len(sequence)
        elif self.position < self.max_length:
            token = torch.tensor([[sequence[-1]]], dtype=torch.long, device=self.device)
            logits = decode_one_token(self.model, token, self.kv_caches, self.position)
            self.position += 1
        else:  # the window slides: every position shifts, the cache is stale (module docstring)
            return _uncached_next_token(self.model, sequence, pick)
        return pick(logits)


def generate_text(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompt: str,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    stop_strings: Sequence[str] = (),
    use_cache: bool = True,
) -> Iterator[str]:
    """Yield the text that continues ``prompt``, in pieces, as tokens are generated.

    The prompt is encoded with special tokens allowed (a user can write ``<|endoftext|>`` on
    purpose); an empty prompt starts from ``<|endoftext|>``, GPT-2's start of a document.
    Generation stops at the tokenizer's end-of-text token, after ``max_new_tokens`` tokens, or
    just before the first of ``stop_strings`` (which is not yielded). Pieces are whole
    characters only: a character cut between two byte-level tokens waits for the second. They
    are decoded after the prompt's ids: ``tokenizer.decode(prompt_ids + new_ids)`` is the
    prompt's decoded text followed by the pieces (with a word-level tokenizer, the space
    between the prompt and the first new word included).
    """
    prompt_ids = tokenizer.encode(prompt, allowed_special="all")
    # decoded after the prompt, so that a word-level tokenizer puts its space between them
    stream = TextStream(tokenizer, stop_strings=stop_strings, context_ids=prompt_ids)
    if not prompt_ids:
        if tokenizer.eot_id is None:
            raise ConfigError(
                "the prompt is empty and the tokenizer has no <|endoftext|> to start from; "
                "give a prompt"
            )
        prompt_ids = [tokenizer.eot_id]
    tokens = generate_tokens(
        model,
        prompt_ids,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        generator=generator,
        eot_id=tokenizer.eot_id,
        use_cache=use_cache,
    )
    return _stream_text(tokens, stream)


def _stream_text(tokens: Iterator[int], stream: TextStream) -> Iterator[str]:
    try:
        for token in tokens:
            piece = stream.push(token)
            if piece:
                yield piece
            if stream.stopped:
                return
        piece = stream.finish()
        if piece:
            yield piece
    finally:
        tokens.close()  # hands the model back in its own train/eval mode right away


def generate_with_config(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompt: str,
    sampling: SamplingConfig,
    *,
    use_cache: bool = True,
) -> Iterator[str]:
    """``generate_text`` with every option from one ``SamplingConfig`` (what the CLI, the server
    and training samples hold); a seed makes the text reproducible."""
    return generate_text(
        model,
        tokenizer,
        prompt,
        max_new_tokens=sampling.max_new_tokens,
        temperature=sampling.temperature,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        generator=sampling.make_generator(_device_of(model)),
        stop_strings=sampling.stop_strings,
        use_cache=use_cache,
    )


def _one_sequence(prompt_ids: Sequence[int] | torch.Tensor) -> list[int]:
    """The prompt as a list of ints; a tensor may be ``(T,)`` or ``(1, T)``."""
    if isinstance(prompt_ids, torch.Tensor):
        if prompt_ids.ndim == 2 and prompt_ids.shape[0] == 1:
            prompt_ids = prompt_ids[0]
        if prompt_ids.ndim != 1:
            raise ConfigError(
                f"generate_tokens takes one sequence, a (T,) or (1, T) tensor; got shape "
                f"{tuple(prompt_ids.shape)} (generate each row separately)"
            )
        prompt_ids = prompt_ids.tolist()
    ids = [int(token) for token in prompt_ids]
    if not ids:
        raise ConfigError("the prompt has no tokens; give at least one token id to continue")
    return ids


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
