"""Sampling filters and draws: hand-derived cases, properties, and torch's own ops as oracles."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scratchllm.errors import ConfigError
from scratchllm.generate.sampling import (
    SamplingConfig,
    apply_penalties,
    apply_temperature,
    greedy,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)

NEG_INF = float("-inf")

# rows of logits (B, V): small vocabularies, values that make ties likely (integers / 4)
logit_rows = st.integers(min_value=2, max_value=12).flatmap(
    lambda vocab: st.lists(
        st.lists(st.integers(-12, 12).map(lambda x: x / 4), min_size=vocab, max_size=vocab),
        min_size=1,
        max_size=3,
    )
)


def as_tensor(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# ---- greedy and temperature ---------------------------------------------------------------


def test_greedy_is_argmax_and_breaks_ties_towards_the_lower_id() -> None:
    logits = torch.tensor([[0.0, 2.0, 2.0, 1.0], [5.0, -1.0, 5.0, 5.0]])
    assert greedy(logits).tolist() == [1, 0]


def test_temperature_scales_the_distribution_like_dividing_the_logits() -> None:
    logits = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    for temperature in (0.5, 1.0, 2.0):
        expected = torch.softmax(logits / temperature, dim=-1)  # oracle: the plain definition
        actual = torch.softmax(apply_temperature(logits, temperature), dim=-1)
        torch.testing.assert_close(actual, expected)
    with pytest.raises(ConfigError, match="temperature"):
        apply_temperature(logits, 0.0)


def test_tiny_temperatures_do_not_overflow() -> None:
    logits = torch.tensor([[100.0, 99.0, -50.0]])
    probabilities = torch.softmax(apply_temperature(logits, 1e-30), dim=-1)
    assert probabilities.tolist() == [[1.0, 0.0, 0.0]]


@settings(max_examples=100, deadline=None)
@given(rows=logit_rows, seed=st.integers(0, 2**32))
def test_temperature_towards_zero_equals_greedy(rows: list[list[float]], seed: int) -> None:
    logits = as_tensor(rows)
    expected = greedy(logits)
    generator = torch.Generator().manual_seed(seed)
    assert torch.equal(sample_next_token(logits, temperature=0.0), expected)
    # ties aside (a tie stays a coin flip at any temperature), a small temperature is greedy:
    # logits differ by >= 0.25 here, so exp(-0.25 / 1e-3) underflows to exactly 0
    top_two = logits.topk(2, dim=-1).values
    assume(bool((top_two[:, 0] > top_two[:, 1]).all()))
    sampled = sample_next_token(logits, temperature=1e-3, generator=generator)
    assert torch.equal(sampled, expected)


# ---- top-k ----------------------------------------------------------------------------------


def test_top_k_hand_example_and_ties() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 3.0, 0.0]])
    assert top_k_filter(logits, 2).tolist() == [[NEG_INF, 3.0, NEG_INF, 3.0, NEG_INF]]
    assert top_k_filter(logits, 3).tolist() == [[NEG_INF, 3.0, 2.0, 3.0, NEG_INF]]
    # four equal logits, k = 2: the two lowest ids stay, every time
    assert top_k_filter(torch.zeros(1, 4), 2).tolist() == [[0.0, 0.0, NEG_INF, NEG_INF]]
    assert torch.equal(top_k_filter(logits, 99), logits)
    with pytest.raises(ConfigError, match="top_k"):
        top_k_filter(logits, 0)


@settings(max_examples=100, deadline=None)
@given(rows=logit_rows, k=st.integers(min_value=1, max_value=14))
def test_top_k_keeps_at_most_k_and_they_are_the_largest(rows: list[list[float]], k: int) -> None:
    logits = as_tensor(rows)
    filtered = top_k_filter(logits, k)
    kept = torch.isfinite(filtered)
    vocab = logits.shape[-1]
    assert (kept.sum(dim=-1) == min(k, vocab)).all()
    assert torch.equal(filtered[kept], logits[kept])  # kept logits are unchanged
    for row, row_kept in zip(logits, kept, strict=True):
        # oracle: torch.topk's values (its tie order is unspecified, its values are not)
        expected_values = torch.topk(row, min(k, vocab)).values.sort().values
        assert torch.equal(row[row_kept].sort().values, expected_values)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(st.sampled_from([-math.inf, -1.0, 0.0, 0.5, 2.0]), min_size=12,
                           max_size=12), min_size=1, max_size=3),
    k=st.integers(min_value=1, max_value=13),
)  # fmt: skip
def test_top_k_keeps_what_a_stable_sort_keeps(rows: list[list[float]], k: int) -> None:
    """Oracle for the ties: the first k ids of a stable descending sort (what the filter did
    before it used torch.topk to find the k-th value without sorting the vocabulary)."""
    logits = torch.tensor(rows)
    order = torch.sort(logits, dim=-1, descending=True, stable=True).indices
    expected = logits.scatter(-1, order[..., k:], float("-inf")) if k < 12 else logits
    assert torch.equal(top_k_filter(logits, k), expected)


# ---- top-p ----------------------------------------------------------------------------------


def test_top_p_hand_example() -> None:
    # probabilities 0.5, 0.25, 0.125, 0.125 (logits ln 4, ln 2, 0, 0), shuffled in id order
    logits = torch.tensor([[0.0, math.log(4), 0.0, math.log(2)]])

    def kept(p: float) -> list[int]:
        return torch.isfinite(top_p_filter(logits, p))[0].nonzero().flatten().tolist()

    assert kept(0.3) == [1]  # 0.5 alone reaches 0.3
    assert kept(0.5) == [1]  # ... and exactly 0.5 ("reaches" includes equality)
    assert kept(0.7) == [1, 3]  # 0.5 + 0.25 = 0.75 >= 0.7
    assert kept(0.8) == [0, 1, 3]  # of the two tied 0.125s, the lower id comes first
    assert kept(0.9) == [0, 1, 2, 3]
    assert kept(1.0) == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="top_p"):
        top_p_filter(logits, 0.0)


@settings(max_examples=100, deadline=None)
@given(rows=logit_rows, p=st.floats(min_value=0.01, max_value=1.0))
def test_top_p_keeps_the_smallest_prefix_reaching_p(rows: list[list[float]], p: float) -> None:
    logits = as_tensor(rows)
    filtered = top_p_filter(logits, p)
    for row, filtered_row in zip(logits, filtered, strict=True):
        # oracle in float64: sort (stable, so ties by id), take the shortest prefix reaching p
        probabilities = torch.softmax(row.double(), dim=-1)
        order = torch.sort(probabilities, descending=True, stable=True).indices
        cumulative = probabilities[order].cumsum(0)
        assume(bool((cumulative - p).abs().min() > 1e-5))  # no float32 rounding at the border
        size = int((cumulative < p).sum()) + 1
        expected = sorted(order[:size].tolist())
        actual = torch.isfinite(filtered_row).nonzero().flatten().tolist()
        assert actual == expected
        assert torch.equal(filtered_row[actual], row[actual])


# ---- drawing --------------------------------------------------------------------------------


def draws(logits: torch.Tensor, seed: int, count: int, **options: object) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    batch = logits.expand(count, -1)  # one independent draw per row
    return sample_next_token(batch, generator=generator, **options).tolist()


def test_same_seed_same_samples_other_seed_differs() -> None:
    flat = torch.zeros(1, 100)
    first = draws(flat, seed=1, count=30, temperature=1.0)
    assert first == draws(flat, seed=1, count=30, temperature=1.0)
    assert first != draws(flat, seed=2, count=30, temperature=1.0)  # equal: p = 1e-60
    assert len(set(first)) > 10  # a flat distribution really spreads


def test_draw_frequencies_follow_the_softmax() -> None:
    probabilities = torch.tensor([0.5, 0.3, 0.2])
    samples = draws(probabilities.log().unsqueeze(0), seed=0, count=20_000, temperature=1.0)
    frequencies = torch.bincount(torch.tensor(samples), minlength=3) / len(samples)
    # standard error of a frequency near 0.5 over 20,000 draws is 0.0035; allow ~4 of them
    torch.testing.assert_close(frequencies, probabilities, rtol=0, atol=0.015)


@settings(max_examples=60, deadline=None)
@given(
    rows=logit_rows,
    top_k=st.none() | st.integers(1, 6),
    top_p=st.none() | st.floats(0.05, 1.0),
    temperature=st.floats(0.1, 3.0),
    seed=st.integers(0, 2**32),
)
def test_sampling_never_picks_a_filtered_out_token(
    rows: list[list[float]], top_k: int | None, top_p: float | None, temperature: float, seed: int
) -> None:
    logits = as_tensor(rows)[:1]
    allowed = apply_temperature(logits, temperature)
    if top_k is not None:
        allowed = top_k_filter(allowed, top_k)
    if top_p is not None:
        allowed = top_p_filter(allowed, top_p)
    allowed_ids = set(torch.isfinite(allowed)[0].nonzero().flatten().tolist())
    options = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    assert set(draws(logits, seed=seed, count=500, **options)) <= allowed_ids


# ---- SamplingConfig -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"seed": -1}, "seed"),
        ({"stop_strings": ("",)}, "stop strings"),
    ],
)
def test_sampling_config_rejects_bad_values(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SamplingConfig(**options)


def test_sampling_config_defaults_and_seeded_generator() -> None:
    config = SamplingConfig(stop_strings=["\n\n"], seed=7)  # a list, as from JSON
    assert config.stop_strings == ("\n\n",)
    assert config.temperature == 0.0  # greedy by default
    first, second = config.make_generator(), config.make_generator()
    assert torch.equal(torch.rand(5, generator=first), torch.rand(5, generator=second))
    assert SamplingConfig().make_generator() is None


# ---- penalties (OpenAI's presence and frequency) -------------------------------------------


def test_penalties_by_hand_per_row():
    """Row 0: token 1 used 3 times, token 3 once; presence 1, frequency 0.5:
    token 1: 4 - 1 - 1.5 = 1.5, token 3: 2 - 1 - 0.5 = 0.5. Row 1: presence 0, frequency -1
    (encourages repetition): token 0 used twice: 1 + 2 = 3. Unused tokens keep their logits."""
    logits = torch.tensor([[1.0, 4.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    counts = torch.tensor([[0, 3, 0, 1], [2, 0, 0, 0]])
    penalised = apply_penalties(logits, counts, torch.tensor([1.0, 0.0]), torch.tensor([0.5, -1.0]))
    assert penalised.tolist() == [[1.0, 1.5, 0.0, 0.5], [3.0, 1.0, 1.0, 1.0]]
    assert torch.equal(apply_penalties(logits, torch.zeros_like(counts), 2.0, 2.0), logits)
    assert logits.tolist()[0] == [1.0, 4.0, 0.0, 2.0]  # not modified in place
