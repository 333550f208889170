"""oneDNN's prepacked linear layers (``generate/prepack.py``): the same logits (to float
rounding) and the same greedy tokens as the plain model, LoRA layers left alone."""

from __future__ import annotations

import copy

import pytest
import torch

from scratchllm.config import GPTConfig, LoRAConfig
from scratchllm.finetune.lora import LoRALinear, apply_lora
from scratchllm.generate import generate_tokens
from scratchllm.generate.engine import Engine, SamplingParams
from scratchllm.generate.prepack import can_prepack, prepack_linears

CONFIG = GPTConfig(vocab_size=97, context_length=48, n_embd=32, n_head=4, n_layer=2,
                   dropout=0.0, qkv_bias=True, tie_weights=True)  # fmt: skip

pytestmark = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="this PyTorch has no oneDNN (mkldnn)"
)


def model(seed: int = 0):
    from scratchllm.model.gpt import GPT

    return GPT(CONFIG, generator=torch.Generator().manual_seed(seed)).eval()


def test_prepacked_layers_give_the_same_logits_and_tokens():
    plain = model()
    packed = copy.deepcopy(plain)
    assert prepack_linears(packed) == 4 * CONFIG.n_layer + 1  # each block's four, and the head
    assert not any(type(m) is torch.nn.Linear for m in packed.modules())
    ids = torch.randint(0, CONFIG.vocab_size, (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(packed(ids), plain(ids), atol=1e-5)
    prompt = [5, 17, 3, 88]
    expected = list(generate_tokens(plain, prompt, max_new_tokens=20))
    assert list(generate_tokens(packed, prompt, max_new_tokens=20)) == expected
    engine = Engine(packed, max_batch=2)  # the server's engine: slots over the packed layers
    request = engine.submit(prompt, SamplingParams(max_new_tokens=20))
    tokens = []
    while engine.has_work:
        tokens += [
            e.token for e in engine.step() if e.request_id == request and e.token is not None
        ]
    assert tokens == expected


def test_lora_layers_keep_their_adapters_and_other_models_are_left_alone():
    with_adapters = model()
    torch.manual_seed(0)
    apply_lora(with_adapters, LoRAConfig(rank=2, alpha=4, targets=("attn.c_attn",)))
    swapped = prepack_linears(with_adapters)
    assert swapped == 3 * CONFIG.n_layer + 1  # c_attn kept its LoRA layer
    assert all(isinstance(block.attn.c_attn, LoRALinear) for block in with_adapters.h)
    half = model().to(torch.bfloat16)
    assert not can_prepack(half) and prepack_linears(half) == 0
