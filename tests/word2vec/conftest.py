"""A synthetic corpus whose geometry is known: two groups of words that share contexts."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

ANIMALS = ("cat", "dog", "horse", "cow", "sheep")
TOOLS = ("hammer", "saw", "drill", "wrench", "chisel")
# each group has its own context words; "the", "a" and "in" appear in both
ANIMAL_TEMPLATES = (
    "the {} eats grass in the field",
    "a {} sleeps in the barn",
    "the farmer feeds the {} hay",
)
TOOL_TEMPLATES = (
    "the {} cuts wood in the shed",
    "a {} fixes metal on the bench",
    "the carpenter sharpens the {} blade",
)


def synthetic_sentences(count: int = 1500, seed: int = 0) -> list[list[str]]:
    """``count`` sentences, half about animals and half about tools, as lists of words."""
    rng = random.Random(seed)
    sentences = []
    for index in range(count):
        members, templates = (ANIMALS, ANIMAL_TEMPLATES) if index % 2 else (TOOLS, TOOL_TEMPLATES)
        sentences.append(rng.choice(templates).format(rng.choice(members)).split())
    rng.shuffle(sentences)
    return sentences


@dataclass(frozen=True)
class SyntheticCorpus:
    sentences: list[list[str]]
    animals: tuple[str, ...] = ANIMALS
    tools: tuple[str, ...] = TOOLS


@pytest.fixture(scope="session")
def synthetic() -> SyntheticCorpus:
    return SyntheticCorpus(synthetic_sentences())
