"""Offline scores: exact match, the normalized match and ROUGE-L, against hand-derived values
and a brute-force longest common subsequence."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchllm.finetune.text_scores import (
    RougeL,
    exact_match,
    longest_common_subsequence,
    normalize_text,
    normalized_match,
    rouge_l,
    score_texts,
    words,
)


def brute_force_lcs(first: list[str], second: list[str]) -> int:
    """The longest subsequence of ``first`` that is also one of ``second``, by trying them all."""

    def is_subsequence(candidate: tuple[str, ...], sequence: list[str]) -> bool:
        remaining = iter(sequence)
        return all(item in remaining for item in candidate)

    for length in range(min(len(first), len(second)), 0, -1):
        for candidate in itertools.combinations(first, length):
            if is_subsequence(candidate, second):
                return length
    return 0


@given(
    st.lists(st.sampled_from("abc"), max_size=7),
    st.lists(st.sampled_from("abc"), max_size=7),
)
def test_lcs_matches_brute_force_and_is_symmetric(first, second):
    expected = brute_force_lcs(first, second)
    assert longest_common_subsequence(first, second) == expected
    assert longest_common_subsequence(second, first) == expected


def test_rouge_l_hand_derived():
    # reference 4 words, response 5; LCS "the cat sat mat" is 4 ("on" is only in the response):
    # precision 4/5, recall 4/4, F1 2*4/(5+4) = 8/9
    scores = rouge_l("The cat sat on mat", "the cat sat mat.")
    assert scores == RougeL(precision=0.8, recall=1.0, f1=pytest.approx(8 / 9))
    # word order matters: reversed, the LCS of "a b c" and "c b a" is one word
    assert rouge_l("c b a", "a b c").f1 == pytest.approx(1 / 3)
    # identical texts, case and punctuation aside
    assert rouge_l("Hello, World!", "hello world") == RougeL(1.0, 1.0, 1.0)
    # no word in common; one side empty; both empty
    assert rouge_l("yes", "no") == RougeL(0.0, 0.0, 0.0)
    assert rouge_l("", "no") == RougeL(0.0, 0.0, 0.0)
    assert rouge_l("...", "") == RougeL(1.0, 1.0, 1.0)


def test_words_split_punctuation_and_keep_non_ascii_letters():
    assert words("Größe: 3_mal, café's") == ["größe", "3", "mal", "café", "s"]


def test_exact_and_normalized_match():
    assert exact_match("  The answer is 4.\n", "The answer is 4.")
    assert not exact_match("the answer is 4.", "The answer is 4.")
    assert normalized_match("the  answer\nis 4", "The answer is 4.")
    assert not normalized_match("The answer is 5.", "The answer is 4.")
    assert normalize_text("Wait... what?!  ") == "wait... what"
    assert normalize_text("") == ""


def test_score_texts_report():
    report = score_texts(["Paris.", "a b", ""], ["Paris.", "a c", ""], indices=[3, 5, 8])
    assert [item.index for item in report.items] == [3, 5, 8]
    assert report.mean("exact_match") == pytest.approx(2 / 3)
    assert report.mean("rouge_l_f1") == pytest.approx((1 + 0.5 + 1) / 3)
    data = report.to_dict()
    assert data["count"] == 3 and data["normalized_match"] == pytest.approx(2 / 3)
    assert data["items"][1] == {
        "index": 5,
        "exact_match": False,
        "normalized_match": False,
        "rouge_l": {"precision": 0.5, "recall": 0.5, "f1": 0.5},
    }
    with pytest.raises(ValueError, match="2 responses but 1 references"):
        score_texts(["a", "b"], ["a"])


def test_walkthrough_responses(shared_data):
    entries = json.loads((shared_data / "instruction-data-with-response.json").read_text())
    responses = [entry["model_response"] for entry in entries]
    references = [entry["output"] for entry in entries]
    report = score_texts(responses, references)
    assert len(report.items) == 110
    exact = report.mean("exact_match")
    assert exact == 17 / 110  # 17 of the walkthrough's responses repeat the reference verbatim
    assert 0 < exact <= report.mean("normalized_match") < report.mean("rouge_l_f1") < 1
    assert score_texts(references, references).mean("rouge_l_f1") == 1.0
