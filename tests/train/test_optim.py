"""AdamW groups: weight decay on matrices only, and one update checked by hand."""

from __future__ import annotations

import torch

from scratchllm.config import GPTConfig
from scratchllm.model.gpt import GPT
from scratchllm.train.optim import build_optimizer, parameter_groups

CONFIG = GPTConfig(vocab_size=50, context_length=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0)


def test_matrices_are_decayed_and_vectors_are_not():
    model = GPT(CONFIG.replace(qkv_bias=True), generator=torch.Generator().manual_seed(0))
    decay, no_decay = parameter_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert set(decay["names"]) == {n for n, p in model.named_parameters() if p.dim() == 2}
    assert "wte.weight" in decay["names"] and "h.0.attn.c_attn.weight" in decay["names"]
    assert "h.0.attn.c_attn.bias" in no_decay["names"] and "ln_f.weight" in no_decay["names"]
    count = sum(p.numel() for group in (decay, no_decay) for p in group["params"])
    assert count == sum(p.numel() for p in model.parameters())


def test_a_tied_head_is_one_parameter_decayed_once():
    model = GPT(CONFIG.replace(tie_weights=True), generator=torch.Generator().manual_seed(0))
    decay, _ = parameter_groups(model, weight_decay=0.1)
    assert "wte.weight" in decay["names"] and "lm_head.weight" not in decay["names"]
    assert len({id(p) for p in decay["params"]}) == len(decay["params"])


def test_first_update_matches_adamw_worked_by_hand():
    # After one step Adam's bias-corrected moments are m = g and v = g^2, so the update is
    # p <- p * (1 - lr * wd) - lr * g / (|g| + eps)  (decoupled decay only in the decay group)
    model = GPT(CONFIG, generator=torch.Generator().manual_seed(0))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = build_optimizer(model, lr=0.01, weight_decay=0.5)
    assert optimizer.defaults["fused"]  # the fused kernel runs on the CPU in torch >= 2.4
    tokens = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(1))
    logits = model(tokens)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    optimizer.step()
    for name, p in model.named_parameters():
        decay = 0.5 if p.dim() >= 2 else 0.0
        g = grads[name]
        expected = before[name] * (1 - 0.01 * decay) - 0.01 * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)


def test_the_optimizer_gets_contiguous_parameters_so_its_step_copies_nothing():
    model = GPT(CONFIG.replace(tie_weights=True), generator=torch.Generator().manual_seed(0))
    assert not model.h[0].mlp.c_fc.weight.is_contiguous()  # the model's decode layout
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.1)
    assert all(parameter.is_contiguous() for parameter in model.parameters())
    assert model.lm_head.weight is model.wte.weight  # still tied
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name

    model(torch.randint(0, 50, (2, 8))).sum().backward()
    with torch.profiler.profile() as profile:
        optimizer.step()
    clones = [event.count for event in profile.key_averages() if event.key == "aten::clone"]
    assert clones == []  # the fused kernel clones each non-contiguous parameter, every step
