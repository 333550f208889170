"""The walkthrough's published outputs of its untrained 124M model, reproduced.

With ``init="torch-default"`` our GPT draws the same weights as the walkthrough's ``GPTModel``
from the same seed, so its printed outputs are exact oracles for the whole forward pass:
greedy continuations of chapter 4 (context 1024) and chapter 5 (context 256), and chapter 5's
validation loss on "The Verdict" before training.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scratchllm.config import GPTConfig
from scratchllm.data.windows import SlidingWindowDataset
from scratchllm.generate import generate_tokens
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import get_tokenizer

pytestmark = pytest.mark.slow  # two gpt2-small models, ~10 s


def walkthrough_model(context_length: int) -> GPT:
    torch.manual_seed(123)  # the walkthrough seeds torch's global generator, then builds
    config = GPTConfig.from_name("gpt2-small", context_length=context_length, init="torch-default")
    return GPT(config).eval()


def test_chapter_4_greedy_continuation_of_an_untrained_model(shared_data):
    tokenizer = get_tokenizer("gpt2")
    prompt = tokenizer.encode("Hello, I am")
    new = list(generate_tokens(walkthrough_model(1024), prompt, max_new_tokens=6))
    assert prompt + new == [15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267]
    assert tokenizer.decode(prompt + new) == "Hello, I am Featureiman Byeswickattribute argue"


def test_chapter_5_untrained_text_and_validation_loss(shared_data):
    tokenizer = get_tokenizer("gpt2")
    model = walkthrough_model(256)
    prompt = tokenizer.encode("Every effort moves you")
    text = tokenizer.decode(prompt + list(generate_tokens(model, prompt, max_new_tokens=10)))
    assert text == "Every effort moves you rentingetic wasnم refres RexMeCHicular stren"

    story = (shared_data / "the-verdict.txt").read_text(encoding="utf-8")
    val_text = story[int(0.9 * len(story)) :]  # the walkthrough's 90/10 cut of the characters
    windows = SlidingWindowDataset(tokenizer.encode(val_text), max_length=256, stride=256)
    inputs, targets = (torch.stack([torch.as_tensor(pair[i]) for pair in windows]) for i in (0, 1))
    with torch.no_grad():
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
    assert loss.item() == pytest.approx(10.98110580444336, abs=1e-4)  # "Validation loss: ..."
