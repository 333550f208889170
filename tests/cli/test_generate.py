"""`scratchllm generate`."""

from __future__ import annotations

import pytest
import torch

from scratchllm.cli import main
from scratchllm.config import GPTConfig
from scratchllm.generate import generate_tokens
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import SimpleTokenizer
from scratchllm.weights.checkpoint import load_checkpoint, save_checkpoint


def test_generate_greedy_is_deterministic_and_streams_the_same(untrained_checkpoint, capsys):
    args = ["generate", "--checkpoint", str(untrained_checkpoint), "--prompt", "The cat"]
    assert main([*args, "--max-new-tokens", "8"]) == 0
    first = capsys.readouterr().out
    assert main([*args, "--max-new-tokens", "8", "--stream"]) == 0
    streamed = capsys.readouterr().out
    assert first == streamed
    assert first.startswith("The cat") and len(first) > len("The cat\n")
    sampled = [*args, "--max-new-tokens", "8", "--temperature", "1", "--top-k", "20"]
    assert main([*sampled, "--seed", "3"]) == 0
    assert main([*sampled, "--seed", "3"]) == 0
    one, two = capsys.readouterr().out.splitlines()
    assert one == two


def test_generate_without_a_checkpoint_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "none"), "--prompt", "x"]) == 2
    assert "not a scratchllm checkpoint" in capsys.readouterr().err


def test_sampling_flags_at_temperature_zero_are_pointed_out(untrained_checkpoint, capsys):
    args = ["generate", "--checkpoint", str(untrained_checkpoint), "--prompt", "The cat"]
    assert main([*args, "--max-new-tokens", "5"]) == 0
    greedy = capsys.readouterr()
    assert greedy.err == ""
    assert main([*args, "--max-new-tokens", "5", "--top-k", "3", "--seed", "7"]) == 0
    flagged = capsys.readouterr()
    assert flagged.out == greedy.out  # greedy all the same
    assert flagged.err == (
        "warning: --top-k, --seed do nothing at temperature 0, which always picks the most "
        "likely token; give --temperature above 0 to sample\n"
    )


@pytest.fixture
def word_level_checkpoint(tmp_path, shared_data):
    """An untrained cpu-tiny GPT with the word-level tokenizer of "The Verdict"."""
    verdict = (shared_data / "the-verdict.txt").read_text(encoding="utf-8")
    tokenizer = SimpleTokenizer.train(verdict)
    config = GPTConfig.from_name("cpu-tiny", vocab_size=tokenizer.vocab_size)
    model = GPT(config, generator=torch.Generator().manual_seed(5))
    return save_checkpoint(tmp_path / "words", model, tokenizer)


@pytest.mark.parametrize("stream", [[], ["--stream"]])
def test_word_level_text_is_spaced_as_decoded_together(word_level_checkpoint, stream, capsys):
    prompt = "I had always"
    args = ["generate", "--checkpoint", str(word_level_checkpoint), "--prompt", prompt]
    assert main([*args, "--max-new-tokens", "12", *stream]) == 0
    printed = capsys.readouterr().out.removesuffix("\n")
    model, tokenizer = load_checkpoint(word_level_checkpoint)
    prompt_ids = tokenizer.encode(prompt, allowed_special="all")
    new_ids = list(generate_tokens(model, prompt_ids, max_new_tokens=12, eot_id=tokenizer.eot_id))
    assert len(new_ids) == 12
    assert printed == tokenizer.decode(prompt_ids + new_ids)


def test_a_prompt_longer_than_the_window_is_one_warning_line(untrained_checkpoint, capsys):
    prompt = "The cat sat on the mat. " * 40
    tokenizer = load_checkpoint(untrained_checkpoint)[1]
    count = len(tokenizer.encode(prompt))
    assert count > 128  # cpu-tiny's window
    args = ["generate", "--checkpoint", str(untrained_checkpoint), "--prompt", prompt]
    assert main([*args, "--max-new-tokens", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(prompt)
    assert captured.err == (
        f"warning: the prompt has {count} tokens but the model sees at most 128; keeping its "
        "last 128\n"
    )


def test_an_instruction_checkpoint_is_prompted_in_its_format(
    untrained_checkpoint, tmp_path, capsys
):
    import torch

    from scratchllm.finetune.prompts import PROMPT_FORMATS
    from scratchllm.generate import SamplingConfig, generate_with_config
    from scratchllm.weights.checkpoint import load_checkpoint, save_checkpoint

    model, tokenizer = load_checkpoint(untrained_checkpoint)
    save_checkpoint(tmp_path / "instruct", model, tokenizer, prompt_format="phi3")
    argv = ["generate", "--checkpoint", str(tmp_path / "instruct"), "--prompt", "Name a cat.",
            "--input", "the mat", "--max-new-tokens", "6"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    prompt = PROMPT_FORMATS["phi3"].prompt("Name a cat.", "the mat")
    torch.manual_seed(0)
    expected = "".join(generate_with_config(model, tokenizer, prompt,
                                            SamplingConfig(max_new_tokens=6))).strip()  # fmt: skip
    assert out == expected + "\n"
    assert main([*argv[:-4], "--raw"]) == 0  # --raw continues the text as it is
    raw = capsys.readouterr().out
    assert raw.startswith("Name a cat.")
