"""`scratchllm generate`."""

from __future__ import annotations

from scratchllm.cli import main


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
