"""Instruction batches: the walkthrough's padded collate against length grouping and packing.

On the walkthrough's instruction data (the 935 training examples of its 85/10/5 split, Alpaca
prompts, GPT-2 tokens), batches of 8 examples made three ways:

- **walkthrough**: a random shuffle (``train/batches.epoch_order``), each batch padded to its
  longest example by ``collate``, which is the walkthrough's ``custom_collate_fn`` (the tests
  hold the two equal);
- **length-grouped**: ``length_grouped_order`` (similar lengths side by side), then ``collate``;
- **packed**: the same shuffled batches as the walkthrough's, each packed by ``pack`` into rows
  of at most ``--row-length`` tokens (default 256, ``cpu-small``'s context: the 8 examples of a
  batch, 451 tokens on average, fit in two or three rows), with document ids and positions for
  ``GPT.forward``. The same examples make each step as in the walkthrough's batches, so the
  loss and the gradients are the same too (the tests hold them equal).

Reported: padding (the share of the positions the model runs on that hold no example token,
over a whole epoch), and the throughput of forward + backward in real (non-padding) tokens per
second on the first ``--steps`` batches of the epoch, as a ratio to the walkthrough's; plus the
time to collate an epoch, ours against the walkthrough's own function when its package is
installed. The model is random, of ``--preset`` shape (``cpu-small`` by default: GPT-2's
vocabulary and 4 layers of width 256, which runs in about a minute on 2 cores); each method's
steps run in turn, ``--repeats`` rounds, best kept.

    python benchmarks/bench_instruct_batches.py            # ~2 min on 2 cores
    python benchmarks/bench_instruct_batches.py --quick
    python benchmarks/bench_instruct_batches.py --preset gpt2-small --layers 2 --steps 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    SHARED_DATA,
    load_average,
    machine_line,
    pin_threads,
    print_table,
    round_robin,
    use_shared_tiktoken_cache,
)

BATCH_SIZE = 8  # the walkthrough's chapter-7 loaders
SEED = 123


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def epoch_batches(examples, lengths, kind: str, *, row_length: int, pad_id: int):
    """The epoch's batches of ``kind``, and for each its real-token count."""
    import numpy as np

    from scratchllm.finetune.instruction_batches import collate, length_grouped_order, pack
    from scratchllm.train.batches import epoch_order

    if kind == "length-grouped":
        order = length_grouped_order(lengths, batch_size=BATCH_SIZE, seed=SEED, epoch=0)
    else:
        order = epoch_order(len(examples), seed=SEED, epoch=0)
    full = len(order) // BATCH_SIZE * BATCH_SIZE  # drop_last, as the walkthrough's train loader
    batches = []
    for chunk in np.asarray(order[:full]).reshape(-1, BATCH_SIZE):
        chosen = [examples[index] for index in chunk]
        if kind == "packed":
            batch = pack(chosen, max_length=row_length, pad_id=pad_id)
        else:
            batch = collate(chosen, pad_id=pad_id)
        batches.append((batch, int(sum(len(example.ids) for example in chosen))))
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="timed batches per method")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best is kept")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="cpu-small", help="model shape (random weights)")
    parser.add_argument("--layers", type=int, default=None, help="override the preset's layers")
    parser.add_argument("--row-length", type=int, default=256, help="packed row length")
    parser.add_argument("--quick", action="store_true", help="5 steps, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 5, 1

    pin_threads(args.threads)
    use_shared_tiktoken_cache()
    load_before = load_average()
    import torch
    import torch.nn.functional as F

    from scratchllm.config import GPTConfig
    from scratchllm.finetune.instruction_batches import collate, encode_instructions
    from scratchllm.finetune.instructions import read_instructions, split_instructions
    from scratchllm.finetune.prompts import get_prompt_format
    from scratchllm.model.gpt import GPT
    from scratchllm.tokenizer import get_tokenizer

    torch.set_num_threads(args.threads)
    tokenizer = get_tokenizer("gpt2")
    pad_id = tokenizer.eot_id
    train = split_instructions(read_instructions(SHARED_DATA / "instruction-data.json")).train
    examples = encode_instructions(train, tokenizer, get_prompt_format("alpaca"))
    lengths = [len(example.ids) for example in examples]
    row_length = args.row_length
    overrides = {"dropout": 0.0, "context_length": max(row_length, max(lengths))}
    if args.layers:
        overrides["n_layer"] = args.layers
    config = GPTConfig.from_name(args.preset, **overrides)
    model = GPT(config, generator=torch.Generator().manual_seed(SEED)).train()

    kinds = ("walkthrough", "length-grouped", "packed")
    epochs = {
        kind: epoch_batches(examples, lengths, kind, row_length=row_length, pad_id=pad_id)
        for kind in kinds
    }

    def step(batch) -> None:
        extra = {key: batch[key] for key in ("document_ids", "positions") if key in batch}
        logits = model(batch["inputs"], **extra)
        loss = F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())
        loss.backward()
        model.zero_grad(set_to_none=True)

    def run(kind: str):
        def steps() -> int:
            for batch, _ in epochs[kind][: args.steps]:
                step(batch)
            return sum(real for _, real in epochs[kind][: args.steps])

        return steps

    step(epochs["walkthrough"][0][0])  # warm up
    timings = round_robin({kind: run(kind) for kind in kinds}, repeats=args.repeats)

    print(
        f"instruction-data: {len(examples)} training examples, {sum(lengths):,} tokens "
        f"(longest {max(lengths)}, mean {sum(lengths) / len(lengths):.1f}); batches of "
        f"{BATCH_SIZE}; packed rows of at most {row_length} tokens"
    )
    print(
        f"model: {args.preset}{f' with {args.layers} layers' if args.layers else ''}, "
        f"random weights, fp32, forward + backward (no optimizer step), {args.steps} batches "
        f"x {args.repeats} rounds, best kept\n"
    )
    rows = []
    reference = timings["walkthrough"][1] / timings["walkthrough"][0]
    for kind in kinds:
        batches = epochs[kind]
        positions = sum(batch["inputs"].numel() for batch, _ in batches)
        real = sum(count for _, count in batches)
        timed = batches[: args.steps]
        timed_padding = 1 - sum(c for _, c in timed) / sum(b["inputs"].numel() for b, _ in timed)
        rows_per_batch = sum(len(batch["inputs"]) for batch, _ in batches) / len(batches)
        seconds, tokens = timings[kind]
        rate = tokens / seconds
        rows.append(
            [
                kind,
                f"{rows_per_batch:.2f}",
                f"{positions:,}",
                f"{100 * (1 - real / positions):.1f}%",
                f"{100 * timed_padding:.1f}%",
                f"{seconds / len(timed):.2f}",
                f"{rate:,.0f}",
                f"{rate / reference:.2f}x",
            ]
        )
    headers = ["batches", "rows/batch", "positions/epoch", "padding", "timed padding", "s/step",
               "real tok/s", "vs walkthrough"]  # fmt: skip
    print_table(headers, rows)

    # collating an epoch: ours against the walkthrough's own function
    shuffled = epoch_batches(examples, lengths, "walkthrough", row_length=row_length, pad_id=0)
    groups = [
        [examples[index] for index in range(start, start + BATCH_SIZE)]
        for start in range(0, len(shuffled) * BATCH_SIZE, BATCH_SIZE)
    ]
    functions = {"ours": lambda: [collate(group, pad_id=pad_id) for group in groups]}
    try:
        import types

        sys.modules.setdefault("psutil", types.ModuleType("psutil"))  # ch07 imports it, unused
        from llms_from_scratch.ch07 import custom_collate_fn

        lists = [[list(example.ids) for example in group] for group in groups]
        functions["walkthrough"] = lambda: [custom_collate_fn(batch) for batch in lists]
    except ImportError:
        print("\n(the walkthrough's package is not installed: its collate is not timed)")
    collates = round_robin(functions, repeats=3)
    line = f"\ncollating {len(groups)} batches: ours {1e3 * collates['ours'][0]:.1f} ms"
    if "walkthrough" in collates:
        line += f", the walkthrough's {1e3 * collates['walkthrough'][0]:.1f} ms"
        line += f" ({collates['walkthrough'][0] / collates['ours'][0]:.1f}x ours)"
    print(line)
    print(f"CPU: {cpu_model()}; {time.strftime('%Y-%m-%d')}; torch {torch.__version__}")
    print(machine_line(args.threads, load_before))


if __name__ == "__main__":
    main()
