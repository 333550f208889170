"""Classification finetuning end to end on a tiny model: the CLI, the shared run machinery,
results.json, classify, LoRA, merge and exact resume."""

from __future__ import annotations

import json
import random

import pytest
import torch

from scratchllm.cli import main
from scratchllm.config import ClassifyConfig, GPTConfig, HeadConfig
from scratchllm.finetune.classifier import Classification, Classifier, select_trainable
from scratchllm.model.gpt import GPT
from scratchllm.model.heads import ClassificationHead
from scratchllm.tokenizer import BPETokenizer
from scratchllm.train.run import run_training
from scratchllm.weights.checkpoint import read_checkpoint, save_checkpoint

ANIMALS = ["the cat", "a dog", "the bird", "my horse"]
PEOPLE = ["the old man", "my sister", "our teacher", "a child"]
REST = ["sees the red ball", "likes a long letter", "finds the garden", "reads by the river",
        "sleeps all day long", "waits"]  # fmt: skip


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A CSV of sentences labelled by whether the subject is an animal, and a tiny GPT."""
    folder = tmp_path_factory.mktemp("labelled")
    rng = random.Random(0)
    rows = ["text,label"]
    for _ in range(120):
        label = rng.choice(["animal", "person"])
        subject = rng.choice(ANIMALS if label == "animal" else PEOPLE)
        rows.append(f"{subject} {rng.choice(REST)},{label}")
    (folder / "pets.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    text = " ".join(row.split(",")[0] for row in rows[1:])
    tokenizer = BPETokenizer.train(text, 300)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, context_length=32, n_embd=32, n_head=4, n_layer=2,
        dropout=0.1, qkv_bias=True, tie_weights=True,
    )  # fmt: skip
    save_checkpoint(folder / "base", GPT(config, generator=torch.Generator().manual_seed(1)),
                    tokenizer)  # fmt: skip
    return folder


def config_for(labelled, tmp_path, **changes) -> ClassifyConfig:
    settings = dict(
        init_from=str(labelled / "base"), data=str(labelled / "pets.csv"), out_dir=str(tmp_path),
        name="run", epochs=4.0, lr=3e-3, min_lr=3e-3, eval_every=10, eval_batches=2,
        threads=1, trainable="all", balance=False,
    )  # fmt: skip
    return ClassifyConfig(**{**settings, **changes})


def test_the_cli_trains_reports_and_classifies(labelled, tmp_path, capsys):
    argv = ["finetune", "classify", "--init-from", str(labelled / "base"), "--data",
            str(labelled / "pets.csv"), "--out-dir", str(tmp_path), "--name", "pets",
            "--epochs", "4", "--lr", "3e-3", "--min-lr", "3e-3", "--eval-every", "10",
            "--trainable", "all", "--no-balance", "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "accuracy: train" in out and "confusion matrix" in out
    run_dir = tmp_path / "pets"
    results = json.loads((run_dir / "results.json").read_text())
    data, final = results["data"], results["final"]
    assert sum(data["class_counts"].values()) == 120  # as read
    assert {s: data["splits"][s]["examples"] for s in ("train", "val", "test")} == {
        "train": 84, "val": 12, "test": 24,
    }  # fmt: skip
    assert data["splits"]["train"]["batches"] == 84 // 8
    assert final["labels"] == ["animal", "person"]
    test = final["splits"]["test"]
    assert test["accuracy"] >= 0.9  # chance is ~0.5: the subject decides the label
    assert sum(map(sum, test["confusion_matrix"])) == 24
    assert set(test["classes"]) == {"animal", "person"}
    assert set(test["classes"]["animal"]) == {"precision", "recall", "f1", "support"}
    for plot in ("loss.png", "accuracy.png"):
        assert (run_dir / plot).read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["classify", "--checkpoint", str(run_dir), "--json", "a dog waits",
                 "our teacher waits"]) == 0  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["label"] for line in lines] == ["animal", "person"]
    assert all(abs(sum(line["probabilities"].values()) - 1) < 1e-5 for line in lines)


def test_classify_needs_a_head(labelled, capsys):
    assert main(["classify", "--checkpoint", str(labelled / "base"), "some text"]) == 2
    assert "has no classification head" in capsys.readouterr().err


def test_a_classification_run_resumes_bit_for_bit(labelled, tmp_path):
    whole = run_training(config_for(labelled, tmp_path, name="whole", epochs=2.0),
                         Classification(config_for(labelled, tmp_path, name="whole",
                                                   epochs=2.0)), show_progress=False)  # fmt: skip
    config = config_for(labelled, tmp_path, name="pieces", epochs=2.0)
    first = run_training(config, Classification(config), stop_after=7, show_progress=False)
    second = run_training(config, Classification(config), resume=first.run_dir,
                          show_progress=False)  # fmt: skip
    assert second.losses == whole.losses
    assert second.final == whole.final


@pytest.mark.parametrize(
    ("trainable", "expected"),
    [
        ("head", {"head"}),
        ("last-block", {"h.1", "ln_f", "head"}),
        ("last:2", {"h.0", "h.1", "ln_f", "head"}),
        ("all", {"wte", "wpe", "h.0", "h.1", "ln_f", "head"}),
    ],
)
def test_what_trains(labelled, tmp_path, trainable, expected):
    config = config_for(labelled, tmp_path, trainable=trainable)
    gpt = read_checkpoint(labelled / "base").model
    classifier = Classifier(gpt, ClassificationHead(HeadConfig(), 32), HeadConfig())
    select_trainable(classifier, config)
    trained = set()
    for name, parameter in classifier.named_parameters():
        if parameter.requires_grad:  # "gpt.h.1.attn.c_attn.weight" -> "h.1"; "head.bias" -> head
            parts = name.split(".")
            trained.add("head" if parts[0] == "head" else ".".join(parts[1:3 if parts[1] == "h"
                                                                           else 2]))  # fmt: skip
    assert trained == expected


def test_lora_trains_adapters_only_and_merges_to_the_same_classifier(labelled, tmp_path, capsys):
    config = config_for(labelled, tmp_path, name="lora", trainable="lora", lora_rank=4,
                        lora_alpha=8.0, epochs=2.0)  # fmt: skip
    result = run_training(config, Classification(config), show_progress=False)
    info = json.loads((result.run_dir / "run.json").read_text())
    assert 0 < info["trainable_parameters"] < info["parameters"] / 5
    checkpoint = read_checkpoint(result.checkpoint)
    assert checkpoint.adapters.rank == 4 and "head" in checkpoint.adapters.targets
    from safetensors import safe_open

    with safe_open(result.checkpoint / "adapters.safetensors", "pt") as adapters:
        metadata = adapters.metadata()  # the adapter file names its settings and its base
    assert json.loads(metadata["adapters"])["rank"] == 4
    assert metadata["base"] == str(labelled / "base")
    assert (result.checkpoint / "adapters.safetensors").stat().st_size < (
        result.checkpoint / "model.safetensors").stat().st_size  # fmt: skip
    base = read_checkpoint(labelled / "base").model
    for name, tensor in base.state_dict().items():  # the base weights did not move
        assert torch.equal(checkpoint.model.state_dict()[name], tensor), name
    assert main(["merge", str(result.run_dir), "-o", str(tmp_path / "merged")]) == 0
    merged = read_checkpoint(tmp_path / "merged")
    assert merged.adapters is None and merged.labels == checkpoint.labels
    from scratchllm.finetune.inference import classify_texts

    texts = ["a dog sleeps all day long", "my sister finds the garden", "waits"]
    for before, after in zip(classify_texts(checkpoint, texts), classify_texts(merged, texts),
                             strict=True):  # fmt: skip
        assert after == pytest.approx(before, abs=1e-5)
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "merged"), "-o", str(tmp_path / "again")]) == 2
    assert "has no LoRA adapters" in capsys.readouterr().err


def test_lora_flags_without_lora_are_refused(labelled, capsys):
    assert main(["finetune", "classify", "--lora-rank", "4", "--data",
                 str(labelled / "pets.csv")]) == 2  # fmt: skip
    assert "--lora-rank" in capsys.readouterr().err


def test_sms_spam_through_the_cli_with_gpt2s_tokenizer(shared_data, tmp_path, monkeypatch, capsys):
    # the named dataset from its cache (the download itself is tested in tests/test_corpora.py)
    # and a tiny GPT with GPT-2's vocabulary: the walkthrough's data path, one step
    import shutil

    from scratchllm.tokenizer import get_tokenizer

    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(shared_data / "SMSSpamCollection", cache / "SMSSpamCollection")
    monkeypatch.setenv("SCRATCHLLM_CACHE_DIR", str(cache))
    config = GPTConfig(vocab_size=50257, context_length=128, n_embd=16, n_head=2, n_layer=1,
                       qkv_bias=True, tie_weights=True)  # fmt: skip
    save_checkpoint(tmp_path / "tiny-gpt2", GPT(config), get_tokenizer("gpt2"))
    argv = [
        "finetune", "classify", "--init-from", str(tmp_path / "tiny-gpt2"), "--out-dir",
        str(tmp_path / "runs"), "--name", "spam", "--max-steps", "1", "--epochs", "0",
        "--eval-every", "1", "--eval-batches", "1", "--threads", "1", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "sms-spam: 5,574 examples (ham 4,827, spam 747) read" in out
    assert "padded to 120 tokens" in out  # the walkthrough's figure
    results = json.loads((tmp_path / "runs" / "spam" / "results.json").read_text())
    assert results["data"]["class_counts"] == {"ham": 4827, "spam": 747}
    assert {s: v["examples"] for s, v in results["final"]["splits"].items()} == {
        "train": 1045, "val": 149, "test": 300,
    }  # fmt: skip


def test_lora_at_gpt2_small_trains_the_walkthroughs_parameter_count():
    # appendix E: rank 16, alpha 16 on every linear layer and the 2-class head of GPT-2 small
    # trains 2,666,528 of 124,441,346 parameters (its separate W_query / W_key / W_value each
    # get an adapter, as our split c_attn does); one adapter over the fused matrix: 2,371,616
    config = GPTConfig.from_name("gpt2-small", qkv_bias=True, tie_weights=True, dropout=0.0)
    for split_qkv, expected in ((True, 2_666_528), (False, 2_371_616)):
        gpt = GPT(config, generator=torch.Generator().manual_seed(0))
        head = ClassificationHead(HeadConfig(), config.n_embd)
        classifier = Classifier(gpt, head, HeadConfig())
        select_trainable(classifier, ClassifyConfig(trainable="lora", lora_split_qkv=split_qkv))
        parameters = {id(p): p for p in classifier.parameters()}.values()  # tied once
        trained = sum(p.numel() for p in parameters if p.requires_grad)
        total = sum(p.numel() for p in parameters)
        base = sum(p.numel() for p in parameters if not p.requires_grad)
        assert (trained, base) == (expected, 124_441_346)
        assert total == base + trained
