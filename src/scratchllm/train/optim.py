"""AdamW with weight decay on the weight matrices only.

Weight decay pulls weights towards zero each step. On the matrices (embeddings, projections)
that regularises; on biases and LayerNorm scales/shifts it only fights the model's ability to
shift and scale activations, so GPT-2/3-style training (and nanoGPT) exempts every parameter
with fewer than 2 dimensions. A tied ``lm_head`` is ``wte``: ``named_parameters`` lists the
shared tensor once, so it is decayed once.

torch's fused AdamW (one kernel over all parameters) runs on CUDA, MPS and the CPU since
torch 2.4 and gives the same numbers as the loop implementation; it is used where available.
It works on contiguous tensors only: given others, it clones each parameter, gradient and
moment into a contiguous copy and writes it back, every step. Our ``GPT`` stores its
``nn.Linear`` weights input-major, which makes one-token decoding faster
(``model/gpt.py``), so ``build_optimizer`` first gives every parameter contiguous storage
(same values, same ``Parameter`` objects): at gpt2-small that saves ~1 GB of copies a step.
"""

from __future__ import annotations

import torch
from torch import nn

from scratchllm.errors import ConfigError


def parameter_groups(model: nn.Module, *, weight_decay: float) -> list[dict]:
    """Two AdamW groups: ``decay`` (parameters of 2+ dimensions) and ``no_decay`` (the rest).

    Each group carries its ``names`` so a test or a log can see who is decayed. Frozen
    parameters (``requires_grad=False``) are left out.
    """
    decay: list[tuple[str, nn.Parameter]] = []
    no_decay: list[tuple[str, nn.Parameter]] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append((name, parameter))
    return [
        {
            "params": [p for _, p in decay],
            "names": [n for n, _ in decay],
            "weight_decay": weight_decay,
        },
        {
            "params": [p for _, p in no_decay],
            "names": [n for n, _ in no_decay],
            "weight_decay": 0.0,
        },
    ]


def fused_available(device: torch.device) -> bool:
    """Whether torch's fused AdamW kernel runs on ``device`` in this torch build."""
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if device.type == "cuda":
        return True
    return device.type in ("cpu", "mps") and version >= (2, 4)


def build_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over ``parameter_groups(model)``, fused where the model's device allows it.

    Lays the parameters out contiguously first (see the module docstring); build it before
    wrapping the model in DistributedDataParallel, which keeps views of the parameters.
    """
    make_parameters_contiguous(model)
    groups = parameter_groups(model, weight_decay=weight_decay)
    groups = [group for group in groups if group["params"]]
    if not groups:
        raise ConfigError("the model has no trainable parameters")
    device = next(model.parameters()).device
    if fused_available(device):
        implementation = {"fused": True}
    else:
        implementation = {"foreach": device.type != "cpu"}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **implementation)


@torch.no_grad()
def make_parameters_contiguous(model: nn.Module) -> None:
    """Give every non-contiguous parameter contiguous storage with the same values, in place
    (the ``Parameter`` objects stay, so tied weights stay tied)."""
    for parameter in model.parameters():
        if not parameter.is_contiguous():
            parameter.data = parameter.data.contiguous()


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` on every parameter group (the schedule drives it step by step)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
