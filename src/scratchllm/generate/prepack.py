"""CPU inference with oneDNN's prepacked weights: the same model, faster batched decode steps.

A decode step of the continuous-batching engine (``engine.py``) is a handful of matrix
products per layer with 1 to ``max_batch`` rows. On a CPU, PyTorch runs ``nn.Linear`` through
MKL's sgemm, which for a few rows runs far below the machine's peak; oneDNN, given the weight
once in its own blocked layout (``torch.utils.mkldnn.to_mkldnn``), does better. Measured on
the 2-core AMD EPYC at gpt2-small shape, fp32, 2 threads (benchmarks/README.md):

| layer (in x out) | 1 row: MKL / oneDNN | 8 rows: MKL / oneDNN |
|---|---:|---:|
| output layer 768 x 50,257 | 5.9 / 5.3 ms | 21.9 / 8.7 ms |
| the 48 linear layers of the 12 blocks | 7.2 / 7.9 ms | 20.4 / 14.9 ms |

and in one run (same machine, load 0.9) the engine's 8 concurrent streams went from 96.0 to
178.7 tokens/s (1 stream: 30.4 to 38.4; 8 prompts of 30 tokens, 64 new tokens each, batched
prefill), the tokens unchanged.

``prepack_linears(model)`` swaps, in place, every plain ``nn.Linear`` of the blocks and the
output layer for such a prepacked copy, for inference only: the copies have no gradients and
are not the checkpoint's parameters any more (the server prepacks the model it alone uses).
A LoRA layer (``finetune/lora.py``) is left as it is: merge the adapters first for the speed.
The output layer of a tied model gets a copy of the embedding matrix (154 MB at gpt2-small);
the embedding itself stays. The logits agree with the original's to float rounding.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from scratchllm.model.gpt import GPT


def can_prepack(model: nn.Module) -> bool:
    """Whether ``prepack_linears`` would change anything: float32 weights on the CPU, and a
    PyTorch built with oneDNN that still has ``torch.utils.mkldnn``."""
    weight = next(model.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return False
    if not torch.backends.mkldnn.is_available():
        return False
    with warnings.catch_warnings():  # see prepacked
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from torch.utils import mkldnn
        except ImportError:  # a future PyTorch without it: plain layers, still correct
            return False
    return hasattr(mkldnn, "to_mkldnn")


def prepacked(linear: nn.Linear) -> nn.Module:
    """A oneDNN copy of a plain ``nn.Linear`` (dense in, dense out, no gradient)."""
    plain = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    with torch.no_grad():
        plain.weight.copy_(linear.weight)
        if linear.bias is not None:
            plain.bias.copy_(linear.bias)
    # torch's MkldnnLinear is a TorchScript module, whose decorators warn of TorchScript's
    # deprecation when torch.utils.mkldnn is imported; the module itself is what we want
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.utils import mkldnn

        return mkldnn.to_mkldnn(plain.eval())


def prepack_linears(model: GPT) -> int:
    """Swap the plain ``nn.Linear`` layers of ``model`` (blocks and output layer) for oneDNN
    copies, in place, for inference; returns how many were swapped (0 when ``can_prepack`` is
    false)."""
    if not can_prepack(model):
        return 0
    swapped = 0
    parents = [module for block in model.h for module in block.modules()] + [model]
    for parent in parents:
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:  # not a subclass: LoRA layers keep their adapters
                setattr(parent, name, prepacked(child))
                swapped += 1
    model.eval()
    return swapped


__all__ = ["can_prepack", "prepack_linears", "prepacked"]
