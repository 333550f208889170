"""`scratchllm train` flags that a prepared folder or a checkpoint would make meaningless."""

from __future__ import annotations

import pytest

from scratchllm.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--data", "prepared/", "--tokenizer", "gpt2"],
            "--tokenizer would be ignored with --data: the prepared folder brings its own",
        ),
        (
            ["--data", "prepared/", "--corpus", "the-verdict", "--split", "characters"],
            "--corpus, --split would be ignored with --data",
        ),
        (
            ["--init-from", "out/runs/x", "--tokenizer", "bpe:512"],
            "--tokenizer would be ignored with --init-from: the checkpoint brings its own",
        ),
    ],
)
def test_flags_the_run_would_ignore_are_refused(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # refused before a run folder was made


def test_a_config_files_settings_are_not_flags(tmp_path, monkeypatch, capsys):
    # a file may set a tokenizer for its corpus runs; --data then only overrides the data
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "run.toml"
    config.write_text('tokenizer = "gpt2"\n')
    assert main(["train", "--config", str(config), "--data", str(tmp_path / "none")]) == 2
    assert "not a prepared data directory" in capsys.readouterr().err


def test_simple_tokenizer_refuses_bpe_settings(tmp_path, corpus_file, capsys):
    args = ["train-tokenizer", "--corpus", str(corpus_file), "--kind", "simple"]
    assert main([*args, "--vocab-size", "300", "-o", str(tmp_path / "tok")]) == 2
    err = capsys.readouterr().err
    assert "--kind simple takes no --vocab-size" in err and err.count("\n") == 1
    assert not (tmp_path / "tok").exists()
    assert main([*args, "-o", str(tmp_path / "tok")]) == 0
    assert "simple tokenizer" in capsys.readouterr().out


def test_the_new_users_init_from_then_resume(tmp_path, corpus_file, monkeypatch, capsys):
    # the report: train --model cpu-tiny --max-steps 10 --name t1; then train --init-from
    # out/runs/t1 --max-steps 3 --name b recorded cpu-small, and --resume out/runs/b failed
    from scratchllm.config import TrainConfig

    monkeypatch.chdir(tmp_path)
    common = [
        "--corpus", str(corpus_file), "--tokenizer", "bpe:300", "--batch-size", "2",
        "--eval-every", "2", "--sample-tokens", "0", "--threads", "1", "--no-progress",
    ]  # fmt: skip
    assert main(["train", "--model", "cpu-tiny", "--max-steps", "2", "--name", "t1", *common]) == 0
    init = ["train", "--init-from", "out/runs/t1", "--max-steps", "2", "--name", "b"]
    assert main([*init, "--batch-size", "2", "--eval-every", "2", "--threads", "1",
                 "--sample-tokens", "0", "--no-progress"]) == 0  # fmt: skip
    recorded = TrainConfig.from_toml(tmp_path / "out/runs/b/train.toml")
    assert recorded.model == "cpu-tiny" and recorded.model_overrides["n_embd"] == 64
    capsys.readouterr()
    assert main(["train", "--resume", "out/runs/b", "--max-steps", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "3/3 steps" in out
