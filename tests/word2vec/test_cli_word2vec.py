"""`scratchllm word2vec ...` and `scratchllm embed-plot`, end to end, and their one-line errors."""

from __future__ import annotations

import pytest
import torch

from scratchllm.cli import main
from scratchllm.config import GPTConfig
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import SimpleTokenizer
from scratchllm.weights.checkpoint import save_checkpoint
from scratchllm.word2vec import WordVectors

FAST = ["--dim", "16", "--window", "2", "--min-count", "1", "--sample", "0", "--epochs", "3"]


@pytest.fixture
def corpus(tmp_path, synthetic):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(sentence) for sentence in synthetic.sentences) + "\n")
    return path


@pytest.fixture
def trained(tmp_path, corpus, capsys):
    output = tmp_path / "vectors"
    args = ["word2vec", "train", "--corpus", str(corpus), *FAST, "--threads", "1", "-o"]
    assert main([*args, str(output), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "words/s" in out and "saved to" in out
    return output


def test_train_then_query(trained, capsys, synthetic):
    vectors = WordVectors.load(trained)
    assert "cat" in vectors and vectors.dim == 16
    assert main(["word2vec", "similar", "cat", "hammer", "--vectors", str(trained), "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cat: ") and lines[1].startswith("hammer: ")
    assert len(lines[0].split(", ")) == 3
    assert main(["word2vec", "similarity", "cat", "dog", "--vectors", str(trained)]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(vectors.similarity("cat", "dog"), 1e-4)
    assert main(["word2vec", "analogy", "cat", "grass", "wood", "--vectors", str(trained)]) == 0
    assert capsys.readouterr().out.startswith("cat - grass + wood ~ ")


def test_an_unknown_word_is_one_error_line(trained, capsys):
    assert main(["word2vec", "similar", "hamer", "--vectors", str(trained)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the word 'hamer'") and "close matches: hammer" in err
    assert err.count("\n") == 1


def test_a_corpus_too_small_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "tiny.txt"
    path.write_text("only a few words here\n")
    assert main(["word2vec", "train", "--corpus", str(path), "-o", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert "min_count=5" in err and err.count("\n") == 1


def test_embed_plot_from_vectors_with_defaults_and_groups(trained, tmp_path, capsys):
    default = tmp_path / "default.png"
    assert main(["embed-plot", "--vectors", str(trained), "-o", str(default)]) == 0
    assert default.read_bytes()[:4] == b"\x89PNG"
    assert "points" in capsys.readouterr().out
    grouped = tmp_path / "groups.png"
    args = ["embed-plot", "--vectors", str(trained / "vectors.txt"), "-o", str(grouped)]
    assert main([*args, "--words", "cat,dog,cow", "--words", "saw,drill"]) == 0
    assert grouped.stat().st_size > 10_000
    assert main(["embed-plot", "--vectors", str(trained), "--words", "cat,zebra"]) == 2
    assert "'zebra'" in capsys.readouterr().err


def test_embed_plot_from_a_checkpoint(tmp_path, corpus, capsys):
    tokenizer = SimpleTokenizer.train(corpus.read_text())
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, context_length=16, n_embd=32, n_head=4, n_layer=2
    )
    model = GPT(config, generator=torch.Generator().manual_seed(0))
    checkpoint = save_checkpoint(tmp_path / "ckpt", model, tokenizer)
    for extra in ([], ["--corpus", str(corpus)], ["--words", "cat,dog", "--words", "saw"]):
        output = tmp_path / f"tokens{len(extra)}.png"
        assert main(["embed-plot", "--checkpoint", str(checkpoint), *extra, "-o", str(output)]) == 0
        assert output.read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out.splitlines()[-1].endswith("(3 points)")


def test_embed_plot_errors(tmp_path, capsys):
    assert main(["embed-plot", "--vectors", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: no such vectors")
    with pytest.raises(SystemExit):  # argparse: exactly one source is required
        main(["embed-plot"])
