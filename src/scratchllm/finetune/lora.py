"""LoRA: low-rank adapters on a GPT's linear layers, applied after loading, names kept.

Finetuning every weight of a GPT moves hundreds of millions of numbers; LoRA (Hu et al. 2021,
"LoRA: Low-Rank Adaptation of Large Language Models") freezes them and learns a low-rank
update instead. A targeted layer ``y = x W^T + b`` becomes

    y = x W^T + b + (alpha / rank) * (dropout(x) A^T) B^T      A: (rank, in), B: (out, rank)

with ``B`` zero, so the model starts out exactly as loaded, and ``A`` drawn as the walkthrough's
appendix E draws it: ``kaiming_uniform_(a=sqrt(5))`` on an ``(in, rank)`` tensor, i.e. uniform
in +-1/sqrt(rank). The scale is the paper's ``alpha / rank``; appendix E's code scales by
``alpha`` alone, so its rank 16, alpha 16 is our rank 16, alpha 256 (the tests check both).

Our ``c_attn`` is the walkthrough's ``W_query``, ``W_key`` and ``W_value`` stacked into one
matrix. With ``LoRAConfig.split_qkv`` (the default) it gets one adapter per projection, as the
walkthrough's separate layers do: ``lora_A`` is then ``(3, rank, in)`` and ``lora_B``
``(3, out / 3, rank)``, and each third of the output gets its own update. So rank 16, alpha 16
on every linear layer of gpt2-small plus a 2-class head trains the walkthrough's 2,666,528
parameters; one adapter over the fused matrix (``split_qkv = False``) trains 2,371,616.

As in appendix E, the adapters are a small wrapper applied after the model is built. Unlike
it, ``LoRALinear`` *is* an ``nn.Linear`` holding the very ``weight`` and ``bias`` parameters
it wraps, so the state dict keeps GPT-2's names (``h.0.attn.c_attn.weight``) and only adds
``h.0.attn.c_attn.lora_A`` / ``lora_B``; a tied ``lm_head`` stays tied. The checkpoint keeps
the adapters in their own file, declared in ``config.json`` (``weights/checkpoint.py``);
``merge_lora`` folds them into the weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scratchllm.config import GPTConfig, LoRAConfig
from scratchllm.errors import ConfigError

ADAPTER_NAMES = ("lora_A", "lora_B")
HEAD = "head"  # the target name of a task head (model/heads.py), which lives beside the GPT


class LoRALinear(nn.Linear):
    """An ``nn.Linear`` plus a low-rank update in ``parts`` independent slices of its output
    (3 for a fused q/k/v projection); see the module docstring."""

    def __init__(self, base: nn.Linear, config: LoRAConfig, *, parts: int = 1) -> None:
        nn.Module.__init__(self)  # no new weight: the base layer's own parameters are kept
        if base.out_features % parts:
            raise ConfigError(f"{base.out_features} outputs do not split into {parts} parts")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.config, self.parts = config, parts
        self.scale = config.scale
        rank, reference = config.rank, base.weight
        like = {"dtype": reference.dtype, "device": reference.device}
        self.lora_A = nn.Parameter(torch.empty(parts, rank, self.in_features, **like))
        self.lora_B = nn.Parameter(torch.zeros(parts, self.out_features // parts, rank, **like))
        self.reset_adapter()
        self.lora_dropout = nn.Dropout(config.dropout)

    @torch.no_grad()
    def reset_adapter(self) -> None:
        """``B`` zero; each part's ``A`` drawn as the walkthrough draws its ``(in, rank)`` A."""
        for part in range(self.parts):
            drawn = torch.empty(self.in_features, self.config.rank, dtype=self.lora_A.dtype)
            nn.init.kaiming_uniform_(drawn, a=math.sqrt(5))  # fan_in = rank here, as there
            self.lora_A[part].copy_(drawn.T)
        self.lora_B.zero_()

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """The adapter's output ``(..., out)`` for inputs ``(..., in)``, before scaling."""
        parts, rank = self.parts, self.config.rank
        low = F.linear(self.lora_dropout(x), self.lora_A.reshape(parts * rank, -1))
        low = low.unflatten(-1, (parts, rank))  # (..., parts, rank)
        return torch.einsum("...pr,por->...po", low, self.lora_B).flatten(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + self.scale * self.update(x)

    def delta_weight(self) -> torch.Tensor:
        """``scale * B A`` as one ``(out, in)`` matrix, the parts stacked."""
        pairs = zip(self.lora_A, self.lora_B, strict=True)
        return self.scale * torch.cat([b @ a for a, b in pairs])

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, rank={self.config.rank}, alpha={self.config.alpha}, "
            f"parts={self.parts}"
        )


def target_layers(model: nn.Module, config: LoRAConfig) -> dict[str, nn.Linear]:
    """The GPT's linear layers that ``config.targets`` names, by their full names."""
    found = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and _target_of(name) in config.targets
    }
    if not found:
        raise ConfigError(f"no linear layer of this model matches the targets {config.targets}")
    return found


def apply_lora(model: nn.Module, config: LoRAConfig) -> list[str]:
    """Wrap every targeted layer of a GPT in a ``LoRALinear``, in place; their names.

    The adapters' ``A`` are drawn from torch's global generator in module order (seed it
    first to reproduce). The ``head`` target is not the GPT's: see ``wrap_head``.
    """
    if lora_config_of(model) is not None:
        raise ConfigError("this model has LoRA adapters already; merge or drop them first")
    layers = target_layers(model, config)
    for name, layer in layers.items():
        parent_name, _, attribute = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attribute, LoRALinear(layer, config, parts=_parts(name, config)))
    return list(layers)


def wrap_head(head: nn.Linear, config: LoRAConfig) -> LoRALinear:
    """A task head with an adapter of its own (the ``head`` target), as appendix E gives the
    classifier's output layer one."""
    return LoRALinear(head, config)


def lora_config_of(model: nn.Module) -> LoRAConfig | None:
    """The config of the model's adapters, or None when it has none."""
    for module in model.modules():
        if isinstance(module, LoRALinear):
            return module.config
    return None


def freeze_all_but_adapters(*modules: nn.Module) -> None:
    """Train the adapters only (appendix E freezes every other weight, the head's too)."""
    for module in modules:
        for name, parameter in module.named_parameters():
            parameter.requires_grad_(is_adapter_key(name))


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its weight (``W += scale * B A``) and unwrap the layer, in place.

    The merged model computes what the adapted one did (up to float rounding) with no extra
    matrix products, and saves as a plain GPT. A tied ``lm_head`` cannot take an update of its
    own without untying it from ``wte``: that is refused. A ``LoRALinear`` given as ``model``
    itself (a wrapped head) comes back as its plain layer.
    """
    if isinstance(model, LoRALinear):
        model.weight += model.delta_weight()
        return _unwrapped(model)
    wte = getattr(model, "wte", None)
    for name, module in list(model.named_modules()):
        if not isinstance(module, LoRALinear):
            continue
        if wte is not None and module.weight is wte.weight:
            raise ConfigError("cannot merge LoRA into a tied lm_head (it would change wte too)")
        module.weight += module.delta_weight()
        parent_name, _, attribute = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attribute, _unwrapped(module))
    return model


def _unwrapped(module: LoRALinear) -> nn.Linear:
    plain = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                      device="meta")  # fmt: skip
    plain.weight, plain.bias = module.weight, module.bias
    return plain


def is_adapter_key(name: str) -> bool:
    """Whether a state-dict key is an adapter's (``...lora_A`` / ``...lora_B``)."""
    return name.rpartition(".")[2] in ADAPTER_NAMES


def adapter_shapes(
    model: GPTConfig, config: LoRAConfig, *, num_classes: int | None = None
) -> dict[str, tuple[int, ...]]:
    """The adapter tensors a GPT of shape ``model`` with ``config`` has: name -> shape, and a
    task head's (``head.lora_A`` / ``head.lora_B``) when ``head`` is a target.

    A pure function of the configs, so a checkpoint's adapter file is checked key by key and
    shape by shape before anything is loaded.

    >>> shapes = adapter_shapes(GPTConfig(n_layer=1), LoRAConfig(rank=4, targets=("mlp.c_fc",)))
    >>> shapes["h.0.mlp.c_fc.lora_A"], shapes["h.0.mlp.c_fc.lora_B"]
    ((1, 4, 768), (1, 3072, 4))
    >>> adapter_shapes(GPTConfig(n_layer=1), LoRAConfig(rank=4))["h.0.attn.c_attn.lora_B"]
    (3, 768, 4)
    """
    width, vocab = model.n_embd, model.vocab_size
    in_out = {
        "attn.c_attn": (width, 3 * width),
        "attn.c_proj": (width, width),
        "mlp.c_fc": (width, 4 * width),
        "mlp.c_proj": (4 * width, width),
        "lm_head": (width, vocab),
        HEAD: (width, num_classes or 0),
    }
    block = [t for t in config.targets if t not in ("lm_head", HEAD)]
    names = [f"h.{i}.{t}" for i in range(model.n_layer) for t in block]
    names += [t for t in ("lm_head", HEAD) if t in config.targets]
    if HEAD in config.targets and not num_classes:
        raise ConfigError("the 'head' LoRA target needs a task head (a classifier)")
    shapes: dict[str, tuple[int, ...]] = {}
    for name in names:
        fan_in, fan_out = in_out[_target_of(name)]
        parts = _parts(name, config)
        shapes[f"{name}.lora_A"] = (parts, config.rank, fan_in)
        shapes[f"{name}.lora_B"] = (parts, fan_out // parts, config.rank)
    return shapes


def trainable_adapter_parameters(shapes: dict[str, tuple[int, ...]]) -> int:
    """How many numbers ``adapter_shapes`` trains.

    >>> small = GPTConfig.from_name("gpt2-small", qkv_bias=True, tie_weights=True)
    >>> every = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj", "head")
    >>> config = LoRAConfig(rank=16, alpha=16, targets=every)
    >>> trainable_adapter_parameters(adapter_shapes(small, config, num_classes=2))  # appendix E
    2666528
    >>> fused = LoRAConfig(rank=16, alpha=16, targets=every, split_qkv=False)
    >>> trainable_adapter_parameters(adapter_shapes(small, fused, num_classes=2))
    2371616
    """
    return sum(math.prod(shape) for shape in shapes.values())


def _parts(layer_name: str, config: LoRAConfig) -> int:
    return 3 if config.split_qkv and _target_of(layer_name) == "attn.c_attn" else 1


def _target_of(layer_name: str) -> str:
    """``h.3.attn.c_attn`` -> ``attn.c_attn``; ``lm_head`` -> ``lm_head``."""
    parts = layer_name.split(".")
    return ".".join(parts[2:]) if parts[0] == "h" and len(parts) > 2 else layer_name
