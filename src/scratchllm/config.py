"""Model configuration: one typed, torch-free dataclass and the presets it is built from.

``GPTConfig`` describes the shape of a GPT-2 style model. It is read by the model, the CLI,
checkpoints and the server alike, so it imports nothing heavier than the standard library.

The defaults are the walkthrough's ``GPT_CONFIG_124M``. Presets are looked up by name:

>>> GPTConfig.from_name("gpt2-medium").n_layer
24
>>> GPTConfig.from_name("cpu-tiny", dropout=0.0).head_dim
16
>>> GPTConfig(n_head=0)
Traceback (most recent call last):
    ...
scratchllm.errors.ConfigError: n_head must be a positive integer, got 0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from scratchllm.errors import ConfigError


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT-2 style decoder-only transformer.

    The defaults give the walkthrough's 124M model. With ``qkv_bias=False`` and
    ``tie_weights=False`` (the walkthrough's choices) it has 163,009,536 parameters; tying the
    output head to ``wte`` gives 124,412,160. OpenAI's released GPT-2 checkpoints have
    ``qkv_bias=True`` (+27,648 parameters at this size) and a tied head: load them with
    ``GPTConfig.from_name("gpt2-small", qkv_bias=True, tie_weights=True)``.
    """

    vocab_size: int = 50257  # GPT-2's BPE: 50,000 merges + 256 bytes + <|endoftext|>
    context_length: int = 1024  # longest sequence; the size of the positional table wpe
    n_embd: int = 768  # width of every token vector (C)
    n_head: int = 12  # attention heads; each sees n_embd / n_head dims (hs)
    n_layer: int = 12  # transformer blocks
    dropout: float = 0.1  # one rate for embeddings, attention weights and residual branches
    qkv_bias: bool = False  # the walkthrough leaves the q/k/v projection bias-free; GPT-2 has one
    tie_weights: bool = False  # share wte with the output head (GPT-2 does; the walkthrough not)
    layer_norm_eps: float = 1e-5  # GPT-2's epsilon; keeps 1/sqrt(var + eps) finite

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "n_embd", "n_head", "n_layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ConfigError(
                f"n_embd {self.n_embd} must be divisible by n_head {self.n_head} "
                f"(each head gets n_embd / n_head dims)"
            )
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.layer_norm_eps, int | float) or not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        for name in ("qkv_bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        """Dimensions per attention head (``hs``)."""
        return self.n_embd // self.n_head

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> GPTConfig:
        """The preset ``name`` (see ``PRESETS``), with any field replaced by ``overrides``."""
        if name not in PRESETS:
            raise ConfigError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
        return PRESETS[name].replace(**overrides)

    def replace(self, **changes: Any) -> GPTConfig:
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"GPTConfig has no field(s) {unknown}; fields are {_field_names()}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        """Inverse of ``to_dict``; unknown keys are an error, missing ones take the defaults."""
        return cls().replace(**data)


def _field_names() -> list[str]:
    return [field.name for field in dataclasses.fields(GPTConfig)]


# The four GPT-2 sizes (Radford et al. 2019, table 2; the counts are the walkthrough's, with
# qkv_bias=False) and two CPU presets sized so a few minutes of CPU training learns something.
# vocab_size stays GPT-2's here; training replaces it with the tokenizer's own size.
PRESETS: dict[str, GPTConfig] = {
    "gpt2-small": GPTConfig(),  # 124M
    "gpt2-medium": GPTConfig(n_embd=1024, n_head=16, n_layer=24),  # 355M
    "gpt2-large": GPTConfig(n_embd=1280, n_head=20, n_layer=36),  # 774M
    "gpt2-xl": GPTConfig(n_embd=1600, n_head=25, n_layer=48),  # 1558M
    # short CPU runs underfit rather than overfit, so they train without dropout
    "cpu-tiny": GPTConfig(context_length=128, n_embd=64, n_head=4, n_layer=2, dropout=0.0),
    "cpu-small": GPTConfig(context_length=256, n_embd=256, n_head=4, n_layer=4, dropout=0.0),
}
