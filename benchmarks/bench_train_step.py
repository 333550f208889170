"""Training-step throughput: ours vs Hugging Face's GPT2LMHeadModel vs the walkthrough's model.

One step is forward + cross-entropy + backward + AdamW, fp32, on the CPU with a fixed thread
count (default 2). The three models get the same shape (qkv_bias=True and an untied head, the
layout every peer can express) and the same random batches; each trains with the AdamW its own
training code uses: ours ``scratchllm.train.optim.build_optimizer`` (what ``scratchllm train``
runs: fused AdamW, no decay on biases and norms), HF the fused AdamW that its ``Trainer`` picks by
default on torch >= 2.8 (``optim="adamw_torch_fused"``), and the walkthrough's reference the
plain ``torch.optim.AdamW(model.parameters(), ...)`` of its training script. Steps are
interleaved (ours, HF, reference, ours, ...) so that load from other processes hits all alike,
and each reports its median step time. Ratios are "peer time / our time": above 1.0 we are
faster.

MFU (model FLOPs utilisation) counts the matmul FLOPs a step needs, 6 x (matmul parameters) +
12 x n_layer x T x n_embd per token (the attention scores and weighted sum, forward and
backward; PaLM's appendix B convention), and divides by the machine's peak measured here as
the best fp32 (or bf16) square-matmul rate at the same thread count.

``--bf16`` also runs ours under ``torch.autocast("cpu", dtype=torch.bfloat16)`` and checks the
loss curve against fp32 from the same initialisation; it only pays off on CPUs with native
bf16 (avx512_bf16 / AMX), which the header says.

Peers: ``transformers`` (a test dependency) and the walkthrough's reference package
``llms-from-scratch`` (benchmark only: ``pip install -c constraints.txt --no-deps
llms-from-scratch``); a missing peer is skipped with a note.

    python benchmarks/bench_train_step.py            # gpt2-small ctx 256 batch 2, cpu-small
    python benchmarks/bench_train_step.py --quick    # cpu-tiny only, seconds
    python benchmarks/bench_train_step.py --bf16     # add the bf16 autocast rows
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from scratchllm.config import GPTConfig
from scratchllm.model.gpt import GPT


@dataclass
class Case:
    name: str
    config: GPTConfig
    batch_size: int


def cases(quick: bool) -> list[Case]:
    common = {"qkv_bias": True, "tie_weights": False, "dropout": 0.0}
    if quick:
        return [Case("cpu-tiny", GPTConfig.from_name("cpu-tiny", vocab_size=4096, **common), 8)]
    return [
        Case(
            "gpt2-small ctx256", GPTConfig.from_name("gpt2-small", context_length=256, **common), 2
        ),
        Case("cpu-small", GPTConfig.from_name("cpu-small", vocab_size=4096, **common), 8),
    ]


# ---- the machine ----------------------------------------------------------------------------


def cpu_description() -> str:
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and name in ("", "unknown CPU", "x86_64"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"}) or ["no native bf16"]
    return f"{name} ({', '.join(bf16)})"


def peak_matmul_flops(dtype: torch.dtype, *, size: int = 1024, seconds: float = 1.0) -> float:
    """Best observed FLOP/s of a square matmul at the current thread count."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def flops_per_step(config: GPTConfig, batch_size: int) -> float:
    C, L, T = config.n_embd, config.n_layer, config.context_length
    matmul_parameters = L * 12 * C * C + config.vocab_size * C  # blocks + lm_head
    return batch_size * T * (6 * matmul_parameters + 12 * L * T * C)


# ---- the three models -------------------------------------------------------------------------


def build_ours(config: GPTConfig) -> torch.nn.Module:
    return GPT(config, generator=torch.Generator().manual_seed(0))


def build_hf(config: GPTConfig) -> torch.nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()
    hf_config = transformers.GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context_length,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        activation_function="gelu_new",
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        tie_word_embeddings=config.tie_weights,
    )
    model = transformers.GPT2LMHeadModel(hf_config)

    class LogitsOnly(torch.nn.Module):  # HF returns an output object; the step wants logits
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=token_ids, use_cache=False).logits

    return LogitsOnly()


def build_reference(config: GPTConfig) -> torch.nn.Module:
    from llms_from_scratch.ch04 import GPTModel

    assert not config.tie_weights, "the walkthrough's GPTModel has an untied head"
    return GPTModel(
        {
            "vocab_size": config.vocab_size,
            "context_length": config.context_length,
            "emb_dim": config.n_embd,
            "n_heads": config.n_head,
            "n_layers": config.n_layer,
            "drop_rate": config.dropout,
            "qkv_bias": config.qkv_bias,
        }
    )


PEERS: dict[str, Callable[[GPTConfig], torch.nn.Module]] = {
    "ours": build_ours,
    "HF GPT2LMHeadModel": build_hf,
    "llms-from-scratch": build_reference,
}

LR, WEIGHT_DECAY = 3e-4, 0.1


def make_optimizer(name: str, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The AdamW each implementation's own training code builds (module docstring)."""
    if name.startswith("ours"):
        from scratchllm.train.optim import build_optimizer

        return build_optimizer(model, lr=LR, weight_decay=WEIGHT_DECAY)
    fused = name.startswith("HF")  # transformers' Trainer default: adamw_torch_fused
    return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, fused=fused)


def make_step(
    model: torch.nn.Module, *, name: str = "ours", bf16: bool = False
) -> Callable[[torch.Tensor, torch.Tensor], float]:
    optimizer = make_optimizer(name, model)
    model.train()

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(inputs)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def batches(config: GPTConfig, batch_size: int, count: int) -> list[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(1)
    shape = (batch_size, config.context_length + 1)
    out = []
    for _ in range(count):
        tokens = torch.randint(0, config.vocab_size, shape, generator=generator)
        out.append((tokens[:, :-1], tokens[:, 1:]))
    return out


def time_steps(
    steps: dict[str, Callable], data: list[tuple[torch.Tensor, ...]], *, warmup: int
) -> dict[str, list[float]]:
    """Seconds of each timed step of each entry, interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_index, (inputs, targets) in enumerate(data):
        for name, step in steps.items():
            start = time.perf_counter()
            step(inputs, targets)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def bf16_loss_check(case: Case, steps: int) -> float:
    """Largest |loss_fp32 - loss_bf16| over ``steps`` steps from one initialisation."""
    data = batches(case.config, case.batch_size, steps)
    curves = []
    for bf16 in (False, True):
        step = make_step(build_ours(case.config), bf16=bf16)
        curves.append([step(inputs, targets) for inputs, targets in data])
    return max(abs(a - b) for a, b in zip(*curves, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model (default 6)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="cpu-tiny only")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--bf16", action="store_true", help="also ours under bf16 autocast")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peak_fp32 = peak_matmul_flops(torch.float32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_description()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"measured peak matmul: fp32 {peak_fp32 / 1e9:.1f} GFLOP/s", end="")
    peak_bf16 = peak_matmul_flops(torch.bfloat16) if args.bf16 else None
    print(f", bf16 {peak_bf16 / 1e9:.1f} GFLOP/s" if peak_bf16 else "")
    if peak_bf16 is not None and peak_bf16 < peak_fp32 / 4:
        # without native bf16 the CPU emulates it (measured here: ~1 GFLOP/s, over 100x slower
        # than fp32), and a gpt2-small step would take minutes: report that instead of timing it
        print(
            f"bf16 matmul runs at {peak_bf16 / peak_fp32:.1%} of fp32 on this CPU (no native "
            "bf16): bf16 autocast cannot be faster here, so its rows are skipped"
        )
        args.bf16 = False

    for case in cases(args.quick):
        if args.only and args.only not in case.name:
            continue
        config = case.config
        print(
            f"\n== {case.name}: {config.n_layer} layers, width {config.n_embd}, "
            f"ctx {config.context_length}, batch {case.batch_size}, vocab {config.vocab_size}, "
            f"fp32, each with its own AdamW =="
        )
        steps: dict[str, Callable] = {}
        for name, build in PEERS.items():
            try:
                steps[name] = make_step(build(config), name=name)
            except ImportError as error:
                print(f"  {name}: skipped ({error})")
        if args.bf16:
            steps["ours bf16 autocast"] = make_step(build_ours(config), bf16=True)
        data = batches(config, case.batch_size, args.warmup + args.steps)
        times = time_steps(steps, data, warmup=args.warmup)
        medians = {name: statistics.median(values) for name, values in times.items()}
        flops = flops_per_step(config, case.batch_size)
        tokens = case.batch_size * config.context_length
        ours = medians["ours"]
        for name, seconds in medians.items():
            peak = peak_bf16 if "bf16" in name and peak_bf16 else peak_fp32
            ratio = "" if name == "ours" else f"   {name} / ours time: {seconds / ours:.2f}x"
            if "bf16" in name:
                ratio = (
                    f"   HF fp32 time / this: {medians.get('HF GPT2LMHeadModel', 0) / seconds:.2f}x"
                )
            print(
                f"  {name:<22} {seconds * 1e3:8.1f} ms/step (best {min(times[name]) * 1e3:8.1f}) "
                f"{tokens / seconds:7.0f} tok/s MFU {flops / seconds / peak:5.1%}{ratio}"
            )
        if args.bf16:
            drift = bf16_loss_check(case, 8)
            print(f"  bf16 vs fp32 loss curve, max |diff| over 8 steps: {drift:.4f}")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
