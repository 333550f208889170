"""Checkpoint parts beyond the GPT: a task head with label names, LoRA adapters, a prompt
format; each declared in config.json and checked as strictly as the weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from scratchllm.config import GPTConfig, HeadConfig, LoRAConfig
from scratchllm.errors import CheckpointError, ConfigError
from scratchllm.finetune.lora import apply_lora
from scratchllm.model.gpt import GPT
from scratchllm.model.heads import ClassificationHead
from scratchllm.tokenizer import BPETokenizer
from scratchllm.weights.checkpoint import (
    ADAPTERS_FILE,
    CONFIG_FILE,
    HEAD_FILE,
    WEIGHTS_FILE,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

TEXT = "the quick brown fox jumps over the lazy dog. " * 20
LORA = LoRAConfig(rank=2, alpha=4, targets=("attn.c_attn", "mlp.c_fc"))


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train(TEXT, 280)


def tiny_model(tokenizer, seed: int = 0) -> GPT:
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, context_length=16, n_embd=32, n_head=4, n_layer=2,
        dropout=0.0, tie_weights=True, qkv_bias=True,
    )  # fmt: skip
    return GPT(config, generator=torch.Generator().manual_seed(seed))


def adapted_model(tokenizer) -> GPT:
    model = tiny_model(tokenizer)
    torch.manual_seed(1)
    apply_lora(model, LORA)
    with torch.no_grad():  # B starts at zero; give it values so that loading them is tested
        for name, parameter in model.named_parameters():
            if name.endswith("lora_B"):
                parameter.normal_(0.0, 0.1)
    return model


def full_checkpoint(tmp_path, tokenizer):
    model = adapted_model(tokenizer)
    head = ClassificationHead(HeadConfig(num_classes=3, labels=("neg", "neu", "pos")), 32)
    path = save_checkpoint(
        tmp_path / "ckpt", model, tokenizer, head=head, prompt_format="alpaca", extra={"x": 1}
    )
    return path, model, head


def test_head_adapters_labels_and_prompt_format_round_trip(tmp_path, tokenizer):
    path, model, head = full_checkpoint(tmp_path, tokenizer)
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["head"] == {
        "kind": "classification", "num_classes": 3, "labels": ["neg", "neu", "pos"],
        "position": "last", "bias": True,
    }  # fmt: skip
    assert config["adapters"] == {
        "kind": "lora", "rank": 2, "alpha": 4.0, "targets": ["attn.c_attn", "mlp.c_fc"],
        "dropout": 0.0, "split_qkv": True,
    }  # fmt: skip
    assert config["prompt_format"] == "alpaca" and config["x"] == 1
    # the GPT's file keeps exactly GPT-2's names; adapters and head live in their own files
    assert not any("lora" in name for name in load_file(path / WEIGHTS_FILE))
    assert set(load_file(path / ADAPTERS_FILE)) == {
        f"h.{i}.{layer}.{part}"
        for i in range(2) for layer in ("attn.c_attn", "mlp.c_fc") for part in ("lora_A", "lora_B")
    }  # fmt: skip
    assert set(load_file(path / HEAD_FILE)) == {"weight", "bias"}

    loaded = read_checkpoint(path)
    assert loaded.labels == ("neg", "neu", "pos") and loaded.prompt_format == "alpaca"
    assert loaded.adapters == LORA
    ids = torch.tensor([tokenizer.encode("the lazy fox jumps")])
    model.eval()
    torch.testing.assert_close(loaded.model(ids), model(ids), rtol=0, atol=0)
    hidden = loaded.model.hidden_states(ids)
    torch.testing.assert_close(
        loaded.head.classify(hidden), head.classify(model.hidden_states(ids)), rtol=0, atol=0
    )
    plain, _ = load_checkpoint(path)  # the plain loader gives the adapted GPT too
    torch.testing.assert_close(plain(ids), model(ids), rtol=0, atol=0)


def test_a_plain_checkpoint_declares_nothing_extra(tmp_path, tokenizer):
    path = save_checkpoint(tmp_path / "plain", tiny_model(tokenizer), tokenizer)
    config = json.loads((path / CONFIG_FILE).read_text())
    assert not {"head", "adapters", "prompt_format"} & set(config)
    assert not (path / HEAD_FILE).exists() and not (path / ADAPTERS_FILE).exists()
    loaded = read_checkpoint(path)
    assert loaded.head is None and loaded.labels is None and loaded.adapters is None


def test_format_version_1_still_reads(tmp_path, tokenizer):
    path = save_checkpoint(tmp_path / "old", tiny_model(tokenizer), tokenizer)
    config = json.loads((path / CONFIG_FILE).read_text())
    (path / CONFIG_FILE).write_text(json.dumps({**config, "format_version": 1}))
    load_checkpoint(path)
    (path / CONFIG_FILE).write_text(json.dumps({**config, "format_version": 3}))
    with pytest.raises(CheckpointError, match="format version 3"):
        load_checkpoint(path)


def edit_config(path, change):
    config = json.loads((path / CONFIG_FILE).read_text())
    change(config)
    (path / CONFIG_FILE).write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["head"].update(labels=["a", "b"]), "2 labels for 3 classes"),
        (lambda c: c["head"].update(labels=["a", "a", "b"]), "distinct and non-empty"),
        (lambda c: c["head"].update(colour="red"), r"unknown field\(s\) \['colour'\]"),
        (lambda c: c["head"].update(position="first"), "position must be one of"),
        (lambda c: c["head"].update(num_classes=4, labels=[]), r"head\.safetensors does not"),
        (lambda c: c["adapters"].update(rank=3), r"adapters\.safetensors does not match"),
        (lambda c: c["adapters"].update(split_qkv=False), "wrong shape"),
        (lambda c: c["adapters"].update(targets=["mlp.c_fc", "head"]), "unexpected"),
        (lambda c: c["adapters"].update(targets=["mlp.c_fc"]), "unexpected"),
        (lambda c: c["adapters"].update(targets=["attn.q"]), "targets must be distinct names"),
        (lambda c: c["adapters"].update(kind="ia3"), "kind must be 'lora'"),
        (lambda c: c.update(prompt_format="chatml"), "unknown prompt format 'chatml'"),
        (lambda c: c.pop("head"), "head.safetensors is there but config.json declares no"),
        (lambda c: c.pop("adapters"), "adapters.safetensors is there but"),
    ],
)
def test_every_declaration_is_checked(tmp_path, tokenizer, change, message):
    path, _, _ = full_checkpoint(tmp_path, tokenizer)
    edit_config(path, change)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


@pytest.mark.parametrize("file_name", [HEAD_FILE, ADAPTERS_FILE])
def test_a_declared_part_whose_file_is_missing_or_damaged(tmp_path, tokenizer, file_name):
    path, _, _ = full_checkpoint(tmp_path, tokenizer)
    tensors = {name: t.clone() for name, t in load_file(path / file_name).items()}  # not mmapped
    (path / file_name).write_bytes((path / file_name).read_bytes()[:50])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_checkpoint(path)
    name = next(iter(tensors))
    save_file({**tensors, name: torch.zeros(1)}, path / file_name)
    with pytest.raises(CheckpointError, match="wrong shape"):
        read_checkpoint(path)
    (path / file_name).unlink()
    with pytest.raises(CheckpointError, match="is missing; the checkpoint is incomplete"):
        read_checkpoint(path)


def test_an_unknown_prompt_format_is_refused_before_writing(tmp_path, tokenizer):
    with pytest.raises(ConfigError, match="unknown prompt format"):
        save_checkpoint(tmp_path / "x", tiny_model(tokenizer), tokenizer, prompt_format="nope")
    assert not (tmp_path / "x").exists()


def test_saving_a_plain_model_over_an_adapted_checkpoint_leaves_no_stale_parts(tmp_path, tokenizer):
    path, _, _ = full_checkpoint(tmp_path, tokenizer)
    save_checkpoint(path, tiny_model(tokenizer), tokenizer)
    assert not (path / HEAD_FILE).exists() and not (path / ADAPTERS_FILE).exists()
    assert read_checkpoint(path).head is None


def test_a_heads_own_adapter_round_trips(tmp_path, tokenizer):
    # appendix E gives the classifier's output layer an adapter too ("head" target)
    from scratchllm.finetune.lora import wrap_head
    from scratchllm.model.heads import pool

    lora = LoRAConfig(rank=2, alpha=4, targets=("mlp.c_fc", "head"))
    model = tiny_model(tokenizer)
    apply_lora(model, lora)
    head = wrap_head(ClassificationHead(HeadConfig(labels=("no", "yes")), 32), lora)
    with torch.no_grad():
        for module in (model, head):
            for name, parameter in module.named_parameters():
                if name.endswith("lora_B"):
                    parameter.normal_(0.0, 0.3)
    path = save_checkpoint(tmp_path / "c", model, tokenizer, head=head,
                           head_config=HeadConfig(labels=("no", "yes")))  # fmt: skip
    assert {"head.lora_A", "head.lora_B"} <= set(load_file(path / ADAPTERS_FILE))
    assert set(load_file(path / HEAD_FILE)) == {"weight", "bias"}
    loaded = read_checkpoint(path)
    ids = torch.tensor([tokenizer.encode("the lazy dog")])
    model.eval()
    expected = head(pool(model.hidden_states(ids), "last"))
    actual = loaded.head(pool(loaded.model.hidden_states(ids), "last"))
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    assert loaded.labels == ("no", "yes")
