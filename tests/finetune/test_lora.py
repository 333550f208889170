"""LoRA adapters against a naive reference: the update, the names, merging, the shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scratchllm.config import GPTConfig, LoRAConfig
from scratchllm.errors import ConfigError
from scratchllm.finetune.lora import (
    LoRALinear,
    adapter_shapes,
    apply_lora,
    lora_config_of,
    merge_lora,
)
from scratchllm.model.gpt import GPT

CONFIG = GPTConfig(
    vocab_size=64, context_length=12, n_embd=16, n_head=2, n_layer=2, dropout=0.0,
    qkv_bias=True, tie_weights=True,
)  # fmt: skip


def model(seed: int = 0) -> GPT:
    return GPT(CONFIG, generator=torch.Generator().manual_seed(seed)).eval()


def randomise_b(gpt: nn.Module) -> None:
    with torch.no_grad():
        for name, parameter in gpt.named_parameters():
            if name.endswith("lora_B"):
                parameter.normal_(0.0, 0.2)


def test_the_update_is_the_papers_formula():
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, LoRAConfig(rank=3, alpha=6))
    assert layer.weight is base.weight and layer.bias is base.bias
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 6)
    a, b = layer.lora_A[0], layer.lora_B[0]  # (rank, in), (out, rank)
    expected = x @ base.weight.T + base.bias + 2.0 * (x @ a.T @ b.T)
    torch.testing.assert_close(layer(x), expected)


def test_split_parts_are_independent_adapters_on_thirds_of_the_output():
    # the walkthrough's W_query / W_key / W_value each get their own adapter; ours are the
    # three parts of one LoRALinear on the fused matrix
    base = nn.Linear(8, 12)
    layer = LoRALinear(base, LoRAConfig(rank=2, alpha=2), parts=3)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(5, 8)
    thirds = [x @ layer.lora_A[p].T @ layer.lora_B[p].T for p in range(3)]
    expected = base(x) + torch.cat(thirds, dim=-1)
    torch.testing.assert_close(layer(x), expected)
    merged = base.weight + layer.delta_weight()
    torch.testing.assert_close(x @ merged.T + base.bias, expected, rtol=1e-5, atol=1e-5)


def test_adapters_match_the_walkthroughs_appendix_e():
    appendix_e = pytest.importorskip(
        "llms_from_scratch.appendix_e", reason="the walkthrough's package (make test installs it)"
    )
    base = nn.Linear(10, 7)
    torch.manual_seed(5)
    theirs = appendix_e.LinearWithLoRA(base, rank=4, alpha=3)
    torch.manual_seed(5)  # the same draw: A is (in, rank), Kaiming uniform with a = sqrt(5)
    ours = LoRALinear(base, LoRAConfig(rank=4, alpha=3 * 4))  # its scale is alpha, ours alpha/r
    torch.testing.assert_close(ours.lora_A[0], theirs.lora.A.T, rtol=0, atol=0)
    with torch.no_grad():
        theirs.lora.B.normal_()
        ours.lora_B[0].copy_(theirs.lora.B.T)
    x = torch.randn(3, 10)
    torch.testing.assert_close(ours(x), theirs(x))


def test_a_fresh_adapter_changes_nothing_and_keeps_gpt2_names():
    gpt = model()
    ids = torch.randint(0, 64, (2, 7))
    before = gpt(ids)
    names_before = set(gpt.state_dict())
    wrapped = apply_lora(gpt, LoRAConfig(rank=4, targets=("attn.c_attn", "mlp.c_proj")))
    assert wrapped == ["h.0.attn.c_attn", "h.0.mlp.c_proj", "h.1.attn.c_attn", "h.1.mlp.c_proj"]
    torch.testing.assert_close(gpt(ids), before, rtol=0, atol=0)  # B = 0
    added = set(gpt.state_dict()) - names_before
    assert names_before <= set(gpt.state_dict())  # every GPT-2 name is still there
    assert added == {f"{layer}.{part}" for layer in wrapped for part in ("lora_A", "lora_B")}


def test_adapter_shapes_are_those_of_the_applied_model():
    for targets in [("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"), ("lm_head",)]:
        gpt = model()
        config = LoRAConfig(rank=3, targets=targets)
        apply_lora(gpt, config)
        actual = {
            name: tuple(tensor.shape)
            for name, tensor in gpt.state_dict().items()
            if "lora_" in name
        }
        assert actual == adapter_shapes(CONFIG, config)


def test_merging_gives_the_same_outputs_as_a_plain_model():
    gpt = model()
    ids = torch.randint(0, 64, (2, 9))
    apply_lora(gpt, LoRAConfig(rank=2, alpha=8))
    randomise_b(gpt)
    adapted = gpt(ids)
    assert not torch.allclose(adapted, model()(ids))  # the adapters do change the model
    merge_lora(gpt)
    assert lora_config_of(gpt) is None
    assert not any("lora" in name for name in gpt.state_dict())
    assert set(gpt.state_dict()) == set(model().state_dict())
    torch.testing.assert_close(gpt(ids), adapted, rtol=1e-5, atol=1e-5)


def test_a_tied_head_stays_tied_and_cannot_be_merged():
    gpt = model()
    apply_lora(gpt, LoRAConfig(targets=("lm_head",)))
    assert gpt.lm_head.weight is gpt.wte.weight
    with pytest.raises(ConfigError, match="tied lm_head"):
        merge_lora(gpt)


def test_applying_twice_or_to_nothing_is_an_error():
    gpt = model()
    apply_lora(gpt, LoRAConfig())
    with pytest.raises(ConfigError, match="has LoRA adapters already"):
        apply_lora(gpt, LoRAConfig())
    with pytest.raises(ConfigError, match="no linear layer"):
        apply_lora(nn.Sequential(nn.ReLU()), LoRAConfig())


def test_gradients_reach_only_the_adapters_when_the_rest_is_frozen():
    gpt = model().train()
    apply_lora(gpt, LoRAConfig(rank=2))
    for name, parameter in gpt.named_parameters():
        parameter.requires_grad_("lora_" in name)
    gpt(torch.randint(0, 64, (2, 5))).sum().backward()
    grads = {n: p.grad for n, p in gpt.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in name for name in grads)
    # B starts at zero, so the first step moves B only: A's gradient is B^T times something
    assert all(bool(g.any()) == name.endswith("lora_B") for name, g in grads.items())
