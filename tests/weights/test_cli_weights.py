"""`scratchllm download` and `convert`, and pretrained names wherever a checkpoint is taken,
through the command line against the fake Hub on 127.0.0.1 (tests/weights/conftest.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from scratchllm.cli import main
from scratchllm.cli.options import PRETRAINED_NAMES
from scratchllm.generate import SamplingConfig, generate_with_config
from scratchllm.tokenizer import BPETokenizer
from scratchllm.weights import hub
from scratchllm.weights.checkpoint import load_checkpoint, save_checkpoint
from scratchllm.weights.hf_tokenizer import MERGES_TXT, VOCAB_JSON, write_hf_tokenizer

TEXT = "the quick brown fox jumps over the lazy dog; " * 20


@pytest.fixture
def served_gpt2(fake_hub, make_hf_gpt2, tmp_path, monkeypatch):
    """openai-community/gpt2 at its pinned commit on the fake Hub: a tiny random model."""
    tokenizer = BPETokenizer.train(TEXT, 300)
    write_hf_tokenizer(tokenizer, tmp_path / "tok", model_max_length=64)
    model = make_hf_gpt2(tokenizer.vocab_size)
    model.save_pretrained(tmp_path / "saved", safe_serialization=True)
    files = {name: (tmp_path / "saved" / name).read_bytes() for name in ("config.json",
             "model.safetensors")}  # fmt: skip
    files["vocab.json"] = (tmp_path / "tok" / VOCAB_JSON).read_bytes()
    files["merges.txt"] = (tmp_path / "tok" / MERGES_TXT).read_bytes()
    pinned = hub.PRETRAINED["gpt2"]
    fake_hub.add(pinned.repo_id, pinned.revision, files)
    import hashlib

    sha256 = hashlib.sha256(files["model.safetensors"]).hexdigest()
    monkeypatch.setitem(
        hub.PRETRAINED, "gpt2", dataclasses.replace(pinned, sha256=sha256, size_bytes=None)
    )
    return model


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_the_cli_knows_the_hubs_names():
    assert tuple(hub.PRETRAINED) == PRETRAINED_NAMES


def test_a_name_before_its_download_says_which_command_to_run(fake_hub, capsys):
    status, _, err = run(capsys, "generate", "--checkpoint", "gpt2", "--prompt", "the")
    assert status == 2
    assert err.startswith("error: the pretrained model gpt2 is not downloaded yet")
    assert "run `scratchllm download gpt2`" in err and "Traceback" not in err


def test_download_then_the_name_works_for_generate_eval_and_export(served_gpt2, tmp_path, capsys):
    status, out, _ = run(capsys, "download", "gpt2", "--no-progress")
    assert status == 0 and str(hub.pretrained_dir("gpt2")) in out
    status, out, _ = run(
        capsys, "generate", "--checkpoint", "gpt2", "--prompt", "the quick", "--max-new-tokens",
        "5",
    )  # fmt: skip
    assert status == 0
    model, tokenizer = load_checkpoint(hub.pretrained_dir("gpt2"))
    expected = "".join(
        generate_with_config(model, tokenizer, "the quick", SamplingConfig(max_new_tokens=5))
    )
    assert out == f"the quick{expected}\n"
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    status, out, _ = run(capsys, "eval", "--checkpoint", "gpt2", "--corpus", str(corpus))
    assert status == 0 and "perplexity" in out
    status, _, _ = run(capsys, "convert", "--to", "hf", "gpt2", "-o", str(tmp_path / "hf"))
    assert status == 0
    transformers = pytest.importorskip("transformers")
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    ids = torch.tensor([tokenizer.encode(TEXT[:60])])
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, served_gpt2(ids).logits, atol=1e-5,
                                   rtol=0)  # fmt: skip


def test_a_trained_checkpoint_to_hf_and_back_gives_identical_logits(tmp_path, capsys):
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT * 5, encoding="utf-8")
    status, _, _ = run(
        capsys, "train", "--corpus", str(corpus), "--tokenizer", "bpe:290", "--model", "cpu-tiny",
        "--context-length", "32", "--max-steps", "2", "--eval-every", "2", "--batch-size", "2",
        "--sample-tokens", "0", "--threads", "1", "--out-dir", str(tmp_path / "runs"),
        "--name", "r", "--no-progress",
    )  # fmt: skip
    assert status == 0
    run_dir = str(tmp_path / "runs" / "r")
    assert run(capsys, "convert", "--to", "hf", run_dir, "-o", str(tmp_path / "hf"))[0] == 0
    status, out, _ = run(
        capsys, "convert", "--from", "hf", str(tmp_path / "hf"), "-o", str(tmp_path / "back")
    )
    assert status == 0 and "wrote the checkpoint" in out
    from scratchllm.train.run_dir import latest_checkpoint

    original, tokenizer = load_checkpoint(latest_checkpoint(tmp_path / "runs" / "r"))
    back, back_tokenizer = load_checkpoint(tmp_path / "back")
    ids = torch.tensor([tokenizer.encode(TEXT[:80])])
    with torch.no_grad():
        torch.testing.assert_close(back(ids), original(ids), atol=0, rtol=0)
    assert back_tokenizer.encode(TEXT) == tokenizer.encode(TEXT)


def test_an_adapted_checkpoint_exports_merged_and_a_classifier_is_refused(tmp_path, capsys):
    from scratchllm.config import GPTConfig, HeadConfig, LoRAConfig
    from scratchllm.finetune.lora import apply_lora
    from scratchllm.model.gpt import GPT
    from scratchllm.model.heads import ClassificationHead

    tokenizer = BPETokenizer.train(TEXT, 290)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, context_length=32, n_embd=32, n_head=4, n_layer=2,
        dropout=0.0, qkv_bias=True, tie_weights=True,
    )  # fmt: skip
    model = GPT(config, generator=torch.Generator().manual_seed(3)).eval()
    apply_lora(model, LoRAConfig(rank=2))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("lora_B"):
                parameter.normal_(0.0, 0.3)
    save_checkpoint(tmp_path / "adapted", model, tokenizer)
    assert run(capsys, "convert", "--to", "hf", str(tmp_path / "adapted"), "-o",
               str(tmp_path / "hf"))[0] == 0  # fmt: skip
    transformers = pytest.importorskip("transformers")
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    ids = torch.tensor([tokenizer.encode(TEXT[:60])])
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, model(ids), atol=1e-5, rtol=0)
    head = ClassificationHead(HeadConfig(labels=("no", "yes")), 32)
    save_checkpoint(tmp_path / "classifier", GPT(config), tokenizer, head=head)
    status, _, err = run(
        capsys, "convert", "--to", "hf", str(tmp_path / "classifier"), "-o", str(tmp_path / "c")
    )
    assert status == 2 and "has a classification head" in err
    assert not (tmp_path / "c").exists()


def test_convert_refuses_a_folder_that_holds_files_before_working(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    status, _, err = run(
        capsys, "convert", "--from", "hf", str(tmp_path / "nowhere"), "-o", str(tmp_path / "full")
    )
    assert status == 2 and err.startswith("error: ") and "Traceback" not in err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_merge_gives_a_plain_checkpoint_that_converts_like_any_other(tmp_path, capsys):
    from scratchllm.config import GPTConfig, LoRAConfig
    from scratchllm.finetune.lora import apply_lora
    from scratchllm.model.gpt import GPT

    tokenizer = BPETokenizer.train(TEXT, 290)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, context_length=32, n_embd=32, n_head=4, n_layer=2,
        dropout=0.0, qkv_bias=True, tie_weights=True,
    )  # fmt: skip
    model = GPT(config, generator=torch.Generator().manual_seed(5)).eval()
    apply_lora(model, LoRAConfig(rank=2, alpha=4))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("lora_B"):
                parameter.normal_(0.0, 0.3)
    save_checkpoint(tmp_path / "adapted", model, tokenizer)
    assert run(capsys, "merge", str(tmp_path / "adapted"), "-o", str(tmp_path / "merged"))[0] == 0
    merged, _ = load_checkpoint(tmp_path / "merged")
    assert not any("lora" in name for name in merged.state_dict())
    ids = torch.tensor([tokenizer.encode(TEXT[:60])])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids), model(ids), atol=1e-5, rtol=0)
    assert run(capsys, "convert", "--to", "hf", str(tmp_path / "merged"), "-o",
               str(tmp_path / "hf"))[0] == 0  # fmt: skip
    transformers = pytest.importorskip("transformers")
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, model(ids), atol=1e-5, rtol=0)
