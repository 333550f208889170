"""Continuous batching: many requests decoded together, joining and leaving between steps.

``decode.py`` generates one sequence: at batch 1 each decode step reads every weight of the
model to produce one token, so on a CPU (or a GPU at small batch) it is bound by memory
bandwidth, and serving eight users one after another takes eight times as long as one. The
``Engine`` decodes all of its active requests in *one* forward pass per step, reading the
weights once for all of them, and lets requests join and leave between steps (continuous, or
in-flight, batching, as in Orca and vLLM), so a short request never waits for a long one.

How it works:

- the KV cache is preallocated once: ``max_batch`` slots of ``max_length`` positions per layer
  (``model/kv_cache.py``'s ``SlotKVCache``), on the model's device and in its dtype;
- ``submit`` queues a request (any thread); ``step`` (one worker thread) first frees the slots
  of cancelled requests, then admits waiting requests into free slots, prefilling their
  prompts together (padded to the longest, positions ``0 .. T - 1`` of each slot;
  ``prefill_groups`` bounds a pass), then runs one batched forward pass that feeds every
  older request's last token at its own position
  (``GPT.forward(..., positions=(B, 1), slots=(B,))``, with a per-row causal mask);
- the last-position logits of all rows (prefill and decode alike) are then turned into one
  token each, per request: presence/frequency penalties (``sampling.apply_penalties``), then
  ``sampling.sample_next_token`` (greedy for temperature 0, otherwise temperature, top-k,
  top-p and a draw from the request's own seeded ``torch.Generator``, so a seed gives the same
  tokens whoever else is in the batch);
- every step emits one ``TokenEvent`` per request it served. A request ends when it picks one
  of its ``stop_ids`` (``"stop"``; that token is not emitted), reaches ``max_new_tokens``
  (``"length"``, on the event that brings the last token), or is cancelled (``"cancelled"``);
  its slot is free for the next step.

``logprob`` (and ``top_logprobs``) report the *model's* distribution: ``log_softmax`` of the
raw logits, before penalties and temperature, as OpenAI's API does; the token itself was picked
from the penalised, tempered, filtered distribution.

Greedy requests get the tokens ``generate_tokens(..., temperature=0)`` gives them alone (the
tests check it token for token); batching changes the float rounding of the matrix products
only, far below the gaps between logits that decide an argmax in practice.

Thread safety: ``submit``, ``cancel`` and the ``num_waiting`` / ``has_work`` properties may
be called from any thread (the server's event loop); ``step`` must always run in one and the
same thread. The waiting queue and the cancellations are guarded by a lock; the active
requests and the caches belong to the stepping thread.

Shapes: ``B`` rows served in a step, ``V`` vocabulary size.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from scratchllm.config import SamplingConfig
from scratchllm.errors import ConfigError
from scratchllm.generate.sampling import apply_penalties, greedy, sample_next_token
from scratchllm.model.gpt import GPT

FINISH_STOP = "stop"  # a stop id was picked (and not emitted)
FINISH_LENGTH = "length"  # max_new_tokens reached, or the model's window is full
FINISH_CANCELLED = "cancelled"
# the most positions one prefill pass computes (rows x the longest prompt among them): prompts
# that arrive together share a pass up to this, so the first tokens come sooner
PREFILL_TOKENS = 4096


@dataclass(frozen=True)
class SamplingParams:
    """How one request picks its tokens and when it stops; validated on creation.

    Temperature, top-k, top-p, max_new_tokens and seed mean what they mean in
    ``SamplingConfig`` (and are checked with its messages). The penalties follow OpenAI: each
    step subtracts ``presence_penalty * (count > 0) + frequency_penalty * count`` from the
    logit of every token generated ``count`` times so far in this request's completion
    (``sampling.apply_penalties``).
    """

    max_new_tokens: int
    temperature: float = 0.0  # 0 = greedy
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None  # a per-request torch.Generator; None = torch's global RNG
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_logprobs: int = 0  # alternatives reported per token; the chosen one's is always reported
    stop_ids: frozenset[int] = frozenset()  # end the sequence and are not emitted (<|endoftext|>)

    def __post_init__(self) -> None:
        SamplingConfig(
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
        )
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number (0 = none), got {value}")
        if self.top_logprobs < 0:
            raise ConfigError(f"top_logprobs must be >= 0 (0 = none), got {self.top_logprobs}")
        # accept any collection (a list from JSON) but store a hashable frozenset of ints
        object.__setattr__(self, "stop_ids", frozenset(int(token) for token in self.stop_ids))


@dataclass(frozen=True)
class TokenEvent:
    """What one step did for one request: a new token, the end of the request, or both.

    ``logprob`` is the log-probability of ``token`` under the model's distribution
    (``log_softmax`` of the raw logits, before penalties and temperature), and ``top_logprobs``
    the ``SamplingParams.top_logprobs`` most likely ``(token, logprob)`` pairs of that same
    distribution, most likely first. A final event that brings no token (a stop id was picked,
    or the request was cancelled) has ``token``, ``logprob`` None and no ``top_logprobs``.
    """

    request_id: int
    token: int | None
    logprob: float | None
    top_logprobs: tuple[tuple[int, float], ...]
    finish_reason: str | None  # None while going; "stop", "length" or "cancelled"


@dataclass(eq=False)
class _Request:
    """A request's state; after admission only the stepping thread touches it."""

    request_id: int
    prompt_ids: list[int]
    params: SamplingParams
    generator: torch.Generator | None
    slot: int = -1  # its row of the caches, once admitted
    position: int = 0  # how many of its tokens the caches hold
    last_token: int = -1  # picked and emitted, not yet fed to the model
    generated: int = 0


class Engine:
    """Serves many generation requests at once over one model (module docstring).

    ``max_length`` (default: the model's context length) bounds prompt + new tokens of a
    request; the caches hold ``max_batch`` x ``max_length`` positions per layer. The model is
    put in eval mode for good.
    """

    def __init__(self, model: GPT, *, max_batch: int = 8, max_length: int | None = None) -> None:
        context_length = model.config.context_length
        max_length = context_length if max_length is None else max_length
        if max_batch < 1:
            raise ConfigError(f"max_batch must be at least 1, got {max_batch}")
        if not 1 <= max_length <= context_length:
            raise ConfigError(
                f"max_length must be in 1 .. {context_length} (the model's context length), "
                f"got {max_length}"
            )
        self.model = model.eval()
        self.max_batch = max_batch
        self.max_length = max_length
        self.device = model.wte.weight.device
        with torch.inference_mode():  # the steps write into them under inference mode
            self._caches = model.make_slot_kv_caches(max_batch, max_length)
            # how often each slot's request generated each token, for the penalties
            self._counts = torch.zeros(
                max_batch, model.config.vocab_size, dtype=torch.float32, device=self.device
            )
        self._lock = threading.Lock()  # guards _waiting, _cancelled and _ids
        self._waiting: deque[_Request] = deque()
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._active: dict[int, _Request] = {}  # request id -> request, in admission order
        self._free_slots = list(range(max_batch))  # a heap: the lowest free slot comes first

    # ---- any thread ---------------------------------------------------------------------------

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams) -> int:
        """Queue a request; return its id. Raises ``ConfigError`` for an empty prompt, ids
        outside the vocabulary, or a prompt + ``max_new_tokens`` longer than ``max_length``."""
        ids = [int(token) for token in prompt_ids]
        if not ids:
            raise ConfigError("the prompt has no tokens; give at least one token id to continue")
        vocab_size = self.model.config.vocab_size
        outside = [token for token in ids if not 0 <= token < vocab_size]
        if outside:
            raise ConfigError(
                f"prompt token ids {outside[:5]} are outside the vocabulary 0 .. {vocab_size - 1}"
            )
        if len(ids) + params.max_new_tokens > self.max_length:
            room = self.max_length - len(ids)
            advice = (
                f"ask for at most {room} new tokens or shorten the prompt"
                if room > 0
                else f"shorten the prompt to fewer than {self.max_length} tokens"
            )
            raise ConfigError(
                f"the prompt has {len(ids)} tokens and max_new_tokens is "
                f"{params.max_new_tokens}: {len(ids) + params.max_new_tokens} positions, but "
                f"this model serves at most {self.max_length}; {advice}"
            )
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(params.seed)
        with self._lock:
            request_id = next(self._ids)
            self._waiting.append(_Request(request_id, ids, params, generator))
        return request_id

    def cancel(self, request_id: int) -> None:
        """Cancel a waiting or active request: the next ``step`` frees its slot and emits its
        final event (``"cancelled"``). Unknown or finished ids are ignored."""
        with self._lock:
            self._cancelled.add(request_id)

    @property
    def num_active(self) -> int:
        """Requests holding a slot."""
        return len(self._active)

    @property
    def num_waiting(self) -> int:
        """Requests queued for a slot."""
        with self._lock:
            return len(self._waiting)

    @property
    def has_work(self) -> bool:
        """Whether ``step`` has anything to do (requests active or waiting, or cancellations)."""
        with self._lock:
            return bool(self._active or self._waiting or self._cancelled)

    # ---- the stepping thread ------------------------------------------------------------------

    @torch.inference_mode()
    def step(self) -> list[TokenEvent]:
        """Admit waiting requests into free slots (prefilling each), run one batched decode
        step for the others, and return one event per request served (module docstring)."""
        events = self._cancel_and_admit()
        decoding = list(self._active.values())
        admitted = [request for request in decoding if request.position == 0]
        decoding = [request for request in decoding if request.position > 0]
        logits = []  # (1..B, V) blocks, in the order of `decoding + admitted`
        if decoding:
            logits.append(self._decode(decoding))
        for group in prefill_groups([len(r.prompt_ids) for r in admitted], PREFILL_TOKENS):
            logits.append(self._prefill([admitted[i] for i in group]))
        rows = decoding + admitted
        if rows:
            events.extend(self._pick_and_emit(rows, torch.cat(logits).float()))
        return events

    def _cancel_and_admit(self) -> list[TokenEvent]:
        """Free cancelled requests' slots, then move waiting requests into free slots (still
        unfilled: position 0). Returns the final events of cancelled and zero-token requests."""
        events = []
        with self._lock:
            cancelled, self._cancelled = self._cancelled, set()
            if cancelled:
                kept = [request for request in self._waiting if request.request_id not in cancelled]
                events.extend(
                    _final(request.request_id, FINISH_CANCELLED)
                    for request in self._waiting
                    if request.request_id in cancelled
                )
                self._waiting = deque(kept)
            for request_id in cancelled & self._active.keys():
                self._release(self._active[request_id])
                events.append(_final(request_id, FINISH_CANCELLED))
            while self._waiting:
                if self._waiting[0].params.max_new_tokens == 0:  # nothing to generate
                    events.append(_final(self._waiting.popleft().request_id, FINISH_LENGTH))
                    continue
                if not self._free_slots:
                    break
                request = self._waiting.popleft()
                request.slot = heapq.heappop(self._free_slots)
                self._active[request.request_id] = request
        return events

    def _prefill(self, requests: list[_Request]) -> torch.Tensor:
        """Run the prompts into their slots in one forward pass (each row padded to the
        longest; see ``prefill_groups``); return each one's last position's logits (B, V)."""
        lengths = [len(request.prompt_ids) for request in requests]
        longest = max(lengths)
        ids = torch.zeros(len(requests), longest, dtype=torch.long)  # padding: any id will do
        for row, request in enumerate(requests):
            ids[row, : lengths[row]] = torch.tensor(request.prompt_ids)
        device = self.device
        hidden = self.model.hidden_states(
            ids.to(device),
            kv_caches=self._caches,
            positions=torch.arange(longest, device=device).expand(len(requests), longest),
            slots=torch.tensor([request.slot for request in requests], device=device),
        )  # (B, T, C)
        for request in requests:
            self._counts[request.slot].zero_()
            request.position = len(request.prompt_ids)
        # only each prompt's last position's logits are needed: skip the others x V
        rows = torch.arange(len(requests), device=device)
        return self.model.lm_head(hidden[rows, torch.tensor(lengths, device=device) - 1])

    def _decode(self, requests: list[_Request]) -> torch.Tensor:
        """Feed each request's last token at its own position, in one forward pass; return the
        logits (B, V)."""
        device = self.device
        logits = self.model(
            torch.tensor([[request.last_token] for request in requests], device=device),
            kv_caches=self._caches,
            positions=torch.tensor([[request.position] for request in requests], device=device),
            slots=torch.tensor([request.slot for request in requests], device=device),
        )  # (B, 1, V)
        for request in requests:
            request.position += 1
        return logits[:, -1]

    def _pick_and_emit(self, rows: list[_Request], logits: torch.Tensor) -> list[TokenEvent]:
        """One token per row of ``logits`` (B, V), the requests' events, and their endings."""
        slots = torch.tensor([request.slot for request in rows], device=self.device)
        tokens = pick_tokens(
            logits,
            [request.params for request in rows],
            [request.generator for request in rows],
            self._counts[slots],
        )  # (B,)
        chosen, top = token_logprobs(
            logits, tokens, max(request.params.top_logprobs for request in rows)
        )
        self._counts.index_put_((slots, tokens), torch.ones_like(chosen), accumulate=True)
        events = []
        for request, token, logprob, alternatives in zip(
            rows, tokens.tolist(), chosen.tolist(), top, strict=True
        ):
            if token in request.params.stop_ids:
                self._release(request)
                events.append(_final(request.request_id, FINISH_STOP))
                continue
            request.generated += 1
            request.last_token = token
            done = (
                request.generated >= request.params.max_new_tokens
                or request.position >= self.max_length  # the window is full: nowhere to feed it
            )
            events.append(
                TokenEvent(
                    request.request_id,
                    token,
                    logprob,
                    alternatives[: request.params.top_logprobs],
                    FINISH_LENGTH if done else None,
                )
            )
            if done:
                self._release(request)
        return events

    def _release(self, request: _Request) -> None:
        del self._active[request.request_id]
        heapq.heappush(self._free_slots, request.slot)


def pick_tokens(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    generators: Sequence[torch.Generator | None],
    counts: torch.Tensor,
) -> torch.Tensor:
    """One token per row of ``logits`` ``(B, V)``, each row with its own sampling params and
    generator: penalties from ``counts`` ``(B, V)`` (tokens generated so far), then
    ``sample_next_token`` (greedy rows share one argmax)."""
    presence = torch.tensor([p.presence_penalty for p in params], device=logits.device)
    frequency = torch.tensor([p.frequency_penalty for p in params], device=logits.device)
    if bool(presence.any()) or bool(frequency.any()):
        logits = apply_penalties(logits, counts, presence, frequency)
    tokens = greedy(logits)  # (B,): the greedy rows' answer; sampled rows are drawn below
    for row, (param, generator) in enumerate(zip(params, generators, strict=True)):
        if param.temperature > 0:
            tokens[row] = sample_next_token(
                logits[row : row + 1],
                temperature=param.temperature,
                top_k=param.top_k,
                top_p=param.top_p,
                generator=generator,
            )[0]
    return tokens


def token_logprobs(
    logits: torch.Tensor, tokens: torch.Tensor, num_top: int
) -> tuple[torch.Tensor, list[tuple[tuple[int, float], ...]]]:
    """The model's log-probabilities: of each row's ``tokens`` ``(B,)``, and its ``num_top``
    most likely ``(token, logprob)`` pairs, most likely first (``log_softmax`` of the raw
    ``logits`` ``(B, V)``).

    >>> chosen, top = token_logprobs(torch.log(torch.tensor([[0.5, 0.2, 0.3]])),
    ...                              torch.tensor([1]), 2)
    >>> round(chosen.exp().item(), 6), [(token, round(math.exp(lp), 6)) for token, lp in top[0]]
    (0.2, [(0, 0.5), (2, 0.3)])
    """
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
    chosen = logprobs.gather(-1, tokens[:, None])[:, 0]  # (B,)
    num_top = min(num_top, logits.shape[-1])
    if num_top == 0:
        return chosen, [()] * logits.shape[0]
    values, ids = logprobs.topk(num_top, dim=-1)  # sorted, most likely first
    top = [
        tuple(zip(row_ids, row_values, strict=True))
        for row_ids, row_values in zip(ids.tolist(), values.tolist(), strict=True)
    ]
    return chosen, top


def _final(request_id: int, finish_reason: str) -> TokenEvent:
    """The last event of a request that brings no token."""
    return TokenEvent(request_id, None, None, (), finish_reason)


def prefill_groups(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Which prompts (by index) share a prefill pass: in order, as many as keep rows x the
    longest prompt among them within ``budget`` (a prompt longer than it goes alone).

    A row shorter than the longest is padded: its padding writes keys and values at positions
    after its prompt, which its first decode steps overwrite before any of its tokens can
    attend to them (a token sees its slot's positions up to its own), so the padding costs
    only the work.

    >>> prefill_groups([30, 32, 28, 900, 10], 1024)
    [[0, 1, 2], [3], [4]]
    """
    groups: list[list[int]] = []
    longest = 0
    for index, length in enumerate(lengths):
        if groups and max(longest, length) * (len(groups[-1]) + 1) <= budget:
            groups[-1].append(index)
            longest = max(longest, length)
        else:
            groups.append([index])
            longest = length
    return groups
