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
