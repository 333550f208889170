"""LoRA: low-rank adapters on a GPT's linear layers, applied after loading, names kept.

Finetuning every weight of a GPT moves hundreds of millions of numbers; LoRA (Hu et al. 2021,
"LoRA: Low-Rank Adaptation of Large Language Models") freezes them and learns a low-rank
update instead. A targeted layer ``y = x W^T + b`` becomes

    y = x W^T + b + (alpha / rank) * (dropout(x) A^T) B^T      A: (rank, in), B: (out, rank)

with ``A`` drawn as ``nn.Linear`` draws a weight (Kaiming uniform) and ``B`` zero, so the model
starts out exactly as loaded. At gpt2-small with rank 8 on the four block projections that is
1.3M trainable numbers instead of 124M.

As the walkthrough's appendix E does, the adapters are a small wrapper applied after the model
is built. Unlike it, ``LoRALinear`` *is* an ``nn.Linear`` holding the very ``weight`` and
``bias`` parameters it wraps, so the state dict keeps GPT-2's names (``h.0.attn.c_attn.weight``)
and only adds ``h.0.attn.c_attn.lora_A`` / ``lora_B``; a tied ``lm_head`` stays tied. The
checkpoint keeps the adapters in their own file, declared in ``config.json``
(``weights/checkpoint.py``); ``merge_lora`` folds them into the weights for plain inference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scratchllm.config import GPTConfig, LoRAConfig
from scratchllm.errors import ConfigError

ADAPTER_SUFFIXES = (".lora_A", ".lora_B")


class LoRALinear(nn.Linear):
    """An ``nn.Linear`` plus a low-rank update; see the module docstring."""

    def __init__(self, base: nn.Linear, config: LoRAConfig) -> None:
        nn.Module.__init__(self)  # no new weight: the base layer's own parameters are kept
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.config = config
        self.scale = config.scale
        reference = base.weight
        self.lora_A = nn.Parameter(
            torch.empty(config.rank, self.in_features, dtype=reference.dtype,
                        device=reference.device)
        )  # fmt: skip
        self.lora_B = nn.Parameter(
            torch.zeros(self.out_features, config.rank, dtype=reference.dtype,
                        device=reference.device)
        )  # fmt: skip
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own weight init
        self.lora_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)
        return F.linear(x, self.weight, self.bias) + self.scale * update

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.config.rank}, alpha={self.config.alpha}"


def target_layers(model: nn.Module, config: LoRAConfig) -> dict[str, nn.Linear]:
    """The model's linear layers that ``config.targets`` names, by their full names."""
    found = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and _target_of(name) in config.targets
    }
    if not found:
        raise ConfigError(f"no linear layer of this model matches the targets {config.targets}")
    return found


def apply_lora(model: nn.Module, config: LoRAConfig) -> list[str]:
    """Wrap every targeted layer of ``model`` in a ``LoRALinear``, in place; their names.

    The adapters' ``A`` are drawn from torch's global generator (seed it first to reproduce).
    """
    if lora_config_of(model) is not None:
        raise ConfigError("this model has LoRA adapters already; merge or drop them first")
    layers = target_layers(model, config)
    for name, layer in layers.items():
        parent_name, _, attribute = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attribute, LoRALinear(layer, config))
    return list(layers)


def lora_config_of(model: nn.Module) -> LoRAConfig | None:
    """The config of the model's adapters, or None when it has none."""
    for module in model.modules():
        if isinstance(module, LoRALinear):
            return module.config
    return None


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its weight (``W += scale * B A``) and unwrap the layer, in place.

    The merged model computes what the adapted one did (up to float rounding) with no extra
    matrix products, and saves as a plain GPT. A tied ``lm_head`` cannot take an update of its
    own without untying it from ``wte``: that is refused.
    """
    for name, module in list(model.named_modules()):
        if not isinstance(module, LoRALinear):
            continue
        wte = getattr(model, "wte", None)
        if wte is not None and module.weight is wte.weight:
            raise ConfigError("cannot merge LoRA into a tied lm_head (it would change wte too)")
        module.weight += module.scale * (module.lora_B @ module.lora_A)
        plain = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                          device="meta")  # fmt: skip
        plain.weight, plain.bias = module.weight, module.bias
        parent_name, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attribute, plain)
    return model


def is_adapter_key(name: str) -> bool:
    """Whether a state-dict key is an adapter's (``...lora_A`` / ``...lora_B``)."""
    return name.endswith(ADAPTER_SUFFIXES)


def adapter_shapes(model: GPTConfig, config: LoRAConfig) -> dict[str, tuple[int, ...]]:
    """The adapter tensors a GPT of shape ``model`` with ``config`` has: name -> shape.

    A pure function of the two configs, so a checkpoint's adapter file is checked key by key
    and shape by shape before anything is loaded.

    >>> shapes = adapter_shapes(GPTConfig(n_layer=1), LoRAConfig(rank=4, targets=("mlp.c_fc",)))
    >>> shapes["h.0.mlp.c_fc.lora_A"], shapes["h.0.mlp.c_fc.lora_B"]
    ((4, 768), (3072, 4))
    """
    width, vocab = model.n_embd, model.vocab_size
    in_out = {
        "attn.c_attn": (width, 3 * width),
        "attn.c_proj": (width, width),
        "mlp.c_fc": (width, 4 * width),
        "mlp.c_proj": (4 * width, width),
        "lm_head": (width, vocab),
    }
    names = [f"h.{i}.{t}" for i in range(model.n_layer) for t in config.targets if t != "lm_head"]
    if "lm_head" in config.targets:
        names.append("lm_head")
    shapes: dict[str, tuple[int, ...]] = {}
    for name in names:
        fan_in, fan_out = in_out[_target_of(name)]
        shapes[f"{name}.lora_A"] = (config.rank, fan_in)
        shapes[f"{name}.lora_B"] = (fan_out, config.rank)
    return shapes


def _target_of(layer_name: str) -> str:
    """``h.3.attn.c_attn`` -> ``attn.c_attn``; ``lm_head`` -> ``lm_head``."""
    parts = layer_name.split(".")
    return ".".join(parts[2:]) if parts[0] == "h" and len(parts) > 2 else layer_name
