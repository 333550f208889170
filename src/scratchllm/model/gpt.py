"""The GPT model: LayerNorm, GELU, MLP, Block and GPT, with GPT-2's parameter names.

Data flow for token ids ``(B, T)``:

    wte(ids) + wpe(positions) -> dropout -> n_layer x Block -> ln_f -> lm_head -> logits (B, T, V)
                                                                  |
                                            hidden_states (B, T, C): what a task head reads

and each pre-LayerNorm ``Block`` is

    x = x + dropout(attn(ln_1(x)))      # tokens exchange information
    x = x + dropout(mlp(ln_2(x)))       # each token is transformed on its own

Parameter names are GPT-2's (``wte``, ``wpe``, ``h.{i}.ln_1``, ``h.{i}.attn.c_attn``, ...,
``ln_f``, ``lm_head``), so importing its weights is a name map plus four transposes
(``scratchllm.weights.hf_gpt2``). ``wte`` / ``wpe`` are the tables that
``embeddings.InputEmbeddings`` teaches; the GPT holds them directly so that they keep GPT-2's
top-level names.

Initialisation (``GPTConfig.init``) is GPT-2's by default: every weight normal(0, 0.02), biases
zero, LayerNorm scale 1 and
shift 0, and the two projections that write into the residual stream (``attn.c_proj``,
``mlp.c_proj``) scaled by 1/sqrt(2 * n_layer), so that the variance of the stream does not grow
with depth (Radford et al. 2019, section 2.3). It draws from an explicit ``torch.Generator``,
so a seed reproduces a model.

``num_parameters`` and ``describe_model`` are pure functions of the config: they size
``gpt2-xl`` without building it.

**Packed rows.** ``forward(ids, document_ids=...)`` runs several examples in one row, as
instruction finetuning packs them: each token attends only to the earlier tokens of its own
example (``attention.document_causal_mask``) and positions restart at 0 for each example
(``document_positions``), so every example gets exactly the logits it gets alone. Without
``document_ids`` (and ``positions``) the model runs as before.

**Slots.** ``forward(ids, kv_caches=make_slot_kv_caches(...), positions=..., slots=...)`` runs
rows that are separate sequences at different positions, each in its own row (slot) of the
caches: what continuous batching (``generate/engine.py``) needs to decode every active request
in one forward pass. Row ``b``'s tokens sit at ``positions[b]`` and attend to its own slot's
positions up to theirs (``attention.slot_causal_mask``).

Shapes: ``B`` batch, ``T`` tokens, ``C`` n_embd, ``V`` vocab_size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from scratchllm.config import GPTConfig
from scratchllm.errors import ConfigError, DataLengthError
from scratchllm.model.attention import (
    CausalSelfAttention,
    document_causal_mask,
    slot_causal_mask,
)

if TYPE_CHECKING:
    from scratchllm.model.kv_cache import KVCache, SlotKVCache

INIT_STD = 0.02  # GPT-2's initializer_range


def layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, eps: float = 1e-5
) -> torch.Tensor:
    """Normalise each vector (last dim) to mean 0 and variance 1, then scale and shift.

    The variance is the biased one (divide by C, not C - 1), as GPT-2 computes it; ``eps``
    keeps the division finite for a constant vector.

    >>> layer_norm(torch.tensor([1.0, 2.0, 3.0]), torch.ones(3), torch.zeros(3))
    tensor([-1.2247,  0.0000,  1.2247])
    """
    mean = x.mean(dim=-1, keepdim=True)
    variance = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(variance + eps) * weight + bias


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU in GPT-2's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    GPT-2 was trained with this form; the exact erf GELU differs by up to ~1e-3 and makes
    imported weights drift.

    >>> gelu_tanh(torch.tensor([-1.0, 0.0, 1.0]))
    tensor([-0.1588,  0.0000,  0.8412])
    """
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


# The two modules below compute exactly the formulas above (the tests hold them equal), through
# torch's fused kernels: one pass over memory instead of one per operation, which on a CPU
# makes the whole training step ~1.3x faster at small widths.


class LayerNorm(nn.Module):
    """``layer_norm`` with a learned scale ``weight`` (init 1) and shift ``bias`` (init 0)."""

    def __init__(self, dim: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # scale
        self.bias = nn.Parameter(torch.zeros(dim))  # shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class GELU(nn.Module):
    """``gelu_tanh`` as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class MLP(nn.Module):
    """The feed-forward network: widen 4x, GELU, project back. ``(B, T, C) -> (B, T, C)``."""

    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    """A pre-LayerNorm transformer block: attention and MLP, each on a residual shortcut."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.attn = CausalSelfAttention(
            config.n_embd, config.n_head, dropout=config.dropout, qkv_bias=config.qkv_bias
        )
        self.ln_2 = LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.mlp = MLP(config.n_embd)
        self.dropout = nn.Dropout(config.dropout)  # on each branch, before it joins the stream

    def forward(
        self,
        x: torch.Tensor,
        *,
        kv_cache: KVCache | None = None,
        start_position: int = 0,
        weights_sink: list[torch.Tensor] | None = None,
        allowed: torch.Tensor | None = None,
        slots: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        attended = self.attn(
            self.ln_1(x),
            kv_cache=kv_cache,
            start_position=start_position,
            weights_sink=weights_sink,
            allowed=allowed,
            slots=slots,
            positions=positions,
        )
        x = x + self.dropout(attended)
        return x + self.dropout(self.mlp(self.ln_2(x)))


class GPT(nn.Module):
    """A GPT-2 style decoder-only transformer: token ids ``(B, T)`` -> logits ``(B, T, V)``.

    Built on the CPU; move it with ``.to(device)``. ``generator`` seeds the initialisation
    (default: torch's global generator, i.e. ``torch.manual_seed``).
    """

    def __init__(self, config: GPTConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        # Build on the meta device (no memory, no random draws), then materialise and draw
        # every parameter once from `generator`: no wasted default init, and no hidden use
        # of the global random state when a generator is given.
        # (an explicit device for the embeddings: under the device context their own init runs
        # torch's slow Python reference of normal_, ~1 s per table at gpt2-small)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd, device="meta")  # id -> vector
        self.wpe = nn.Embedding(config.context_length, config.n_embd, device="meta")  # position
        with torch.device("meta"):
            self.drop = nn.Dropout(config.dropout)
            self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
            self.ln_f = LayerNorm(config.n_embd, eps=config.layer_norm_eps)
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.to_empty(device="cpu")
        _store_linear_weights_input_major(self)
        if config.tie_weights:  # after to_empty, which would give the two their own storage
            # the head's layout matters more than the embedding lookup's: it is the largest
            # matrix-vector product of every decode step
            self.wte.weight.data = _input_major_empty(self.wte.weight)
            self.lm_head.weight = self.wte.weight
        self.reset_parameters(generator=generator)

    @torch.no_grad()
    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """Draw every weight from ``generator`` with the config's ``init`` scheme.

        ``"gpt2"`` is GPT-2's (see the module docstring). ``"torch-default"`` is what the
        walkthrough's model gets from torch itself, drawn in its order, so that
        ``torch.manual_seed(123); GPT(config)`` holds the very weights of its
        ``torch.manual_seed(123); GPTModel(cfg)`` (the tests check its published outputs):
        ``nn.Embedding`` N(0, 1), ``nn.Linear`` weights and biases U(-1/sqrt(fan_in),
        1/sqrt(fan_in)). Its model builds ``tok_emb``, ``pos_emb``, then per block ``W_query``,
        ``W_key``, ``W_value``, ``out_proj``, the two MLP layers, and last ``out_head``;
        ``named_modules`` visits ours in that order, and ``c_attn`` is drawn as its three
        stacked projections.

        Every draw fills a fresh contiguous ``(out, in)`` tensor, as torch's own modules do,
        which is then copied into our input-major weight (drawing into the transposed memory
        directly is ~5x slower).
        """
        torch_default = self.config.init == "torch-default"
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layer)
        for name, module in self.named_modules():  # a fixed order, so a seed fixes the model
            if isinstance(module, LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                std = 1.0 if torch_default else INIT_STD
                module.weight.copy_(_drawn_normal(module.weight, std, generator))
            elif isinstance(module, nn.Linear):
                if module is self.lm_head and self.config.tie_weights:
                    continue  # it is wte, already drawn
                if torch_default:
                    parts = 3 if name.endswith("attn.c_attn") else 1  # W_query, W_key, W_value
                    _torch_default_linear_init(module, parts, generator)
                    continue
                std = residual_std if name.endswith("c_proj") else INIT_STD
                module.weight.copy_(_drawn_normal(module.weight, std, generator))
                if module.bias is not None:
                    module.bias.zero_()

    def forward(
        self,
        token_ids: torch.Tensor,
        *,
        kv_caches: list[KVCache] | list[SlotKVCache] | None = None,
        start_position: int = 0,
        document_ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, T, V)`` for ``token_ids`` ``(B, T)`` at positions ``start_position ..``.

        With ``kv_caches`` (one per layer, from ``make_kv_caches``) the tokens' keys and values
        are written to the caches and the attention also sees the cached positions
        ``0 .. start_position - 1``: prefill with ``start_position=0``, then decode one token at
        a time.

        Packed rows: ``document_ids`` ``(B, T)`` says which example each token belongs to
        (runs of equal ids); a token attends only to earlier tokens of its example, and unless
        ``positions`` ``(B, T)`` are given they restart at 0 for each example
        (``document_positions``). ``positions`` alone replace ``start_position ..`` and keep
        the causal mask. Neither goes with a ``KVCache``.

        Slots: with ``kv_caches`` from ``make_slot_kv_caches`` and ``positions`` ``(B, T)``,
        row ``b`` is its own sequence, stored in cache slot ``slots[b]`` (default: slot ``b``),
        its tokens at ``positions[b]``; each token attends to its slot's positions ``0 ..``
        its own. Prefill a slot with ``positions = arange(T)``, then decode rows at different
        positions together. (Positions before a row's first new one must have been written.)
        """
        hidden = self.hidden_states(
            token_ids, kv_caches=kv_caches, start_position=start_position,
            document_ids=document_ids, positions=positions, slots=slots,
        )  # fmt: skip
        return self.lm_head(hidden)  # (B, T, V)

    def hidden_states(
        self,
        token_ids: torch.Tensor,
        *,
        kv_caches: list[KVCache] | list[SlotKVCache] | None = None,
        start_position: int = 0,
        document_ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The final hidden states ``(B, T, C)``, after ``ln_f`` and before ``lm_head``.

        What a task head reads (a classifier takes one position of it); ``forward`` is
        ``lm_head(hidden_states(...))``. Takes the same caches, positions and document ids as
        ``forward`` (slots included).
        """
        return self._run(
            token_ids,
            kv_caches=kv_caches,
            start_position=start_position,
            document_ids=document_ids,
            positions=positions,
            slots=slots,
        )

    def set_dropout(self, rate: float) -> GPT:
        """Use dropout ``rate`` from now on (the config records it), in place: finetuning a
        loaded model at another rate needs no second copy of its weights."""
        self.config = self.config.replace(dropout=rate)  # validates the rate
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = rate
            elif isinstance(module, CausalSelfAttention):
                module.dropout = rate
        return self

    @torch.no_grad()
    def attention_weights(
        self, token_ids: torch.Tensor, *, document_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Each layer's attention weights ``(B, nh, T, T)`` (explicit path, dropout as set);
        ``document_ids`` as in ``forward``."""
        weights: list[torch.Tensor] = []
        self._run(
            token_ids,
            kv_caches=None,
            start_position=0,
            weights_sink=weights,
            document_ids=document_ids,
        )
        return weights

    def _run(
        self,
        token_ids: torch.Tensor,
        *,
        kv_caches: list[KVCache] | None,
        start_position: int,
        weights_sink: list[torch.Tensor] | None = None,
        document_ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if _are_slot_caches(kv_caches) or slots is not None:
            if document_ids is not None:
                raise ConfigError("document_ids do not go with slot caches: one sequence a row")
            return self._run_slots(token_ids, positions, slots, kv_caches, weights_sink)
        if document_ids is not None or positions is not None:
            return self._run_packed(token_ids, document_ids, positions, kv_caches, weights_sink)
        _, num_tokens = token_ids.shape
        end = start_position + num_tokens
        if start_position < 0 or end > self.config.context_length:
            raise DataLengthError(
                f"positions {start_position}..{end - 1} do not fit the context length "
                f"{self.config.context_length}; keep at most the last "
                f"{self.config.context_length} tokens"
            )
        if kv_caches is not None and len(kv_caches) != self.config.n_layer:
            raise ConfigError(
                f"got {len(kv_caches)} KV caches for {self.config.n_layer} layers; "
                f"make them with model.make_kv_caches(...)"
            )
        positions = torch.arange(start_position, end, device=token_ids.device)  # (T,)
        x = self.drop(self.wte(token_ids) + self.wpe(positions))  # (B, T, C)
        for index, block in enumerate(self.h):
            x = block(
                x,
                kv_cache=None if kv_caches is None else kv_caches[index],
                start_position=start_position,
                weights_sink=weights_sink,
            )
        return self.ln_f(x)  # (B, T, C)

    def _run_slots(
        self,
        token_ids: torch.Tensor,
        positions: torch.Tensor | None,
        slots: torch.Tensor | None,
        kv_caches: list[SlotKVCache] | None,
        weights_sink: list[torch.Tensor] | None,
    ) -> torch.Tensor:
        """``_run`` for rows that are separate sequences in the slots of ``SlotKVCache``s."""
        if not _are_slot_caches(kv_caches) or positions is None:
            raise ConfigError(
                "slots need slot caches (model.make_slot_kv_caches(...)) and positions (B, T)"
            )
        if len(kv_caches) != self.config.n_layer:
            raise ConfigError(
                f"got {len(kv_caches)} KV caches for {self.config.n_layer} layers; "
                f"make them with model.make_slot_kv_caches(...)"
            )
        batch = token_ids.shape[0]
        if slots is None:
            slots = torch.arange(batch, device=token_ids.device)
        if positions.shape != token_ids.shape or slots.shape != (batch,):
            raise ConfigError(
                f"positions must have the shape of the token ids {tuple(token_ids.shape)} and "
                f"slots ({batch},), got {tuple(positions.shape)} and {tuple(slots.shape)}"
            )
        lowest, highest = (int(value) for value in positions.aminmax())  # one read for all layers
        limit = min(self.config.context_length, kv_caches[0].max_length)
        if lowest < 0 or highest >= limit:
            raise DataLengthError(
                f"positions {lowest}..{highest} do not fit the context length "
                f"{self.config.context_length} and the cache's {kv_caches[0].max_length} "
                f"positions; keep each sequence to at most {limit} tokens"
            )
        allowed = slot_causal_mask(positions, highest + 1)  # (B, 1, T, S)
        x = self.drop(self.wte(token_ids) + self.wpe(positions))  # (B, T, C)
        for block, cache in zip(self.h, kv_caches, strict=True):
            x = block(
                x,
                kv_cache=cache,
                weights_sink=weights_sink,
                allowed=allowed,
                slots=slots,
                positions=positions,
            )
        return self.ln_f(x)  # (B, T, C)

    def _run_packed(
        self,
        token_ids: torch.Tensor,
        document_ids: torch.Tensor | None,
        positions: torch.Tensor | None,
        kv_caches: list[KVCache] | None,
        weights_sink: list[torch.Tensor] | None,
    ) -> torch.Tensor:
        """``_run`` for rows with per-token document ids and / or positions (no cache)."""
        if kv_caches is not None:
            raise ConfigError(
                "document_ids and positions are for whole rows (training, scoring); a KV cache "
                "decodes one sequence from position start_position, so pass one or the other"
            )
        for name, tensor in (("document_ids", document_ids), ("positions", positions)):
            if tensor is not None and tensor.shape != token_ids.shape:
                raise ConfigError(
                    f"{name} must have the shape of the token ids {tuple(token_ids.shape)}, "
                    f"got {tuple(tensor.shape)}"
                )
        derived = positions is None
        if derived:
            positions = document_positions(document_ids)
        # derived positions are below the row length: only a longer row needs its values read
        # (which waits for the device)
        longer = token_ids.shape[1] > self.config.context_length
        if (
            (longer or not derived)
            and positions.numel()
            and not (
                int(positions.min()) >= 0 and int(positions.max()) < self.config.context_length
            )
        ):
            raise DataLengthError(
                f"positions {int(positions.min())}..{int(positions.max())} do not fit the "
                f"context length {self.config.context_length}; keep each example (document) "
                f"to at most {self.config.context_length} tokens"
            )
        allowed = None if document_ids is None else document_causal_mask(document_ids)
        x = self.drop(self.wte(token_ids) + self.wpe(positions))  # (B, T, C)
        for block in self.h:
            x = block(x, weights_sink=weights_sink, allowed=allowed)
        return self.ln_f(x)  # (B, T, C)

    def make_slot_kv_caches(
        self,
        max_batch: int,
        max_length: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> list[SlotKVCache]:
        """One ``SlotKVCache`` per layer: ``max_batch`` sequences of up to ``max_length``
        positions each (default: the context length), in the model's dtype and device unless
        given."""
        from scratchllm.model.kv_cache import SlotKVCache

        return self._caches(SlotKVCache, max_batch, max_length, dtype, device)

    def make_kv_caches(
        self,
        batch_size: int,
        max_length: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> list[KVCache]:
        """One preallocated ``KVCache`` per layer, for ``max_length`` positions (default: the
        context length), in the model's dtype and device unless given."""
        from scratchllm.model.kv_cache import KVCache  # kv_cache.py builds on this module

        return self._caches(KVCache, batch_size, max_length, dtype, device)

    def _caches(self, cache_class, rows: int, max_length, dtype, device) -> list:
        """One ``cache_class`` per layer of ``rows`` x ``max_length`` positions (default: the
        context length), in the model's dtype and device unless given."""
        reference, config = self.wte.weight, self.config
        return [
            cache_class(
                rows,
                config.n_head,
                config.context_length if max_length is None else max_length,
                config.head_dim,
                dtype=reference.dtype if dtype is None else dtype,
                device=reference.device if device is None else device,
            )
            for _ in range(config.n_layer)
        ]


def _are_slot_caches(kv_caches: list | None) -> bool:
    from scratchllm.model.kv_cache import SlotKVCache

    return bool(kv_caches) and isinstance(kv_caches[0], SlotKVCache)


def document_positions(document_ids: torch.Tensor) -> torch.Tensor:
    """Each token's position within its document: counting restarts at 0 wherever the id
    changes along the last dimension, so packed examples get the positions they have alone.

    >>> document_positions(torch.tensor([[7, 7, 7, 3, 3, 9]]))
    tensor([[0, 1, 2, 0, 1, 0]])
    """
    num_tokens = document_ids.shape[-1]
    index = torch.arange(num_tokens, device=document_ids.device).expand_as(document_ids)
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[..., 1:] = document_ids[..., 1:] != document_ids[..., :-1]
    # the index of the latest start at or before each token
    start_index = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=-1).values
    return index - start_index


def _fresh(like: torch.Tensor) -> torch.Tensor:
    """An uninitialised contiguous tensor shaped like ``like`` (init functions fill memory in
    order, so drawing into it consumes the generator as torch's own modules do)."""
    return torch.empty(like.shape, dtype=like.dtype, device=like.device)


def _drawn_normal(like: torch.Tensor, std: float, generator: torch.Generator | None):
    return nn.init.normal_(_fresh(like), 0.0, std, generator=generator)


def _torch_default_linear_init(
    module: nn.Linear, parts: int, generator: torch.Generator | None
) -> None:
    """``nn.Linear.reset_parameters`` from ``generator``, for ``parts`` stacked layers of the
    same input size, each drawn weight first, then bias, as separate layers would be."""
    weights = module.weight.chunk(parts)
    biases = (None,) * parts if module.bias is None else module.bias.chunk(parts)
    bound = 1.0 / math.sqrt(module.in_features)
    for weight, bias in zip(weights, biases, strict=True):
        fresh = _fresh(weight)
        weight.copy_(nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator))
        if bias is not None:
            bias.copy_(nn.init.uniform_(_fresh(bias), -bound, bound, generator=generator))


def _store_linear_weights_input_major(model: nn.Module) -> None:
    """Give every ``nn.Linear`` weight fresh (uninitialised) storage laid out in memory as
    ``(in, out)``, keeping its ``(out, in)`` shape and name; the init fills it afterwards.

    That is the memory order of GPT-2's ``Conv1D``. Decoding one token at a time is a chain of
    matrix-vector products bound by reading the weights, and on CPU MKL streams ``x @ W`` over
    this order about 20% faster than over ``nn.Linear``'s default (benchmarks/bench_generate.py).
    ``load_state_dict`` and optimizer updates copy into the tensors in place, so the order
    survives them; checkpoints save ``.contiguous()`` copies.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight.data = _input_major_empty(module.weight)


def _input_major_empty(like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor shaped like the 2-D ``like``, stored transposed."""
    rows, columns = like.shape
    return torch.empty(columns, rows, dtype=like.dtype, device=like.device).t()


# ---- sizes as pure functions of the config ---------------------------------------------------


def parameter_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every entry of ``GPT(config).state_dict()`` and its shape, without building the model.

    A tied ``lm_head.weight`` is listed too (it is in the state dict, sharing ``wte``'s
    storage). ``scratchllm.weights`` checks checkpoints against this.
    """
    C, V = config.n_embd, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {
        "wte.weight": (V, C),
        "wpe.weight": (config.context_length, C),
    }
    for index in range(config.n_layer):
        block = {
            "ln_1.weight": (C,),
            "ln_1.bias": (C,),
            "attn.c_attn.weight": (3 * C, C),
            "attn.c_attn.bias": (3 * C,),
            "attn.c_proj.weight": (C, C),
            "attn.c_proj.bias": (C,),
            "ln_2.weight": (C,),
            "ln_2.bias": (C,),
            "mlp.c_fc.weight": (4 * C, C),
            "mlp.c_fc.bias": (4 * C,),
            "mlp.c_proj.weight": (C, 4 * C),
            "mlp.c_proj.bias": (C,),
        }
        if not config.qkv_bias:
            del block["attn.c_attn.bias"]
        shapes.update({f"h.{index}.{name}": shape for name, shape in block.items()})
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,), "lm_head.weight": (V, C)})
    return shapes


def num_parameters(config: GPTConfig, *, tied: bool | None = None) -> int:
    """Trainable parameters of ``GPT(config)``; ``tied`` overrides ``config.tie_weights``.

    >>> num_parameters(GPTConfig(), tied=False), num_parameters(GPTConfig(), tied=True)
    (163009536, 124412160)
    """
    tied = config.tie_weights if tied is None else tied
    shapes = parameter_shapes(config)
    if tied:
        del shapes["lm_head.weight"]  # the same tensor as wte.weight
    return sum(math.prod(shape) for shape in shapes.values())


def describe_model(name_or_config: str | GPTConfig) -> str:
    """A few lines on a preset or config: its shape, parameter counts and weight memory.

    >>> print(describe_model("gpt2-small"))  # doctest: +NORMALIZE_WHITESPACE
    gpt2-small: 12 layers, 12 heads of 64, width 768, context 1024, vocabulary 50257,
      qkv_bias=False, tie_weights=False, dropout 0.1
    parameters: 163,009,536 with its own output head (untied), 124,412,160 tied to wte
    weights:    fp32 621.83 MiB untied, 474.59 MiB tied; bf16 310.92 MiB untied, 237.30 MiB tied
    """
    if isinstance(name_or_config, str):
        name, config = name_or_config, GPTConfig.from_name(name_or_config)
    else:
        name, config = "custom", name_or_config
    untied, tied = num_parameters(config, tied=False), num_parameters(config, tied=True)

    def mib(count: int, bytes_per_parameter: int) -> str:
        return f"{count * bytes_per_parameter / 2**20:.2f} MiB"

    return "\n".join(
        [
            f"{name}: {config.n_layer} layers, {config.n_head} heads of {config.head_dim}, "
            f"width {config.n_embd}, context {config.context_length}, "
            f"vocabulary {config.vocab_size},",
            f"  qkv_bias={config.qkv_bias}, tie_weights={config.tie_weights}, "
            f"dropout {config.dropout}",
            f"parameters: {untied:,} with its own output head (untied), {tied:,} tied to wte",
            f"weights:    fp32 {mib(untied, 4)} untied, {mib(tied, 4)} tied; "
            f"bf16 {mib(untied, 2)} untied, {mib(tied, 2)} tied",
        ]
    )
