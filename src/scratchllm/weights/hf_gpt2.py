"""Hugging Face GPT-2 weights <-> ours: one name map, used in both directions.

Our parameter names are GPT-2's, so the map is nearly the identity: Hugging Face's
``GPT2LMHeadModel`` prefixes the body with ``transformer.``. The one real difference is the
layout of four weights: GPT-2 stores its linear layers as ``Conv1D`` with the matrix as
``(in, out)``, where ``nn.Linear`` keeps ``(out, in)``; those four are transposed on the way.

Two formats meet here:

- ``GPT2LMHeadModel.state_dict()``: ``transformer.``-prefixed, with ``lm_head.weight`` (the same
  tensor as ``wte`` when tied);
- the original checkpoints (``GPT2Model``, and the ``model.safetensors`` of OpenAI's ``gpt2``
  repository): no prefix, no ``lm_head.weight`` (the head is tied), and in older versions the
  attention-mask buffers ``h.{i}.attn.bias`` / ``h.{i}.attn.masked_bias``, which hold no weights
  and are dropped.

Every Hugging Face ``c_attn`` has a bias; a model built with ``qkv_bias=False`` exports zeros
there and refuses to import non-zero ones. Keys and shapes are checked strictly against the
config (``scratchllm.model.gpt.parameter_shapes``): any missing, unexpected or misshapen entry
is a ``CheckpointError`` that lists them.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from scratchllm.config import GPTConfig
from scratchllm.errors import CheckpointError
from scratchllm.model.gpt import parameter_shapes

HF_PREFIX = "transformer."

# ours -> Hugging Face's GPT2LMHeadModel; "{}" is the layer index.
NAME_MAP: dict[str, str] = {
    "wte.weight": "transformer.wte.weight",
    "wpe.weight": "transformer.wpe.weight",
    "h.{}.ln_1.weight": "transformer.h.{}.ln_1.weight",
    "h.{}.ln_1.bias": "transformer.h.{}.ln_1.bias",
    "h.{}.attn.c_attn.weight": "transformer.h.{}.attn.c_attn.weight",
    "h.{}.attn.c_attn.bias": "transformer.h.{}.attn.c_attn.bias",
    "h.{}.attn.c_proj.weight": "transformer.h.{}.attn.c_proj.weight",
    "h.{}.attn.c_proj.bias": "transformer.h.{}.attn.c_proj.bias",
    "h.{}.ln_2.weight": "transformer.h.{}.ln_2.weight",
    "h.{}.ln_2.bias": "transformer.h.{}.ln_2.bias",
    "h.{}.mlp.c_fc.weight": "transformer.h.{}.mlp.c_fc.weight",
    "h.{}.mlp.c_fc.bias": "transformer.h.{}.mlp.c_fc.bias",
    "h.{}.mlp.c_proj.weight": "transformer.h.{}.mlp.c_proj.weight",
    "h.{}.mlp.c_proj.bias": "transformer.h.{}.mlp.c_proj.bias",
    "ln_f.weight": "transformer.ln_f.weight",
    "ln_f.bias": "transformer.ln_f.bias",
    "lm_head.weight": "lm_head.weight",
}

# Conv1D weights, stored (in, out): transposed in both directions (the suffix after "h.{i}.").
TRANSPOSED = frozenset(
    {"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"}
)

# Buffers some transformers versions keep in the state dict: the causal mask, no weights.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")

_QKV_BIAS = "h.{}.attn.c_attn.bias"


def expand_names(config: GPTConfig) -> dict[str, str]:
    """The name map for ``config.n_layer`` layers: our key -> Hugging Face key.

    >>> expand_names(GPTConfig(n_layer=2))["h.1.attn.c_attn.weight"]
    'transformer.h.1.attn.c_attn.weight'
    """
    names: dict[str, str] = {}
    for ours, theirs in NAME_MAP.items():
        if "{}" in ours:
            names.update({ours.format(i): theirs.format(i) for i in range(config.n_layer)})
        else:
            names[ours] = theirs
    return names


def to_hf_state_dict(
    ours: Mapping[str, torch.Tensor], config: GPTConfig
) -> dict[str, torch.Tensor]:
    """Our ``GPT.state_dict()`` -> ``GPT2LMHeadModel``'s (``load_state_dict(strict=True)``)."""
    expected = parameter_shapes(config)
    ours = dict(ours)
    if config.tie_weights:  # a tied head may be left out: it is wte
        ours.setdefault("lm_head.weight", ours.get("wte.weight"))
    _check_keys_and_shapes(ours, expected, what="our state dict", config=config)
    hf: dict[str, torch.Tensor] = {}
    for our_name, hf_name in expand_names(config).items():
        if our_name not in ours:  # only the qkv bias of a qkv_bias=False model
            weight = ours[our_name.replace(".bias", ".weight")]
            hf[hf_name] = torch.zeros(3 * config.n_embd, dtype=weight.dtype, device=weight.device)
            continue
        tensor = ours[our_name]
        hf[hf_name] = tensor.t().contiguous() if _is_transposed(our_name) else tensor
    return hf


def from_hf_state_dict(
    hf_state: Mapping[str, torch.Tensor], config: GPTConfig
) -> dict[str, torch.Tensor]:
    """A Hugging Face GPT-2 state dict -> ours, ready for ``GPT(config).load_state_dict``.

    Accepts ``GPT2LMHeadModel``'s keys (``transformer.`` prefix) and the unprefixed original
    ones; a missing ``lm_head.weight`` means a tied head, which needs ``config.tie_weights``.
    """
    has_prefix = any(key.startswith(HF_PREFIX) for key in hf_state)
    names = expand_names(config)
    if not has_prefix:
        names = {ours: theirs.removeprefix(HF_PREFIX) for ours, theirs in names.items()}
    hf = {key: value for key, value in hf_state.items() if not key.endswith(IGNORED_SUFFIXES)}
    if "lm_head.weight" not in hf:
        if not config.tie_weights:
            raise CheckpointError(
                "these weights have no lm_head.weight (the output head is tied to wte): load "
                "them with tie_weights=True"
            )
        hf["lm_head.weight"] = hf.get(names["wte.weight"])
    theirs_to_ours = {theirs: ours for ours, theirs in names.items()}
    unexpected = sorted(set(hf) - set(theirs_to_ours))
    if unexpected:
        raise CheckpointError(
            f"these are not GPT-2 weights for a {config.n_layer}-layer model: unexpected keys "
            f"{_short(unexpected)}"
        )
    ours = {
        our_name: hf[hf_name].t().contiguous() if _is_transposed(our_name) else hf[hf_name]
        for hf_name, our_name in theirs_to_ours.items()
        if hf.get(hf_name) is not None
    }
    if not config.qkv_bias:
        _drop_zero_qkv_biases(ours, config)
    _check_keys_and_shapes(ours, parameter_shapes(config), what="the GPT-2 weights", config=config)
    if config.tie_weights and not torch.equal(ours["lm_head.weight"], ours["wte.weight"]):
        raise CheckpointError(
            "these weights have an output head that differs from wte: load them with "
            "tie_weights=False"
        )
    return ours


def _is_transposed(our_name: str) -> bool:
    return our_name.split(".", 2)[-1] in TRANSPOSED if our_name.startswith("h.") else False


def _drop_zero_qkv_biases(ours: dict[str, torch.Tensor], config: GPTConfig) -> None:
    for index in range(config.n_layer):
        bias = ours.pop(_QKV_BIAS.format(index), None)
        if bias is not None and bool(bias.any()):
            raise CheckpointError(
                f"these weights have non-zero query/key/value biases (layer {index}): load them "
                f"with qkv_bias=True (OpenAI's GPT-2 checkpoints need it)"
            )


def _check_keys_and_shapes(
    state: Mapping[str, torch.Tensor | None],
    expected: Mapping[str, tuple[int, ...]],
    *,
    what: str,
    config: GPTConfig,
) -> None:
    missing = sorted(name for name in expected if state.get(name) is None)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{what} do not match the config ({config.n_layer} layers, qkv_bias="
            f"{config.qkv_bias}, tie_weights={config.tie_weights}): missing {_short(missing)}, "
            f"unexpected {_short(unexpected)}"
        )
    wrong = [
        f"{name} {tuple(state[name].shape)} (expected {shape})"
        for name, shape in expected.items()
        if tuple(state[name].shape) != shape
    ]
    if wrong:
        raise CheckpointError(
            f"{what} do not match the config (n_embd {config.n_embd}, vocab_size "
            f"{config.vocab_size}, context_length {config.context_length}): wrong shapes, "
            f"in nn.Linear's (out, in) layout, {_short(wrong)}"
        )


def _short(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return f"[{shown}]{more}" if items else "none"
