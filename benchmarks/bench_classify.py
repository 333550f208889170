"""Classification finetuning: our loop against the walkthrough's, and a word-count baseline.

Throughput (examples per second) and peak memory of finetuning a gpt2-small-shaped classifier
on the balanced SMS Spam Collection, batch 8, texts padded to the longest training message,
evaluating every 50 steps on 5 batches, as the walkthrough's chapter 6 does:

- **reference**: the walkthrough's own ``train_classifier_simple`` (package
  ``llms-from-scratch``, ``ch06``), its ``GPTModel`` with ``out_head = Linear(768, 2)``, fed our
  tokenized split through a plain ``DataLoader`` (its ``SpamDataset`` needs pandas);
- **ours, last**: ``scratchllm finetune classify``'s machinery, the head on the last position
  of the padded sequence: the same computation as the reference;
- **ours, last-token**: the head on each message's last real token (our default), which lets
  each batch drop the padding after its longest message.

Each for three trainable sets: the walkthrough's (the last block, the final LayerNorm and the
head), LoRA (rank 16 on every linear layer and the head; appendix E), and every weight (full
finetuning, to set LoRA's memory against). Random weights of
gpt2-small's shape (the throughput does not depend on their values); each peer runs in a fresh
process, so its peak resident memory is its own. Checkpoint writes and the final full-split
accuracies are left out of our timing (the reference does neither).

``--baseline`` adds a multinomial naive Bayes on word counts (a few lines of Python), trained on
the same balanced training split and scored on its test split: what a classifier with no neural
network at all reaches.

    python benchmarks/bench_classify.py                 # ~30 min on 2 cores
    python benchmarks/bench_classify.py --steps 20 --only last-block
    python benchmarks/bench_classify.py --baseline-only
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, load_average, machine_line  # noqa: E402

PEERS = ("reference", "ours-last", "ours-last-token")
TRAINABLE = ("last-block", "lora", "all")


def cache_with_sms_spam() -> str:
    """A scratchllm cache holding the SMS Spam Collection (what `sms-spam` downloads)."""
    cache = Path(tempfile.mkdtemp(prefix="bench-classify-"))
    shutil.copy(SHARED_DATA / "SMSSpamCollection", cache / "SMSSpamCollection")
    return str(cache)


def prepared_data():
    from scratchllm.config import ClassificationDataOptions
    from scratchllm.finetune.classification_data import prepare_classification
    from scratchllm.tokenizer import get_tokenizer

    return prepare_classification(ClassificationDataOptions(), get_tokenizer("gpt2"))


def child(peer: str, trainable: str, steps: int, threads: int, workdir: str) -> None:
    """One peer's run in this fresh process; prints a JSON line of its measurements."""
    import torch

    torch.set_num_threads(threads)
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = prepared_data()
    if peer == "reference":
        seconds = run_reference(data, trainable, steps)
    else:
        seconds = run_ours(data, trainable, steps, threads, workdir, peer.removeprefix("ours-"))
    peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kib) / 1024
    print(json.dumps({"seconds": seconds, "examples": steps * 8, "peak_mib": peak_mib}))


class FirstBatches:
    """The first ``count`` batches of a loader (len() included, as the walkthrough asks)."""

    def __init__(self, loader, count: int) -> None:
        self.loader, self.count = loader, count

    def __iter__(self):
        for index, batch in enumerate(self.loader):
            if index == self.count:
                return
            yield batch

    def __len__(self) -> int:
        return min(self.count, len(self.loader))


def run_reference(data, trainable: str, steps: int) -> float:
    import contextlib
    import io

    import torch
    from llms_from_scratch import appendix_e, ch06
    from llms_from_scratch.ch04 import GPTModel
    from torch.utils.data import DataLoader, TensorDataset

    config = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
              "n_layers": 12, "drop_rate": 0.0, "qkv_bias": True}  # fmt: skip
    torch.manual_seed(123)
    model = GPTModel(config)
    for parameter in model.parameters():
        parameter.requires_grad = False
    torch.manual_seed(123)
    model.out_head = torch.nn.Linear(768, 2)
    if trainable == "lora":
        for parameter in model.parameters():
            parameter.requires_grad = False
        appendix_e.replace_linear_with_lora(model, rank=16, alpha=16)
    elif trainable == "all":
        for parameter in model.parameters():
            parameter.requires_grad = True
    else:
        for module in (model.trf_blocks[-1], model.final_norm):
            for parameter in module.parameters():
                parameter.requires_grad = True
    train = data.split("train")
    val = data.split("val")
    loader = DataLoader(TensorDataset(train.ids, train.labels), batch_size=8, shuffle=True,
                        drop_last=True)  # fmt: skip
    val_loader = DataLoader(TensorDataset(val.ids, val.labels), batch_size=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        ch06.train_classifier_simple(
            model, FirstBatches(loader, steps), val_loader, optimizer, torch.device("cpu"),
            num_epochs=1, eval_freq=50, eval_iter=5,
        )  # fmt: skip
    return time.perf_counter() - started


def run_ours(data, trainable: str, steps: int, threads: int, workdir: str, position: str) -> float:
    import torch

    from scratchllm.config import ClassifyConfig, GPTConfig
    from scratchllm.finetune.classifier import Classification
    from scratchllm.model.gpt import GPT
    from scratchllm.tokenizer import get_tokenizer
    from scratchllm.train.run import Run
    from scratchllm.weights.checkpoint import save_checkpoint

    base = Path(workdir) / "gpt2-random"
    if not (base / "config.json").is_file():
        config = GPTConfig.from_name("gpt2-small", qkv_bias=True, tie_weights=True, dropout=0.0)
        save_checkpoint(base, GPT(config, generator=torch.Generator().manual_seed(123)),
                        get_tokenizer("gpt2"))  # fmt: skip
    Run._save = lambda self: None  # the reference writes no checkpoint
    Classification.finish = lambda self, model, context: None  # nor scores every split
    config = ClassifyConfig(
        init_from=str(base), out_dir=str(Path(workdir) / "runs"), max_steps=steps, epochs=0.0,
        threads=threads, position=position, trainable=trainable, lora_rank=16, lora_alpha=16.0,
    )  # fmt: skip
    run = Run(config, Classification(config))
    started = time.perf_counter()
    run.run(show_progress=False)
    return time.perf_counter() - started


def naive_bayes_baseline(*, balance: bool = True, seed: int = 123) -> dict[str, float]:
    """Multinomial naive Bayes on lowercased word counts, add-one smoothing: fit on the training
    split, accuracy on each split (the same messages the models are scored on)."""
    from scratchllm.config import ClassificationDataOptions
    from scratchllm.finetune.classification_split import select_splits

    splits = select_splits(ClassificationDataOptions(balance=balance, data_seed=seed))
    words = lambda text: re.findall(r"[a-z0-9']+", text.lower())  # noqa: E731
    counts = {label: collections.Counter() for label in splits.labels}
    documents = collections.Counter()
    for example in splits.splits["train"].examples:
        counts[example.label].update(words(example.text))
        documents[example.label] += 1
    vocabulary = set().union(*counts.values())
    totals = {label: sum(counter.values()) for label, counter in counts.items()}

    def predict(text: str) -> str:
        def score(label: str) -> float:
            prior = math.log(documents[label] / sum(documents.values()))
            denominator = totals[label] + len(vocabulary)
            return prior + sum(math.log((counts[label][w] + 1) / denominator) for w in words(text))

        return max(splits.labels, key=score)

    result = {}
    for name in ("train", "val", "test"):
        examples = splits.splits[name].examples
        result[name] = sum(predict(e.text) == e.label for e in examples) / len(examples)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per run")
    parser.add_argument(
        "--lora-steps", type=int, default=30, help="steps of the LoRA and all-weights runs"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=TRAINABLE, help="one trainable set only")
    parser.add_argument("--baseline-only", action="store_true", help="naive Bayes only")
    parser.add_argument(
        "--quick", action="store_true", help="a few steps, last block only (a smoke test)"
    )
    parser.add_argument("--child", nargs=4, metavar=("PEER", "TRAINABLE", "STEPS", "WORKDIR"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED_DATA / "tiktoken-cache"))
    if "SCRATCHLLM_CACHE_DIR" not in os.environ:
        os.environ["SCRATCHLLM_CACHE_DIR"] = cache_with_sms_spam()
    if args.child:
        peer, trainable, steps, workdir = args.child
        child(peer, trainable, int(steps), args.threads, workdir)
        return
    for balance in (True, False):
        for seed in (123, 1, 2):
            accuracy = naive_bayes_baseline(balance=balance, seed=seed)
            kind = "balanced" if balance else "unbalanced"
            print(f"naive Bayes on word counts ({kind} sms-spam split, data seed {seed}): "
                  "accuracy " + ", ".join(f"{n} {v:.2%}" for n, v in accuracy.items()))  # fmt: skip
    if args.baseline_only:
        return
    if args.quick:
        args.steps, args.lora_steps, args.only = 4, 2, "last-block"
    load_before = load_average()
    workdir = tempfile.mkdtemp(prefix="bench-classify-run-")
    print(f"gpt2-small classifier, batch 8, {args.threads} threads; {os.uname().machine}")
    for trainable in [args.only] if args.only else TRAINABLE:
        steps = args.steps if trainable == "last-block" else args.lora_steps
        measured = {}
        for peer in PEERS:
            output = subprocess.run(
                [sys.executable, __file__, "--threads", str(args.threads), "--child", peer,
                 trainable, str(steps), workdir],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            measured[peer] = json.loads(output.stdout.strip().splitlines()[-1])
        print(f"\ntrainable: {trainable}, {steps} steps (evaluations included)")
        reference = measured["reference"]["examples"] / measured["reference"]["seconds"]
        for peer, values in measured.items():
            rate = values["examples"] / values["seconds"]
            print(f"  {peer:<16} {rate:7.2f} examples/s  ({rate / reference:4.2f}x reference)  "
                  f"peak memory {values['peak_mib']:7.0f} MiB")  # fmt: skip
    print(machine_line(args.threads, load_before))


if __name__ == "__main__":
    main()
