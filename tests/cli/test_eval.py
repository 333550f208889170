"""`scratchllm eval`: the run's own validation tokens by default, any text with --corpus."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from scratchllm.cli import main
from scratchllm.data.shards import read_tokens
from scratchllm.weights.checkpoint import load_checkpoint

TINY_RUN = [
    "--model", "cpu-tiny", "--n-layer", "2", "--n-embd", "32", "--n-head", "4",
    "--context-length", "16", "--batch-size", "4", "--max-steps", "2", "--eval-every", "2",
    "--eval-batches", "1", "--sample-tokens", "0", "--threads", "1", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, module_corpus_file):
    """Two 2-step runs: one tokenizes its corpus into RUN/data, one reads a prepared folder."""
    folder = tmp_path_factory.mktemp("eval")
    out = ["--out-dir", str(folder / "runs")]
    own = ["train", *TINY_RUN, *out, "--name", "own", "--corpus", str(module_corpus_file)]
    assert main([*own, "--tokenizer", "bpe:280"]) == 0
    prepared = folder / "prepared"
    prepare = ["prepare", "--corpus", str(module_corpus_file), "--tokenizer", "bpe:280"]
    assert main([*prepare, "-o", str(prepared), "--show-windows", "0"]) == 0
    assert main(["train", *TINY_RUN, *out, "--name", "prepared", "--data", str(prepared)]) == 0
    return {"own": folder / "runs" / "own", "prepared": folder / "runs" / "prepared"}


def reference_loss(checkpoint, tokens) -> float:
    """One window of the context length at a time, each token predicted once."""
    model, _ = load_checkpoint(checkpoint)
    ids = torch.tensor(tokens.tolist())
    window, total = model.config.context_length, 0.0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            chunk = ids[start : start + window + 1]
            logits = model(chunk[None, :-1])[0]
            total += F.cross_entropy(logits, chunk[1:], reduction="sum").item()
    return total / (len(ids) - 1)


@pytest.mark.parametrize("run, data", [("own", "runs/own/data"), ("prepared", "prepared")])
def test_without_corpus_it_scores_the_runs_validation_tokens(trained_runs, run, data, capsys):
    val_file = trained_runs[run].parent.parent / data / "val.bin"
    assert main(["eval", "--checkpoint", str(trained_runs[run]), "--json"]) == 0
    captured = capsys.readouterr()
    assert f"scoring {val_file}: the validation split" in captured.err
    report = json.loads(captured.out)
    tokens = read_tokens(val_file).tokens
    assert report["tokens_file"] == str(val_file) and report["corpus"] is None
    assert report["tokens"] == len(tokens) - 1
    checkpoint = report["checkpoint"]
    assert report["loss"] == pytest.approx(reference_loss(checkpoint, tokens), rel=1e-5)
    assert report["perplexity"] == pytest.approx(math.exp(report["loss"]))


def test_the_batch_size_does_not_change_the_loss(trained_runs, capsys):
    losses = []
    for batch_size in ("1", "3", "64"):
        args = ["eval", "--checkpoint", str(trained_runs["own"]), "--batch-size", batch_size]
        assert main([*args, "--json"]) == 0
        losses.append(json.loads(capsys.readouterr().out)["loss"])
    assert losses == pytest.approx([losses[0]] * 3, rel=1e-5)


@pytest.mark.parametrize("batch_size", ["0", "-2", "many"])
def test_a_batch_size_below_one_is_refused(batch_size, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--batch-size", batch_size])
    assert exit_info.value.code == 2
    assert "argument --batch-size" in capsys.readouterr().err


def test_a_checkpoint_outside_a_run_needs_a_corpus(untrained_checkpoint, corpus_file, capsys):
    assert main(["eval", "--checkpoint", str(untrained_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "not in a training run folder" in err and "--corpus" in err and err.count("\n") == 1
    args = ["eval", "--checkpoint", str(untrained_checkpoint), "--corpus", str(corpus_file)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["corpus"] == str(corpus_file) and report["bytes"] == corpus_file.stat().st_size
