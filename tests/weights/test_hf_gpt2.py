"""The Hugging Face GPT-2 name map, with a tiny random ``GPT2LMHeadModel`` as the oracle."""

from __future__ import annotations

import pytest
import torch

from scratchllm.config import GPTConfig
from scratchllm.errors import CheckpointError
from scratchllm.model.gpt import GPT
from scratchllm.weights.hf_gpt2 import (
    NAME_MAP,
    TRANSPOSED,
    expand_names,
    from_hf_state_dict,
    to_hf_state_dict,
)

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()  # the tiny vocabulary makes it warn about bos/eos ids

VOCAB, CONTEXT, WIDTH, HEADS, LAYERS = 101, 40, 32, 4, 2


def our_config(*, tie_weights: bool, qkv_bias: bool = True) -> GPTConfig:
    return GPTConfig(
        vocab_size=VOCAB,
        context_length=CONTEXT,
        n_embd=WIDTH,
        n_head=HEADS,
        n_layer=LAYERS,
        dropout=0.0,
        qkv_bias=qkv_bias,
        tie_weights=tie_weights,
    )


def hf_model(*, tie_weights: bool, seed: int = 0):
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=CONTEXT,
        n_embd=WIDTH,
        n_head=HEADS,
        n_layer=LAYERS,
        activation_function="gelu_new",  # GPT-2's tanh GELU
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=tie_weights,
    )
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # HF zero-initialises biases: randomise them so they are tested too
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.1)
    return model


SHAPES = [(1, 1), (2, 7), (3, CONTEXT)]


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tied", "untied"])
def test_hf_weights_give_hf_logits(tie_weights):
    hf = hf_model(tie_weights=tie_weights)
    assert (hf.lm_head.weight is hf.transformer.wte.weight) == tie_weights
    config = our_config(tie_weights=tie_weights)
    ours = GPT(config, generator=torch.Generator().manual_seed(1)).eval()
    ours.load_state_dict(from_hf_state_dict(hf.state_dict(), config), strict=True)
    assert (ours.lm_head.weight is ours.wte.weight) == tie_weights
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for shape in SHAPES:
            token_ids = torch.randint(0, VOCAB, shape, generator=generator)
            expected = hf(token_ids).logits
            torch.testing.assert_close(ours(token_ids), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tied", "untied"])
def test_our_weights_load_strictly_into_hf_and_give_our_logits(tie_weights):
    config = our_config(tie_weights=tie_weights)
    ours = GPT(config, generator=torch.Generator().manual_seed(3)).eval()
    hf = hf_model(tie_weights=tie_weights, seed=4)
    hf.load_state_dict(to_hf_state_dict(ours.state_dict(), config), strict=True)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for shape in SHAPES:
            token_ids = torch.randint(0, VOCAB, shape, generator=generator)
            torch.testing.assert_close(hf(token_ids).logits, ours(token_ids), atol=1e-5, rtol=0)


def test_qkv_bias_free_model_exports_zero_biases_and_round_trips():
    config = our_config(tie_weights=True, qkv_bias=False)
    ours = GPT(config, generator=torch.Generator().manual_seed(6)).eval()
    exported = to_hf_state_dict(ours.state_dict(), config)
    assert bool((exported["transformer.h.0.attn.c_attn.bias"] == 0).all())
    hf = hf_model(tie_weights=True)
    hf.load_state_dict(exported, strict=True)
    token_ids = torch.randint(0, VOCAB, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(hf(token_ids).logits, ours(token_ids), atol=1e-5, rtol=0)
    back = from_hf_state_dict(exported, config)
    assert back.keys() == ours.state_dict().keys()
    for name, tensor in ours.state_dict().items():
        assert torch.equal(back[name], tensor), name


def test_nonzero_qkv_biases_need_qkv_bias():
    hf = hf_model(tie_weights=True)
    with pytest.raises(CheckpointError, match="qkv_bias=True"):
        from_hf_state_dict(hf.state_dict(), our_config(tie_weights=True, qkv_bias=False))


def test_original_checkpoint_layout_unprefixed_with_mask_buffers_and_no_head():
    # OpenAI's checkpoints (GPT2Model): no "transformer." prefix, no lm_head.weight (tied),
    # and in older transformers versions the attention-mask buffers attn.bias / masked_bias
    hf = hf_model(tie_weights=True)
    original = {
        name.removeprefix("transformer."): tensor
        for name, tensor in hf.state_dict().items()
        if name != "lm_head.weight"
    }
    for index in range(LAYERS):
        original[f"h.{index}.attn.bias"] = torch.ones(1, 1, CONTEXT, CONTEXT).tril()
        original[f"h.{index}.attn.masked_bias"] = torch.tensor(-1e4)
    config = our_config(tie_weights=True)
    ours = GPT(config).eval()
    ours.load_state_dict(from_hf_state_dict(original, config), strict=True)
    token_ids = torch.randint(0, VOCAB, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(ours(token_ids), hf(token_ids).logits, atol=1e-5, rtol=0)
    with pytest.raises(CheckpointError, match="tie_weights=True"):
        from_hf_state_dict(original, our_config(tie_weights=False))


def test_untied_head_into_a_tied_config_is_refused():
    hf = hf_model(tie_weights=False)
    with pytest.raises(CheckpointError, match="tie_weights=False"):
        from_hf_state_dict(hf.state_dict(), our_config(tie_weights=True))


def test_wrong_shapes_and_keys_are_named():
    hf_state = hf_model(tie_weights=False).state_dict()
    wider = our_config(tie_weights=False).replace(n_embd=64)
    with pytest.raises(CheckpointError, match="wrong shapes.*wte.weight"):
        from_hf_state_dict(hf_state, wider)
    deeper = our_config(tie_weights=False).replace(n_layer=3)
    with pytest.raises(CheckpointError, match=r"missing \[h\.2\."):
        from_hf_state_dict(hf_state, deeper)
    shallower = our_config(tie_weights=False).replace(n_layer=1)
    with pytest.raises(CheckpointError, match=r"unexpected keys \[transformer\.h\.1\."):
        from_hf_state_dict(hf_state, shallower)
    ours = GPT(our_config(tie_weights=False)).state_dict()
    del ours["ln_f.bias"]
    ours["extra.weight"] = torch.zeros(1)
    expected = r"missing \[ln_f\.bias\].*unexpected \[extra\.weight\]"
    with pytest.raises(CheckpointError, match=expected):
        to_hf_state_dict(ours, our_config(tie_weights=False))


def test_the_map_is_one_table_with_four_transposes():
    names = expand_names(our_config(tie_weights=False))
    assert len(names) == 4 + 12 * LAYERS + 1  # wte, wpe, ln_f x2, lm_head + 12 per layer
    assert len(set(names.values())) == len(names)  # one-to-one
    assert all(name.removeprefix("transformer.") == ours for ours, name in names.items())
    assert {key.split("{}.", 1)[-1] for key in NAME_MAP if "{}" in key} >= TRANSPOSED
    assert len(TRANSPOSED) == 4
