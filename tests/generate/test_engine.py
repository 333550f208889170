"""The continuous-batching engine: each request gets what it gets alone, whoever shares the batch.

Oracles: ``generate_tokens`` (cached and uncached) for greedy and seeded requests, the model's
full forward pass for log-probabilities, and hand-derived values for the penalties. The model
is a tiny random GPT with dropout on (the engine must switch it off).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from functools import cache

import pytest
import torch

from scratchllm.config import GPTConfig
from scratchllm.errors import ConfigError
from scratchllm.generate import Engine, SamplingParams, TokenEvent, generate_tokens
from scratchllm.generate import engine as engine_module
from scratchllm.generate.engine import prefill_groups, token_logprobs
from scratchllm.model.gpt import GPT

VOCAB, CONTEXT = 100, 64
TINY = GPTConfig(
    vocab_size=VOCAB, context_length=CONTEXT, n_embd=32, n_head=4, n_layer=2, dropout=0.1
)


@cache
def tiny_gpt() -> GPT:
    return GPT(TINY, generator=torch.Generator().manual_seed(0))


def random_prompt(length: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (length,), generator=generator).tolist()


def run_to_end(engine: Engine) -> dict[int, list[TokenEvent]]:
    """Step until no work is left; every request's events, in order."""
    events: dict[int, list[TokenEvent]] = {}
    while engine.has_work:
        step_events = engine.step()
        ids = [event.request_id for event in step_events]
        assert len(ids) == len(set(ids)), "at most one event per request per step"
        for event in step_events:
            events.setdefault(event.request_id, []).append(event)
    return events


def tokens_of(events: list[TokenEvent]) -> list[int]:
    assert all(event.finish_reason is None for event in events[:-1])
    assert events[-1].finish_reason is not None, "the last event ends the request"
    return [event.token for event in events if event.token is not None]


def alone(prompt: list[int], params: SamplingParams, *, use_cache: bool = True) -> list[int]:
    """The single-sequence generator's answer (a seed becomes its generator)."""
    generator = None if params.seed is None else torch.Generator().manual_seed(params.seed)
    return list(
        generate_tokens(
            tiny_gpt(),
            prompt,
            max_new_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            generator=generator,
            stop_ids=params.stop_ids,
            use_cache=use_cache,
        )
    )


# ---- the oracle: one request, then many ----------------------------------------------------


@pytest.mark.parametrize("use_cache", [True, False])
def test_one_greedy_request_equals_generate_tokens(use_cache):
    engine = Engine(tiny_gpt(), max_batch=2)
    prompt, params = random_prompt(7, seed=1), SamplingParams(max_new_tokens=30)
    request_id = engine.submit(prompt, params)
    events = run_to_end(engine)[request_id]
    assert tokens_of(events) == alone(prompt, params, use_cache=use_cache)
    assert len(events) == 30 and events[-1].finish_reason == "length"
    assert events[-1].token is not None  # the last token comes with its "length"
    assert not tiny_gpt().training  # eval mode: dropout is off


@pytest.mark.parametrize("prefill_tokens", [4096, 24])  # one prefill pass, or several
def test_eight_concurrent_greedy_requests_equal_each_alone(prefill_tokens, monkeypatch):
    """Prompts of 1 to 22 tokens admitted in one step share prefill passes (padded), as
    many as ``PREFILL_TOKENS`` allows: each still gets exactly its tokens alone."""
    monkeypatch.setattr(engine_module, "PREFILL_TOKENS", prefill_tokens)
    engine = Engine(tiny_gpt(), max_batch=8)
    requests = {}
    for index in range(8):
        prompt = random_prompt(1 + 3 * index, seed=10 + index)
        params = SamplingParams(max_new_tokens=5 + 4 * (index % 5))
        requests[engine.submit(prompt, params)] = (prompt, params)
    assert engine.num_waiting == 8 and engine.num_active == 0
    engine_events = run_to_end(engine)
    for request_id, (prompt, params) in requests.items():
        assert tokens_of(engine_events[request_id]) == alone(prompt, params)
    assert engine.num_active == 0 and not engine.has_work


def test_prefill_groups_keep_rows_times_the_longest_within_the_budget():
    lengths = [1, 4, 7, 10, 13, 16, 19, 22]
    groups = prefill_groups(lengths, 24)
    assert sorted(i for group in groups for i in group) == list(range(8))  # each once, in order
    assert all(len(g) * max(lengths[i] for i in g) <= 24 or len(g) == 1 for g in groups)
    assert groups == [[0, 1, 2], [3], [4], [5], [6], [7]]  # 7 x 3 fits, 13 x 2 does not
    assert prefill_groups([50], 24) == [[0]]  # longer than the budget: alone


def test_requests_join_and_leave_between_steps():
    """Three slots, seven requests: two start, more arrive mid-way, the queue drains as
    slots free; everyone gets the tokens they get alone."""
    engine = Engine(tiny_gpt(), max_batch=3, max_length=48)
    requests = {}

    def submit(length: int, seed: int, new: int) -> None:
        prompt, params = random_prompt(length, seed), SamplingParams(max_new_tokens=new)
        requests[engine.submit(prompt, params)] = (prompt, params)

    events: dict[int, list[TokenEvent]] = {}

    def step() -> None:
        for event in engine.step():
            events.setdefault(event.request_id, []).append(event)
        assert engine.num_active <= 3

    submit(5, 1, 20)
    submit(12, 2, 6)
    for _ in range(3):
        step()
    submit(3, 3, 15)  # joins while the others are mid-way
    submit(9, 4, 10)
    submit(1, 5, 25)
    submit(20, 6, 4)
    step()
    assert engine.num_active == 3 and engine.num_waiting == 3  # a queue behind full slots
    for _ in range(4):
        step()
    submit(30, 7, 8)
    events_after = run_to_end(engine)
    for request_id, more in events_after.items():
        events.setdefault(request_id, []).extend(more)
    assert events.keys() == requests.keys()
    for request_id, (prompt, params) in requests.items():
        assert tokens_of(events[request_id]) == alone(prompt, params)


# ---- sampling ----------------------------------------------------------------------------------


def test_seeded_sampling_is_the_same_alone_and_in_a_batch_and_seeds_differ():
    prompt = random_prompt(6, seed=3)
    params = SamplingParams(max_new_tokens=25, temperature=1.0, top_k=40, top_p=0.95, seed=7)
    alone_engine = Engine(tiny_gpt(), max_batch=1)
    alone_id = alone_engine.submit(prompt, params)
    by_itself = tokens_of(run_to_end(alone_engine)[alone_id])

    crowded = Engine(tiny_gpt(), max_batch=4)
    crowded.submit(random_prompt(9, seed=4), SamplingParams(max_new_tokens=30, temperature=1.0))
    crowded.submit(random_prompt(2, seed=5), SamplingParams(max_new_tokens=12))
    same_id = crowded.submit(prompt, params)
    other_id = crowded.submit(prompt, dataclasses.replace(params, seed=8))
    events = run_to_end(crowded)
    assert tokens_of(events[same_id]) == by_itself
    assert by_itself == alone(prompt, params)  # the seed means what generate_tokens' does
    assert tokens_of(events[other_id]) != by_itself


# ---- endings ----------------------------------------------------------------------------------


def test_a_stop_id_ends_with_stop_and_is_not_emitted():
    prompt = random_prompt(5, seed=20)
    free = alone(prompt, SamplingParams(max_new_tokens=20))
    stop = free[4]
    cut = free.index(stop)  # its first occurrence
    engine = Engine(tiny_gpt())
    params = SamplingParams(max_new_tokens=20, stop_ids=frozenset({stop, VOCAB + 5}))
    request_id = engine.submit(prompt, params)
    events = run_to_end(engine)[request_id]
    assert tokens_of(events) == free[:cut] == alone(prompt, params)
    final = events[-1]
    assert final == TokenEvent(request_id, None, None, (), "stop")
    assert engine.num_active == 0


def test_cancel_frees_the_slot_for_a_waiting_request():
    engine = Engine(tiny_gpt(), max_batch=1)
    first = engine.submit(random_prompt(4, seed=1), SamplingParams(max_new_tokens=40))
    second_prompt, second_params = random_prompt(6, seed=2), SamplingParams(max_new_tokens=5)
    second = engine.submit(second_prompt, second_params)
    for _ in range(3):
        assert [event.request_id for event in engine.step()] == [first]
    assert engine.num_active == 1 and engine.num_waiting == 1
    engine.cancel(first)
    assert engine.num_active == 1  # freed at the next step, not by cancel()
    events = engine.step()
    assert events[0] == TokenEvent(first, None, None, (), "cancelled")
    assert [event.request_id for event in events[1:]] == [second]  # admitted in that step
    assert engine.num_active == 1 and engine.num_waiting == 0
    rest = run_to_end(engine)
    assert tokens_of(events[1:] + rest[second]) == alone(second_prompt, second_params)
    assert first not in rest


def test_cancel_a_waiting_request_and_ignore_unknown_ids():
    engine = Engine(tiny_gpt(), max_batch=1)
    running = engine.submit(random_prompt(3, seed=1), SamplingParams(max_new_tokens=3))
    waiting = engine.submit(random_prompt(3, seed=2), SamplingParams(max_new_tokens=3))
    engine.cancel(waiting)
    engine.cancel(12345)  # never submitted: nothing happens
    events = run_to_end(engine)
    assert events[waiting] == [TokenEvent(waiting, None, None, (), "cancelled")]
    assert len(tokens_of(events[running])) == 3
    engine.cancel(running)  # already finished: ignored too
    assert engine.step() == [] and not engine.has_work


def test_zero_new_tokens_and_a_full_window_end_with_length():
    engine = Engine(tiny_gpt(), max_batch=2, max_length=12)
    nothing = engine.submit([1, 2, 3], SamplingParams(max_new_tokens=0))
    prompt = random_prompt(8, seed=9)
    fills = engine.submit(prompt, SamplingParams(max_new_tokens=4))  # exactly max_length
    events = run_to_end(engine)
    assert events[nothing] == [TokenEvent(nothing, None, None, (), "length")]
    assert tokens_of(events[fills]) == alone(prompt, SamplingParams(max_new_tokens=4))
    assert events[fills][-1].finish_reason == "length"


# ---- log-probabilities --------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.0, 1.5])
def test_logprobs_are_the_models_log_softmax(temperature):
    """Checked against a full forward pass over prompt + tokens so far: the raw logits'
    log_softmax, whatever temperature and penalties did to the pick."""
    model = tiny_gpt()
    engine = Engine(model, max_batch=2)
    prompt = random_prompt(5, seed=30)
    params = SamplingParams(
        max_new_tokens=10,
        temperature=temperature,
        seed=1,
        top_logprobs=5,
        frequency_penalty=0.5,
    )
    request_id = engine.submit(prompt, params)
    engine.submit(random_prompt(9, seed=31), SamplingParams(max_new_tokens=10, top_logprobs=2))
    events = run_to_end(engine)[request_id]
    sequence = list(prompt)
    for event in events:
        with torch.inference_mode():
            logits = model(torch.tensor([sequence]))[0, -1]
        expected = torch.log_softmax(logits, dim=-1)
        assert event.logprob == pytest.approx(expected[event.token].item(), abs=1e-5)
        assert event.logprob <= 0
        assert len(event.top_logprobs) == 5
        values = [logprob for _, logprob in event.top_logprobs]
        assert values == sorted(values, reverse=True)
        best_values, best_ids = expected.topk(5)
        assert [token for token, _ in event.top_logprobs] == best_ids.tolist()
        assert values == pytest.approx(best_values.tolist(), abs=1e-5)
        sequence.append(event.token)


def test_token_logprobs_without_alternatives():
    logits = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]])
    chosen, top = token_logprobs(logits, torch.tensor([1, 0]), 0)
    assert chosen.tolist() == pytest.approx([math.log(0.75), math.log(0.5)])
    assert top == [(), ()]
    _, top = token_logprobs(logits, torch.tensor([1, 0]), 10)  # more than the vocabulary: all
    assert [len(row) for row in top] == [2, 2]


# ---- penalties ---------------------------------------------------------------------------------


def distinct_fraction(tokens: list[int]) -> float:
    return len(set(tokens)) / len(tokens)


@pytest.mark.parametrize("penalty", ["frequency_penalty", "presence_penalty"])
def test_a_large_penalty_stops_greedy_repetition(penalty):
    prompt = random_prompt(4, seed=40)
    plain = alone(prompt, SamplingParams(max_new_tokens=40))
    assert distinct_fraction(plain) < 0.8, "the tiny model repeats itself when greedy"
    engine = Engine(tiny_gpt(), max_batch=1)
    params = SamplingParams(max_new_tokens=40, **{penalty: 100.0})
    first = engine.submit(prompt, params)
    again = engine.submit(prompt, params)  # the same slot after the first: counts start over
    events = run_to_end(engine)
    penalised = tokens_of(events[first])
    assert distinct_fraction(penalised) == 1.0  # no token twice
    assert tokens_of(events[again]) == penalised


def test_penalties_count_only_this_requests_completion():
    """A penalised request next to an unpenalised one: the neighbour is untouched."""
    prompt = random_prompt(4, seed=40)
    engine = Engine(tiny_gpt(), max_batch=2)
    penalised = engine.submit(prompt, SamplingParams(max_new_tokens=20, frequency_penalty=100))
    plain = engine.submit(prompt, SamplingParams(max_new_tokens=20))
    events = run_to_end(engine)
    assert tokens_of(events[plain]) == alone(prompt, SamplingParams(max_new_tokens=20))
    assert tokens_of(events[penalised]) != tokens_of(events[plain])


# ---- validation and threads -------------------------------------------------------------------


def test_submit_rejects_bad_prompts():
    engine = Engine(tiny_gpt(), max_length=16)
    with pytest.raises(ConfigError, match="no tokens"):
        engine.submit([], SamplingParams(max_new_tokens=1))
    with pytest.raises(ConfigError, match=r"10 tokens and max_new_tokens is 7: 17 positions.*16"):
        engine.submit(list(range(10)), SamplingParams(max_new_tokens=7))
    with pytest.raises(ConfigError, match="shorten the prompt"):
        engine.submit(list(range(20)), SamplingParams(max_new_tokens=1))
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        engine.submit([1, VOCAB], SamplingParams(max_new_tokens=1))
    assert engine.num_waiting == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": -1.0}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"seed": -3}, "seed"),
        ({"presence_penalty": math.nan}, "presence_penalty"),
        ({"frequency_penalty": math.inf}, "frequency_penalty"),
        ({"top_logprobs": -1}, "top_logprobs"),
    ],
)
def test_sampling_params_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        SamplingParams(**{"max_new_tokens": 4, **options})


def test_sampling_params_store_stop_ids_as_a_frozenset():
    assert SamplingParams(max_new_tokens=1, stop_ids=[3, 3, 4]).stop_ids == frozenset({3, 4})


def test_engine_options_are_validated_and_caches_follow_the_model():
    with pytest.raises(ConfigError, match="max_batch"):
        Engine(tiny_gpt(), max_batch=0)
    with pytest.raises(ConfigError, match="max_length"):
        Engine(tiny_gpt(), max_length=CONTEXT + 1)
    model = GPT(TINY, generator=torch.Generator().manual_seed(0)).to(torch.float64)
    engine = Engine(model, max_batch=3, max_length=20)
    assert engine.max_batch == 3 and engine.max_length == 20
    caches = engine._caches
    assert caches[0].k.shape == (3, TINY.n_head, 20, TINY.head_dim)
    assert caches[0].k.dtype == torch.float64
    request_id = engine.submit([1, 2], SamplingParams(max_new_tokens=3, top_logprobs=1))
    assert len(tokens_of(run_to_end(engine)[request_id])) == 3


def test_submit_and_cancel_from_another_thread_while_a_worker_steps():
    engine = Engine(tiny_gpt(), max_batch=3)
    events: dict[int, list[TokenEvent]] = {}
    done = threading.Event()

    def worker() -> None:
        while not done.is_set() or engine.has_work:
            for event in engine.step():
                events.setdefault(event.request_id, []).append(event)

    thread = threading.Thread(target=worker)
    thread.start()
    requests, cancelled = {}, set()
    try:
        for index in range(12):
            prompt = random_prompt(2 + index, seed=50 + index)
            to_cancel = index % 4 == 3  # long, so that the cancel comes before its end
            params = SamplingParams(max_new_tokens=60 - index if to_cancel else 6 + index % 4)
            request_id = engine.submit(prompt, params)
            requests[request_id] = (prompt, params)
            if to_cancel:
                engine.cancel(request_id)
                cancelled.add(request_id)
    finally:
        done.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert events.keys() == requests.keys()  # every request ended exactly once
    for request_id, (prompt, params) in requests.items():
        finals = [event for event in events[request_id] if event.finish_reason is not None]
        assert len(finals) == 1 and finals[0] is events[request_id][-1]
        expected = alone(prompt, params)
        if request_id in cancelled:
            assert finals[0].finish_reason == "cancelled"
            got = tokens_of(events[request_id])
            assert got == expected[: len(got)]
        else:
            assert tokens_of(events[request_id]) == expected
