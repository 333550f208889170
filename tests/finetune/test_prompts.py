"""Prompt formats: the walkthrough's Alpaca template, as its chapter 7 prints it."""

from __future__ import annotations

import json

import pytest

from scratchllm.errors import ConfigError
from scratchllm.finetune.prompts import PROMPT_FORMATS, get_prompt_format

# the walkthrough's chapter 7 prints entry 50 (with an input) and 999 (without) like this
PUBLISHED_50 = """Below is an instruction that describes a task. Write a response that \
appropriately completes the request.

### Instruction:
Identify the correct spelling of the following word.

### Input:
Ocassion

### Response:
The correct spelling is 'Occasion.'"""

PUBLISHED_999 = """Below is an instruction that describes a task. Write a response that \
appropriately completes the request.

### Instruction:
What is an antonym of 'complicated'?

### Response:
An antonym of 'complicated' is 'simple'."""


@pytest.mark.parametrize(("index", "published"), [(50, PUBLISHED_50), (999, PUBLISHED_999)])
def test_alpaca_prints_the_walkthroughs_examples(shared_data, index, published):
    entry = json.loads((shared_data / "instruction-data.json").read_text())[index]
    alpaca = get_prompt_format("alpaca")
    assert alpaca.prompt(entry["instruction"], entry["input"]) + entry["output"] == published


def test_a_chat_format_marks_the_turns():
    phi3 = PROMPT_FORMATS["phi3"]
    assert phi3.prompt("Add 2 and 3.", "") == "<|user|>\nAdd 2 and 3.\n<|assistant|>\n"
    assert phi3.prompt("Translate.", "Hallo") == "<|user|>\nTranslate.\nHallo\n<|assistant|>\n"


def test_an_unknown_format_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown prompt format 'chatml'; known formats: alpaca"):
        get_prompt_format("chatml")
