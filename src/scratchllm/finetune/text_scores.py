"""Scores of a response against its reference answer that need no judge model.

A judge (``scratchllm.judge``) reads meaning; these only compare text, so they are free,
instant and exactly reproducible, and a useful floor under the judge's number:

- **exact match**: the response equals the reference once surrounding whitespace is stripped;
- **normalized match**: equal after ``normalize_text`` (lowercase, whitespace collapsed, final
  punctuation dropped), so "The answer is 4." matches "the answer is 4";
- **ROUGE-L** (Lin, 2004): the longest common subsequence (LCS) of the two texts' words, as a
  precision (``LCS / response words``), a recall (``LCS / reference words``) and their F1,
  which is ``2 * LCS / (response words + reference words)``. Words are ``words(text)``:
  lowercase runs of letters and digits, as Google's ``rouge_score`` tokenizes (without its
  stemmer, and keeping non-ASCII letters).

Two empty texts are identical: every score is 1. An empty text against a non-empty one scores 0.
Nothing here imports torch: ``scratchllm score`` runs in a moment.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

_WORD = re.compile(r"[^\W_]+")  # letters and digits; punctuation and "_" split words
_FINAL_PUNCTUATION = string.punctuation + "…。！？"


def exact_match(response: str, reference: str) -> bool:
    """Equal once surrounding whitespace is stripped.

    >>> exact_match(" Paris.\\n", "Paris."), exact_match("Paris", "Paris.")
    (True, False)
    """
    return response.strip() == reference.strip()


def normalize_text(text: str) -> str:
    """Lowercase, runs of whitespace made one space, final punctuation (and the spaces
    around it) dropped.

    >>> normalize_text("  The answer\\n is   4. ")
    'the answer is 4'
    >>> normalize_text("Really?!")
    'really'
    """
    return " ".join(text.lower().split()).rstrip(_FINAL_PUNCTUATION + " ")


def normalized_match(response: str, reference: str) -> bool:
    """Equal after ``normalize_text``.

    >>> normalized_match("the answer is 4", "The answer is 4.")
    True
    """
    return normalize_text(response) == normalize_text(reference)


def words(text: str) -> list[str]:
    """The lowercase words of ``text``: runs of letters and digits.

    >>> words("The car's as fast as lightning, 100%!")
    ['the', 'car', 's', 'as', 'fast', 'as', 'lightning', '100']
    """
    return _WORD.findall(text.lower())


def longest_common_subsequence(first: Sequence[str], second: Sequence[str]) -> int:
    """The length of the longest sequence found, in order but not necessarily adjacent, in
    both: the classic dynamic programme, one row at a time (memory ``O(len(second))``).

    >>> longest_common_subsequence("a b c d".split(), "a c b d".split())  # a b d, or a c d
    3
    """
    previous = [0] * (len(second) + 1)  # previous[j]: LCS of first[:i] and second[:j]
    for item in first:
        current = [0]
        for j, other in enumerate(second):
            if item == other:
                current.append(previous[j] + 1)
            else:
                current.append(max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class RougeL:
    """ROUGE-L of a response against a reference."""

    precision: float  # LCS / response words
    recall: float  # LCS / reference words
    f1: float  # their harmonic mean, 2 LCS / (response words + reference words)


def rouge_l(response: str, reference: str) -> RougeL:
    """ROUGE-L between the words of ``response`` and of ``reference``.

    Worked example (the first entry of the walkthrough's test set): the reference "The car is
    as fast as lightning." has 7 words, the response "The car is as fast as a bullet." 8; their
    LCS is "the car is as fast as", 6 words, so precision 6/8, recall 6/7 and F1 12/15:

    >>> rouge_l("The car is as fast as a bullet.", "The car is as fast as lightning.")
    RougeL(precision=0.75, recall=0.8571428571428571, f1=0.8)
    """
    response_words, reference_words = words(response), words(reference)
    if not response_words and not reference_words:
        return RougeL(1.0, 1.0, 1.0)
    common = longest_common_subsequence(response_words, reference_words)
    if common == 0:
        return RougeL(0.0, 0.0, 0.0)
    return RougeL(
        precision=common / len(response_words),
        recall=common / len(reference_words),
        f1=2 * common / (len(response_words) + len(reference_words)),
    )


# ---- a whole responses file ---------------------------------------------------------------------


@dataclass(frozen=True)
class TextScores:
    """One response's scores against its reference."""

    index: int  # the entry's position in the responses file
    exact_match: bool
    normalized_match: bool
    rouge_l: RougeL


@dataclass(frozen=True)
class TextScoreReport:
    """Every response's scores, in file order, and their means."""

    items: tuple[TextScores, ...]

    def mean(self, name: str) -> float:
        """The mean of ``exact_match``, ``normalized_match`` or ``rouge_l_f1`` over the items."""
        values = [_value(item, name) for item in self.items]
        return sum(values) / len(values) if values else 0.0

    def summary(self) -> str:
        """One line with the three means.

        >>> report = score_texts(["Paris.", "a b"], ["paris", "a c"])
        >>> report.summary()
        '2 responses: exact match 0.000, normalized match 0.500, ROUGE-L F1 0.750'
        """
        return (
            f"{len(self.items)} responses: exact match {self.mean('exact_match'):.3f}, "
            f"normalized match {self.mean('normalized_match'):.3f}, "
            f"ROUGE-L F1 {self.mean('rouge_l_f1'):.3f}"
        )

    def to_dict(self) -> dict[str, Any]:
        names = ("exact_match", "normalized_match", "rouge_l_f1")
        return {
            "count": len(self.items),
            **{name: self.mean(name) for name in names},
            "items": [
                {
                    "index": item.index,
                    "exact_match": item.exact_match,
                    "normalized_match": item.normalized_match,
                    "rouge_l": asdict(item.rouge_l),
                }
                for item in self.items
            ],
        }


def _value(item: TextScores, name: str) -> float:
    if name == "rouge_l_f1":
        return item.rouge_l.f1
    if name in ("exact_match", "normalized_match"):
        return float(getattr(item, name))
    raise ValueError(f"unknown score {name!r}")


def score_texts(
    responses: Sequence[str], references: Sequence[str], *, indices: Sequence[int] | None = None
) -> TextScoreReport:
    """Each response scored against the reference at the same position; ``indices`` (default
    0, 1, ...) name them in the report."""
    if len(responses) != len(references):
        raise ValueError(f"{len(responses)} responses but {len(references)} references")
    indices = range(len(responses)) if indices is None else indices
    return TextScoreReport(
        tuple(
            TextScores(
                index,
                exact_match(response, reference),
                normalized_match(response, reference),
                rouge_l(response, reference),
            )
            for index, response, reference in zip(indices, responses, references, strict=True)
        )
    )
