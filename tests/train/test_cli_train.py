"""`scratchllm train`, `eval` and `generate` without --checkpoint, end to end."""

from __future__ import annotations

import json
import math

import pytest

from scratchllm.cli import main
from scratchllm.config import TrainConfig


def tiny_flags(prepared_dir) -> list[str]:
    return [
        "--data", str(prepared_dir), "--model", "cpu-tiny", "--n-layer", "2", "--n-embd", "32",
        "--n-head", "4", "--batch-size", "4", "--eval-batches", "2", "--threads", "1",
        "--no-progress",
    ]  # fmt: skip


def test_train_then_generate_and_eval_use_the_latest_run(
    tmp_path, monkeypatch, prepared_dir, corpus_file, capsys
):
    monkeypatch.chdir(tmp_path)  # the default out/runs/ lands here
    config = tmp_path / "run.toml"
    config.write_text(
        'name = "cli"\nmax_steps = 50\neval_every = 3\n[model]\ncontext_length = 16\n'
    )
    # the file sets 50 steps, the flag wins
    args = ["train", "--config", str(config), *tiny_flags(prepared_dir), "--max-steps", "3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "step 3/3" in out and "unigram baseline" in out
    run_dir = tmp_path / "out" / "runs" / "cli"
    saved = TrainConfig.from_toml(run_dir / "train.toml")
    assert (saved.max_steps, saved.eval_every, saved.model_overrides["context_length"]) == (
        3,
        3,
        16,
    )

    assert main(["generate", "--prompt", "the cat", "--max-new-tokens", "5"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("the cat")
    assert "out/runs/cli/checkpoints/step-0000003" in captured.err  # which one it used

    assert main(["eval", "--corpus", str(corpus_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["perplexity"] == pytest.approx(math.exp(report["loss"]))
    bits = report["loss"] * report["tokens"] / math.log(2) / report["bytes"]
    assert report["bits_per_byte"] == pytest.approx(bits)
    assert report["bytes"] == len(corpus_file.read_bytes())


def test_resume_on_the_command_line(tmp_path, prepared_dir, capsys):
    out_dir = str(tmp_path / "runs")
    common = [*tiny_flags(prepared_dir), "--context-length", "16", "--out-dir", out_dir]
    assert main(["train", *common, "--name", "r", "--max-steps", "2", "--eval-every", "2"]) == 0
    run_dir = tmp_path / "runs" / "r"
    assert main(["train", "--resume", str(run_dir), "--max-steps", "4", "--no-progress"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert main(["train", "--resume", str(run_dir), "--lr", "0.5"]) == 2
    assert "cannot change lr" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--lr", "-1"], "lr must be a positive number"),
        (["train", "--resume", "/no/such/run"], "not a training run folder"),
        (["train", "--config", "/no/such.toml"], "no config file"),
    ],
)
def test_train_mistakes_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_generate_without_any_run_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--prompt", "x"]) == 2
    assert "scratchllm train" in capsys.readouterr().err


def test_help_tells_resume_from_init_from(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--resume RUN_DIR continue the run" in help_text
    assert "To start a NEW run from a model's weights, use --init-from" in help_text
    assert "fresh optimizer, step 0" in help_text and "torchrun" in help_text
