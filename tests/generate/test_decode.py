"""Decoding: the cache against the uncached walkthrough loop, causality, stopping, cropping.

Two kinds of model:
- a tiny random ``GPT`` (2 layers, width 32, vocabulary 100, context 16) for the numerics;
- ``ScriptedModel``, which honours the GPT's forward contract but predicts a fixed script, so
  text-level behaviour (stop strings, cut UTF-8 characters, end of text) has an exact oracle.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from scratchllm.config import GPTConfig
from scratchllm.errors import ConfigError
from scratchllm.generate import (
    SamplingConfig,
    TextStream,
    decode_one_token,
    generate_text,
    generate_tokens,
    generate_with_config,
    prefill,
)
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import BPETokenizer, SimpleTokenizer, TiktokenTokenizer

CONTEXT = 16
TINY = GPTConfig(
    vocab_size=100, context_length=CONTEXT, n_embd=32, n_head=4, n_layer=2, dropout=0.1
)


@cache
def tiny_gpt() -> GPT:
    """Dropout is on (0.1): generation must switch it off, or cached != uncached."""
    return GPT(TINY, generator=torch.Generator().manual_seed(0))


def walkthrough_generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int) -> list[int]:
    """The walkthrough's uncached greedy loop, as the oracle: crop, forward, argmax, append."""
    context_size = model.config.context_length
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond)[:, -1, :]
        idx_next = torch.argmax(logits, dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx[0, -max_new_tokens:].tolist()


def random_ids(length: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, TINY.vocab_size, (length,), generator=generator).tolist()


# ---- the two phases against the full forward pass ---------------------------------------


def test_prefill_and_decode_steps_reproduce_the_full_forward_logits() -> None:
    model = tiny_gpt().eval()
    batch = torch.tensor([random_ids(CONTEXT, seed=1), random_ids(CONTEXT, seed=2)])  # (2, T)
    with torch.no_grad():
        expected = model(batch)  # (2, T, V), no cache
        caches = model.make_kv_caches(2)
        prompt = 5
        steps = [prefill(model, batch[:, :prompt], caches)]
        for position in range(prompt, CONTEXT):
            token = batch[:, position : position + 1]
            steps.append(decode_one_token(model, token, caches, position))
    actual = torch.stack(steps, dim=1)  # (2, CONTEXT - prompt + 1, V)
    torch.testing.assert_close(actual, expected[:, prompt - 1 :], rtol=0, atol=1e-5)
    assert caches[0].length == CONTEXT


@settings(max_examples=30, deadline=None)
@given(
    ids=st.lists(st.integers(0, TINY.vocab_size - 1), min_size=2, max_size=CONTEXT),
    data=st.data(),
)
def test_causality_changing_a_token_leaves_earlier_logits_unchanged(
    ids: list[int], data: st.DataObject
) -> None:
    model = tiny_gpt().eval()
    changed_at = data.draw(st.integers(0, len(ids) - 1), label="changed_at")
    replacement = data.draw(
        st.integers(0, TINY.vocab_size - 1).filter(lambda t: t != ids[changed_at])
    )
    changed = list(ids)
    changed[changed_at] = replacement
    with torch.no_grad():
        before, after = model(torch.tensor([ids, changed])).unbind(0)  # (T, V) each
    torch.testing.assert_close(after[:changed_at], before[:changed_at], rtol=0, atol=1e-6)
    assert not torch.allclose(after[changed_at], before[changed_at])  # the token itself counts


# ---- the streaming generator --------------------------------------------------------------


@pytest.mark.parametrize("prompt_length", [1, 5, CONTEXT])
def test_cached_greedy_equals_uncached_and_the_walkthrough(prompt_length: int) -> None:
    model = tiny_gpt()
    prompt = random_ids(prompt_length, seed=prompt_length)
    new = 2 * CONTEXT  # far past the window: the sliding fallback runs too
    cached = list(generate_tokens(model, prompt, max_new_tokens=new))
    uncached = list(generate_tokens(model, prompt, max_new_tokens=new, use_cache=False))
    assert cached == uncached
    assert uncached == walkthrough_generate(model.eval(), torch.tensor([prompt]), new)


def test_cached_sampling_equals_uncached_with_the_same_seed() -> None:
    model = tiny_gpt()
    options = {"max_new_tokens": 24, "temperature": 1.0, "top_k": 50, "top_p": 0.95}
    runs = [
        list(
            generate_tokens(
                model,
                [1, 2, 3],
                generator=torch.Generator().manual_seed(5),
                use_cache=use_cache,
                **options,
            )
        )
        for use_cache in (True, False, True)
    ]
    assert runs[0] == runs[1] == runs[2]
    other_seed = generate_tokens(
        model, [1, 2, 3], generator=torch.Generator().manual_seed(6), **options
    )
    assert list(other_seed) != runs[0]  # 24 draws from ~50 candidates: equal by chance ~never


def test_stops_before_the_end_of_text_id_and_stop_ids() -> None:
    model = tiny_gpt()
    free = list(generate_tokens(model, [7, 8], max_new_tokens=12))
    for index in (0, 3):
        stop = free[index]
        expected = free[: free.index(stop)]
        assert list(generate_tokens(model, [7, 8], max_new_tokens=12, eot_id=stop)) == expected
        assert list(generate_tokens(model, [7, 8], max_new_tokens=12, stop_ids={stop})) == expected


def test_max_new_tokens_zero_yields_nothing_and_runs_nothing() -> None:
    model = tiny_gpt()
    calls = []
    handle = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        assert list(generate_tokens(model, [1, 2], max_new_tokens=0)) == []
        assert list(generate_tokens(model, [1, 2], max_new_tokens=3)) != []
    finally:
        handle.remove()
    assert len(calls) == 3  # only the second call ran the model (prefill + 2 decode steps)


def test_a_prompt_longer_than_the_window_is_cropped_to_its_end_with_a_warning() -> None:
    model = tiny_gpt()
    prompt = random_ids(CONTEXT + 9, seed=3)
    for use_cache in (True, False):
        with pytest.warns(UserWarning, match=f"keeping its last {CONTEXT}"):
            tokens = list(generate_tokens(model, prompt, max_new_tokens=6, use_cache=use_cache))
        cropped = list(generate_tokens(model, prompt[-CONTEXT:], max_new_tokens=6))
        assert tokens == cropped


def test_the_model_mode_and_grad_mode_come_back() -> None:
    model = tiny_gpt().train()
    tokens = generate_tokens(model, torch.tensor([[4, 5, 6]]), max_new_tokens=5)  # (1, T) works
    next(tokens)
    assert not model.training  # eval while generating (dropout off)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()  # caller untouched
    tokens.close()  # a caller that stops early
    assert model.training
    list(generate_tokens(model, [4], max_new_tokens=2))
    assert model.training


def test_bad_arguments_fail_at_the_call_not_at_the_first_token() -> None:
    model = tiny_gpt()
    with pytest.raises(ConfigError, match="no tokens"):
        generate_tokens(model, [], max_new_tokens=3)
    with pytest.raises(ConfigError, match="one sequence"):
        generate_tokens(model, torch.zeros(2, 3, dtype=torch.long), max_new_tokens=3)
    with pytest.raises(ConfigError, match="temperature"):
        generate_tokens(model, [1], max_new_tokens=3, temperature=-1.0)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        generate_tokens(model, [1], max_new_tokens=-1)


# ---- text: a scripted model and GPT-2's tokenizer -------------------------------------------


class ScriptedModel(nn.Module):
    """A stand-in GPT that, at every absolute position p, puts all its mass on ``targets[p]``:
    after a prompt of P tokens it generates ``targets[P - 1], targets[P], ...``."""

    def __init__(self, prompt_length: int, continuation: list[int], vocab_size: int) -> None:
        super().__init__()
        self.config = GPTConfig(
            vocab_size=vocab_size, context_length=64, n_embd=4, n_head=1, n_layer=1
        )
        self.targets = [0] * (prompt_length - 1) + continuation
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device and a dtype
        self.inputs: list[list[int]] = []

    def make_kv_caches(self, batch_size: int, max_length: int | None = None, **_: object) -> list:
        return []  # nothing to cache: the predictions depend on positions only

    def forward(
        self, token_ids: torch.Tensor, *, kv_caches: list | None = None, start_position: int = 0
    ) -> torch.Tensor:
        self.inputs.append(token_ids[0].tolist())
        positions = range(start_position, start_position + token_ids.shape[1])
        logits = torch.full((1, token_ids.shape[1], self.config.vocab_size), -10.0)
        for index, position in enumerate(positions):
            target = self.targets[position] if position < len(self.targets) else 0
            logits[0, index, target] = 10.0
        return logits


@pytest.fixture(scope="module")
def gpt2_tokenizer(shared_data: Path) -> TiktokenTokenizer:
    return TiktokenTokenizer.gpt2(shared_data / "gpt2.tiktoken")


CONTINUATION = " Héllo wörld, 日本語 😀!\n\nUser: more text"


def scripted_text(
    tokenizer: TiktokenTokenizer, prompt: str, continuation: str, **options: object
) -> tuple[list[str], ScriptedModel]:
    """Generate with a model scripted to continue ``prompt`` with ``continuation``."""
    ids = tokenizer.encode(continuation, allowed_special="all")
    model = ScriptedModel(len(tokenizer.encode(prompt) or [0]), ids, tokenizer.vocab_size)
    pieces = list(generate_text(model, tokenizer, prompt, max_new_tokens=len(ids), **options))
    return pieces, model


def test_text_stream_yields_whole_characters_only(gpt2_tokenizer: TiktokenTokenizer) -> None:
    ids = gpt2_tokenizer.encode(CONTINUATION)
    stream = TextStream(gpt2_tokenizer)
    pieces = [stream.push(token) for token in ids] + [stream.finish()]
    assert "".join(pieces) == CONTINUATION
    assert not any("\ufffd" in piece for piece in pieces)
    assert "" in pieces[:-1]  # 😀 spans several tokens: some pushes had to wait


def test_generate_text_streams_the_continuation(gpt2_tokenizer: TiktokenTokenizer) -> None:
    pieces, _ = scripted_text(gpt2_tokenizer, "Say:", CONTINUATION)
    assert "".join(pieces) == CONTINUATION
    assert len(pieces) > 5 and not any("\ufffd" in piece for piece in pieces)


@pytest.mark.parametrize(
    "stop_strings", [("\n\nUser:",), ("ld, 日",), ("😀",), ("never there", "wörld")]
)
def test_generate_text_stops_before_a_stop_string(
    gpt2_tokenizer: TiktokenTokenizer, stop_strings: tuple[str, ...]
) -> None:
    pieces, _ = scripted_text(gpt2_tokenizer, "Say:", CONTINUATION, stop_strings=stop_strings)
    first = min(CONTINUATION.find(s) for s in stop_strings if s in CONTINUATION)
    assert "".join(pieces) == CONTINUATION[:first]


def test_generate_text_stops_at_end_of_text(gpt2_tokenizer: TiktokenTokenizer) -> None:
    pieces, model = scripted_text(gpt2_tokenizer, "Say:", " Hi there<|endoftext|> never shown")
    assert "".join(pieces) == " Hi there"
    assert len(model.inputs) == len(gpt2_tokenizer.encode(" Hi there")) + 1  # stopped right away


def test_an_empty_prompt_starts_from_end_of_text(gpt2_tokenizer: TiktokenTokenizer) -> None:
    pieces, model = scripted_text(gpt2_tokenizer, "", " Once upon a time")
    assert "".join(pieces) == " Once upon a time"
    assert model.inputs[0] == [gpt2_tokenizer.eot_id]


def test_generate_with_config_is_reproducible_with_a_seed() -> None:
    # a byte-level tokenizer (256 bytes + <|endoftext|>) and a random GPT over its vocabulary
    tokenizer = BPETokenizer(
        {bytes([b]): b for b in range(256)}, special_tokens={"<|endoftext|>": 256}
    )
    model = GPT(
        TINY.replace(vocab_size=tokenizer.vocab_size), generator=torch.Generator().manual_seed(1)
    )
    config = SamplingConfig(temperature=1.0, top_k=40, max_new_tokens=20, seed=11)
    first = "".join(generate_with_config(model, tokenizer, "ab", config))
    assert first == "".join(generate_with_config(model, tokenizer, "ab", config))
    tokens = generate_tokens(
        model,
        tokenizer.encode("ab"),
        max_new_tokens=20,
        temperature=1.0,
        top_k=40,
        generator=torch.Generator().manual_seed(11),
        eot_id=tokenizer.eot_id,
    )
    assert first == tokenizer.decode(list(tokens))  # text = decoded tokens, U+FFFD and all
    assert first != "".join(
        generate_with_config(model, tokenizer, "ab", dataclasses.replace(config, seed=12))
    )


def test_text_after_a_prompt_reads_as_decoding_them_together() -> None:
    # the word-level tokenizer joins words with spaces: decoded alone, "ourselves" would be
    # glued to the prompt ("I had alwaysourselves")
    tokenizer = SimpleTokenizer.train("I had always thought ourselves lucky, and so on.")
    prompt_ids = tokenizer.encode("I had always")
    new_ids = tokenizer.encode("ourselves lucky, and")
    stream = TextStream(tokenizer, context_ids=prompt_ids)
    pieces = [stream.push(token) for token in new_ids] + [stream.finish()]
    assert pieces == [" ourselves", " lucky", ",", " and", ""]
    assert "I had always" + "".join(pieces) == tokenizer.decode(prompt_ids + new_ids)
