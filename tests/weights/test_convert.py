"""Converting Hugging Face GPT-2 folders into our checkpoints and ours into theirs.

Oracles: a tiny random ``GPT2LMHeadModel`` (logits to 1e-5 after conversion in), and
``transformers.AutoModelForCausalLM`` / ``AutoTokenizer`` loading our exports with no code of
ours (logits, greedy ``generate`` ids and tokenizer ids equal ours).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scratchllm.config import GPTConfig
from scratchllm.errors import CheckpointError
from scratchllm.generate import generate_tokens
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import BPETokenizer, SimpleTokenizer, get_tokenizer
from scratchllm.weights import convert
from scratchllm.weights.checkpoint import load_checkpoint, save_checkpoint
from scratchllm.weights.convert import (
    convert_from_hf,
    convert_to_hf,
    gpt_config_from_hf,
    hf_config_from_gpt,
)
from scratchllm.weights.hf_tokenizer import write_hf_tokenizer

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()  # tiny vocabularies: bos/eos and length warnings
transformers.logging.disable_progress_bar()

TEXT = "a tiny model reads a tiny text, and the text is read again; " * 10


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train(TEXT, 300)


def spread_out(model: GPT, seed: int = 0) -> GPT:
    """Redraw the weights wider than GPT-2's init, so greedy picks are never near-ties."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".ln_" not in name and "ln_f" not in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def our_model(tokenizer, *, tie: bool = True, qkv_bias: bool = True, seed: int = 0) -> GPT:
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, context_length=64, n_embd=32, n_head=4, n_layer=2,
        dropout=0.0, qkv_bias=qkv_bias, tie_weights=tie,
    )  # fmt: skip
    return spread_out(GPT(config, generator=torch.Generator().manual_seed(seed)), seed)


def hf_folder(model, tokenizer, directory: Path) -> Path:
    """What a Hugging Face repository holds: save_pretrained + tokenizer files."""
    model.save_pretrained(directory, safe_serialization=True)
    write_hf_tokenizer(tokenizer, directory, model_max_length=64)
    return directory


def ids_of(tokenizer, text: str = TEXT[:80]) -> torch.Tensor:
    return torch.tensor([tokenizer.encode(text)])


# ---- in ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_an_hf_folder_converts_with_its_logits(make_hf_gpt2, tokenizer, tmp_path, tie):
    hf = make_hf_gpt2(tokenizer.vocab_size, tie=tie)
    messages = []
    out = convert_from_hf(
        hf_folder(hf, tokenizer, tmp_path / "hf"), tmp_path / "ours", log=messages.append
    )
    model, loaded_tokenizer = load_checkpoint(out)
    assert (model.config.tie_weights, model.config.qkv_bias) == (tie, True)
    with torch.no_grad():
        expected = hf(ids_of(tokenizer)).logits
        torch.testing.assert_close(model(ids_of(tokenizer)), expected, atol=1e-5, rtol=0)
    assert loaded_tokenizer.fingerprint == tokenizer.fingerprint
    assert messages[0].startswith("config from ")
    source = json.loads((out / "config.json").read_text())["source"]
    assert source["format"] == "huggingface" and source["config"].startswith("config from")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left


def test_a_single_weights_file_infers_its_config(make_hf_gpt2, tokenizer, tmp_path):
    hf = make_hf_gpt2(tokenizer.vocab_size)
    weights = hf_folder(hf, tokenizer, tmp_path / "hf") / "model.safetensors"
    with pytest.raises(CheckpointError, match="head count cannot be read from shapes"):
        convert_from_hf(weights, tmp_path / "a")  # width 32 is not a multiple of 64
    expected = f"vocabulary of {tokenizer.vocab_size}, not GPT-2's 50,257: pass the tokenizer"
    with pytest.raises(CheckpointError, match=expected):
        convert_from_hf(weights, tmp_path / "b", n_head=4)
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer.save(tokenizer_dir)
    messages = []
    out = convert_from_hf(
        weights, tmp_path / "c", n_head=4, tokenizer=str(tokenizer_dir), log=messages.append
    )
    assert "inferred from the weights' shapes (2 layers, width 32" in messages[0]
    assert "tied head; n_head 4 as given" in messages[0]
    model, _ = load_checkpoint(out)
    with torch.no_grad():
        expected = hf(ids_of(tokenizer)).logits
        torch.testing.assert_close(model(ids_of(tokenizer)), expected, atol=1e-5, rtol=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_gpt2s_released_layout_infers_gpt2s_shape(make_hf_gpt2, tmp_path):
    # OpenAI's model.safetensors: unprefixed keys, no head (tied), the mask buffers attn.bias;
    # width 128 = 2 heads of 64, the vocabulary GPT-2's, so nothing needs to be passed
    hf = make_hf_gpt2(50257, n_embd=128, n_head=2, n_layer=1, context_length=32)
    released = {
        name.removeprefix("transformer."): tensor.contiguous()
        for name, tensor in hf.state_dict().items()
        if name != "lm_head.weight"
    }
    released["h.0.attn.bias"] = torch.ones(1, 1, 32, 32).tril()
    from safetensors.torch import save_file

    save_file(released, tmp_path / "model.safetensors")
    model, tokenizer = load_checkpoint(
        convert_from_hf(tmp_path / "model.safetensors", tmp_path / "o")
    )
    assert (model.config.n_head, model.config.context_length, model.config.tie_weights) == (
        2,
        32,
        True,
    )
    assert tokenizer.fingerprint == get_tokenizer("gpt2").fingerprint
    token_ids = torch.tensor([tokenizer.encode("Every effort moves you")])
    with torch.no_grad():
        torch.testing.assert_close(model(token_ids), hf(token_ids).logits, atol=1e-5, rtol=0)


def test_pytorch_model_bin_is_read_with_weights_only(make_hf_gpt2, tokenizer, tmp_path):
    hf = make_hf_gpt2(tokenizer.vocab_size, tie=False)
    folder = tmp_path / "hf"
    hf_folder(hf, tokenizer, folder)
    (folder / "model.safetensors").unlink()
    torch.save(hf.state_dict(), folder / "pytorch_model.bin")
    model, _ = load_checkpoint(convert_from_hf(folder, tmp_path / "ours"))
    with torch.no_grad():
        expected = hf(ids_of(tokenizer)).logits
        torch.testing.assert_close(model(ids_of(tokenizer)), expected, atol=1e-5, rtol=0)
    # a pickle with code in it is not run
    torch.save({"wte.weight": torch.zeros(2, 2), "payload": print}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="could run code"):
        convert_from_hf(folder, tmp_path / "evil")
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("activation_function", "gelu", "activation_function 'gelu'"),
        ("n_inner", 100, "n_inner 100"),
        ("scale_attn_by_inverse_layer_idx", True, "attention scaling"),
        ("model_type", "llama", "'llama' model"),
        ("n_head", 5, "n_embd 32 must be divisible by n_head 5"),
    ],
)
def test_configs_that_our_gpt_cannot_compute_are_refused(field, value, message):
    hf_config = {"model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 2, field: value}
    with pytest.raises(CheckpointError, match=message):
        gpt_config_from_hf(hf_config)


def test_hf_config_round_trips_through_ours():
    config = GPTConfig(
        vocab_size=300, context_length=64, n_embd=32, n_head=4, n_layer=2, dropout=0.0,
        qkv_bias=True, tie_weights=False, layer_norm_eps=1e-6,
    )  # fmt: skip
    assert gpt_config_from_hf(hf_config_from_gpt(config, eot_id=299)) == config


def test_an_existing_output_folder_is_kept(make_hf_gpt2, tokenizer, tmp_path):
    folder = hf_folder(make_hf_gpt2(tokenizer.vocab_size), tokenizer, tmp_path / "hf")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    with pytest.raises(CheckpointError, match="already exists and is not empty"):
        convert_from_hf(folder, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]


# ---- out ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tie", "qkv_bias"),
    [(True, True), (False, True), (True, False)],
    ids=["tied", "untied-head", "no-qkv-bias"],
)
def test_export_loads_in_transformers_with_our_logits_and_greedy_ids(
    tokenizer, tmp_path, tie, qkv_bias
):
    model = our_model(tokenizer, tie=tie, qkv_bias=qkv_bias)
    save_checkpoint(tmp_path / "ours", model, tokenizer)
    out = convert_to_hf(tmp_path / "ours", tmp_path / "hf")
    hf_config = json.loads((out / "config.json").read_text())
    assert (hf_config["model_type"], hf_config["activation_function"]) == ("gpt2", "gelu_new")
    assert hf_config["tie_word_embeddings"] is tie
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert (hf.lm_head.weight is hf.transformer.wte.weight) is tie
    if not qkv_bias:
        assert not hf.transformer.h[0].attn.c_attn.bias.any()  # zeros: the same function
    prompt = ids_of(tokenizer, "a tiny model")
    with torch.no_grad():
        torch.testing.assert_close(hf(prompt).logits, model(prompt), atol=1e-5, rtol=0)
        generated = hf.generate(
            prompt, max_new_tokens=20, do_sample=False, pad_token_id=0, eos_token_id=None
        )
    ours = list(generate_tokens(model, prompt[0], max_new_tokens=20))
    assert generated[0, prompt.shape[1] :].tolist() == ours
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert hf_tokenizer(TEXT)["input_ids"] == tokenizer.encode(TEXT)


def test_export_with_gpt2s_vocabulary_tokenizes_the_edge_cases_as_we_do(tmp_path):
    gpt2 = get_tokenizer("gpt2")
    config = GPTConfig(vocab_size=50257, context_length=32, n_embd=16, n_head=2, n_layer=1)
    save_checkpoint(tmp_path / "ours", GPT(config), gpt2)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(
        convert_to_hf(tmp_path / "ours", tmp_path / "hf")
    )
    edge_cases = [
        "a  \n\n  b", "\tindented\t\ttabs\t", "trailing spaces   ", "emoji 🙂👍🏽 and 👩‍👩‍👧",
        "I'm sure you don't, they'll 'S 'T we've 'RE", "numbers 0 12 345 6789 ①²",
        "CJK 日本語のテキスト", "<|endoftext|>", "\r\n\r\nwindows\r\n", "\u00a0nb\u2003em",
    ]  # fmt: skip
    for text in edge_cases:
        ids = gpt2.encode(text, allowed_special="all")
        assert hf_tokenizer(text)["input_ids"] == ids, text
    assert hf_tokenizer.eos_token_id == 50256


def test_a_word_level_tokenizer_cannot_be_exported(tmp_path):
    simple = SimpleTokenizer.train("the cat sat on the mat .", special_tokens=("<|endoftext|>",))
    config = GPTConfig(
        vocab_size=simple.vocab_size, context_length=8, n_embd=8, n_head=2, n_layer=1
    )
    save_checkpoint(tmp_path / "ours", GPT(config), simple)
    with pytest.raises(CheckpointError, match="cannot be exported: a simple tokenizer"):
        convert_to_hf(tmp_path / "ours", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_a_failed_export_leaves_nothing(tokenizer, tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "ours", our_model(tokenizer), tokenizer)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(convert, "write_hf_tokenizer", disk_full)
    with pytest.raises(OSError, match="No space left"):
        convert_to_hf(tmp_path / "ours", tmp_path / "hf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours"]


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_round_trip_ours_to_hf_and_back_gives_identical_logits(tokenizer, tmp_path, tie):
    model = our_model(tokenizer, tie=tie, qkv_bias=True, seed=3)
    save_checkpoint(tmp_path / "ours", model, tokenizer)
    convert_to_hf(tmp_path / "ours", tmp_path / "hf")
    back, back_tokenizer = load_checkpoint(convert_from_hf(tmp_path / "hf", tmp_path / "back"))
    assert back.config == model.config
    assert back_tokenizer.fingerprint == tokenizer.fingerprint
    with torch.no_grad():
        torch.testing.assert_close(
            back(ids_of(tokenizer)), model(ids_of(tokenizer)), atol=0, rtol=0
        )
    for name, tensor in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name
