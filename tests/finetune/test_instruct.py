"""Instruction finetuning and DPO end to end on a tiny model: the CLI, the shared run
machinery, results.json, the prompt format in the checkpoint, responses, LoRA, exact resume,
and DPO's oracles (ln 2 while the policy is the reference)."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import socket

import pytest
import torch

from scratchllm.cli import main
from scratchllm.config import DPOConfig, GPTConfig, InstructConfig
from scratchllm.errors import ConfigError
from scratchllm.finetune.dpo import PreferenceTuning
from scratchllm.finetune.instruct import IGNORE_INDEX, InstructionTuning, token_loss
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import BPETokenizer
from scratchllm.train.objective import RunContext
from scratchllm.train.run import run_training
from scratchllm.train.run_dir import resolve_checkpoint
from scratchllm.weights.checkpoint import read_checkpoint, save_checkpoint

COLOURS = {"grass": "green", "the sky": "blue", "snow": "white", "coal": "black"}
WRONG = {"green": "red", "blue": "yellow", "white": "pink", "black": "orange"}  # never right


def examples(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Instructions whose answer the input decides, with a chosen and a rejected answer."""
    rng = random.Random(seed)
    entries = []
    for index in range(count):
        thing = rng.choice(list(COLOURS))
        colour = COLOURS[thing]
        if index % 3 == 0:
            entry = {"instruction": f"What colour is {thing}?", "input": ""}
        else:
            entry = {"instruction": "Name the colour of the thing.", "input": thing}
        answer, wrong = f"It is {colour}.", f"It is {WRONG[colour]}."
        entries.append({**entry, "output": answer, "chosen": answer, "rejected": wrong})
    return entries


@pytest.fixture(scope="module")
def instructions(tmp_path_factory):
    """A JSON file of 120 instructions and a tiny GPT with a BPE tokenizer trained on them."""
    folder = tmp_path_factory.mktemp("instructions")
    entries = examples(120)
    (folder / "colours.json").write_text(json.dumps(entries), encoding="utf-8")
    text = " ".join(f"{e['instruction']} {e['input']} {e['output']} {e['rejected']}"
                    for e in entries)  # fmt: skip
    tokenizer = BPETokenizer.train(
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request. ### Instruction: ### Input: ### Response: " + text,
        400,
    )
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, context_length=96, n_embd=32, n_head=4, n_layer=2,
        dropout=0.0, qkv_bias=True, tie_weights=True,
    )  # fmt: skip
    save_checkpoint(folder / "base", GPT(config, generator=torch.Generator().manual_seed(1)),
                    tokenizer)  # fmt: skip
    return folder


def instruct_config(folder, tmp_path, **changes) -> InstructConfig:
    settings = dict(
        init_from=str(folder / "base"), data=str(folder / "colours.json"), out_dir=str(tmp_path),
        name="run", epochs=6.0, lr=3e-3, min_lr=3e-3, eval_every=20, eval_batches=2,
        threads=1, sample_tokens=8,
    )  # fmt: skip
    return InstructConfig(**{**settings, **changes})


def context_for(tmp_path) -> RunContext:
    return RunContext(
        run_dir=tmp_path, device=torch.device("cpu"), rank=0, world_size=1, is_main=True,
        resuming=False, autocast_dtype=None, barrier=lambda: None, reduce_sum=lambda xs: xs,
        log=lambda message: None,
    )  # fmt: skip


def test_the_cli_finetunes_records_the_format_and_responds(instructions, tmp_path, capsys):
    argv = ["finetune", "instruct", "--init-from", str(instructions / "base"), "--data",
            str(instructions / "colours.json"), "--out-dir", str(tmp_path), "--name", "sft",
            "--epochs", "20", "--lr", "3e-3", "--min-lr", "3e-3", "--eval-every", "80",
            "--mask-prompt", "--sample-tokens", "8", "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "final loss: val" in out
    run_dir = tmp_path / "sft"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["examples"] == {"train": 102, "val": 6, "test": 12}  # 85 / 10 / 5 of 120
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("kind") == "eval"]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] / 2  # it learned the answers
    assert all("sample" in r for r in evals)
    checkpoint = read_checkpoint(resolve_checkpoint(run_dir))
    assert checkpoint.prompt_format == "alpaca"
    assert "instruct" in json.dumps(checkpoint.metadata)  # the task it was finetuned for

    # generate prompts the checkpoint in its format; respond writes the walkthrough's layout
    assert main(["generate", "--checkpoint", str(run_dir), "--prompt", "What colour is snow?",
                 "--max-new-tokens", "6"]) == 0  # fmt: skip
    answer = capsys.readouterr().out.strip()
    assert "### Response" not in answer and "snow?" not in answer
    output = tmp_path / "responses.json"
    assert main(["respond", "--checkpoint", str(run_dir), "--data",
                 str(instructions / "colours.json"), "-o", str(output), "--max-new-tokens", "8",
                 "--no-progress"]) == 0  # fmt: skip
    responses = json.loads(output.read_text())
    test_split = examples(120)[102:114]  # the test split: after the first 85%
    assert [r["instruction"] for r in responses] == [e["instruction"] for e in test_split]
    assert all(set(r) >= {"instruction", "input", "output", "model_response"} for r in responses)
    right = sum(r["model_response"] == r["output"] for r in responses)
    assert right >= 7, responses  # the colour follows the thing (chance: 1 in 4)
    assert all("<|endoftext|>" not in r["model_response"] for r in responses)


def test_an_instruction_run_resumes_bit_for_bit(instructions, tmp_path):
    def config(name):
        return instruct_config(instructions, tmp_path, name=name, epochs=2.0, eval_every=5)

    whole = run_training(config("whole"), InstructionTuning(config("whole")), show_progress=False)
    first = run_training(config("pieces"), InstructionTuning(config("pieces")), stop_after=7,
                         show_progress=False)  # fmt: skip
    second = run_training(config("pieces"), InstructionTuning(config("pieces")),
                          resume=first.run_dir, show_progress=False)  # fmt: skip
    assert second.losses == whole.losses
    assert second.final == whole.final


@pytest.mark.parametrize("batching", ["pad", "group", "pack"])
def test_every_batching_gives_the_same_loss_for_the_same_examples(instructions, tmp_path,
                                                                   batching):  # fmt: skip
    objective = InstructionTuning(instruct_config(instructions, tmp_path, batching=batching))
    objective.prepare(context_for(tmp_path))
    torch.manual_seed(0)
    model = objective.build_model().eval()
    examples_ = objective.encoded["train"][:8]
    padded = objective.make_batch(examples_, packed=False)
    packed = objective.make_batch(examples_, packed=True)
    assert packed["inputs"].shape[0] < padded["inputs"].shape[0]  # fewer rows
    with torch.no_grad():
        expected = float(objective.loss(model, padded))
        assert float(objective.loss(model, packed)) == pytest.approx(expected, abs=1e-5)
    order = objective.epoch_order(123, 8)
    if batching == "pad":
        assert order is None
    else:
        assert sorted(order(0).tolist()) == list(range(objective.num_examples))


def test_mask_prompt_leaves_only_the_response_in_the_loss(instructions, tmp_path):
    objective = InstructionTuning(instruct_config(instructions, tmp_path, mask_prompt=True))
    objective.prepare(context_for(tmp_path))
    example = objective.encoded["train"][0]
    batch = objective.make_batch([example], packed=False)
    scored = batch["targets"][0][batch["targets"][0] != IGNORE_INDEX].tolist()
    # the response's tokens and the end-of-text after them
    assert scored == list(example.ids[example.prompt_length :]) + [objective.eot_id]


def test_token_loss_is_zero_when_nothing_is_scored():
    logits = torch.randn(1, 3, 5, requires_grad=True)
    loss = token_loss(logits, torch.full((1, 3), IGNORE_INDEX))
    assert float(loss.detach()) == 0.0
    loss.backward()  # still differentiable: the step goes on
    assert not math.isnan(float(logits.grad.sum()))


def test_lora_instruction_tuning_trains_adapters_only(instructions, tmp_path):
    config = instruct_config(instructions, tmp_path, name="lora", lora_rank=4, lora_alpha=8.0,
                             epochs=1.0)  # fmt: skip
    objective = InstructionTuning(config)
    result = run_training(config, objective, show_progress=False)
    trained = {name for name, p in objective.model.named_parameters() if p.requires_grad}
    assert trained and all(name.endswith(("lora_A", "lora_B")) for name in trained)
    checkpoint = read_checkpoint(result.checkpoint)
    assert checkpoint.adapters is not None and checkpoint.adapters.rank == 4
    assert checkpoint.prompt_format == "alpaca"


def test_dpo_starts_at_ln2_and_learns_to_prefer_the_chosen_answers(instructions, tmp_path):
    sft_config = instruct_config(instructions, tmp_path, name="sft", epochs=3.0)
    sft = run_training(sft_config, InstructionTuning(sft_config), show_progress=False)
    config = DPOConfig(
        init_from=str(sft.checkpoint), data=str(instructions / "colours.json"),
        out_dir=str(tmp_path), name="dpo", epochs=4.0, lr=2e-3, min_lr=2e-3, eval_every=10,
        eval_batches=2, threads=1, sample_tokens=0,
    )  # fmt: skip
    objective = PreferenceTuning(config)
    objective.prepare(context_for(tmp_path))
    torch.manual_seed(0)
    model = objective.build_model()
    start = objective.evaluate(model, context_for(tmp_path))
    # the policy is the reference: every pair's logit is 0
    assert start["val_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert start["train_loss_eval"] == pytest.approx(math.log(2), abs=1e-6)
    assert start["val_reward_margin"] == pytest.approx(0.0, abs=1e-6)

    result = run_training(config, PreferenceTuning(config), show_progress=False)
    records = [json.loads(line)
               for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]  # fmt: skip
    last = [r for r in records if r.get("kind") == "eval"][-1]
    assert last["train_loss_eval"] < math.log(2) - 0.1
    assert last["train_reward_margin"] > 0.1
    assert last["train_accuracy"] > 0.5
    assert (result.run_dir / "rewards.png").is_file()
    results = json.loads((result.run_dir / "results.json").read_text())
    assert set(results["scores"]) == {"val", "test"}
    assert read_checkpoint(result.checkpoint).prompt_format == "alpaca"


def test_dpo_needs_a_starting_checkpoint_and_refuses_packing(instructions, tmp_path, capsys):
    assert main(["finetune", "dpo", "--data", str(instructions / "colours.json"),
                 "--out-dir", str(tmp_path)]) == 2  # fmt: skip
    assert "init_from must name the instruction-tuned checkpoint" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="batching 'pack'"):
        PreferenceTuning(DPOConfig(init_from="x", batching="pack"))


def test_a_bad_instruction_file_is_one_clear_error(instructions, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    entries = examples(20)
    entries[3]["output"] = ""
    bad.write_text(json.dumps(entries), encoding="utf-8")
    argv = ["finetune", "instruct", "--init-from", str(instructions / "base"), "--data",
            str(bad), "--out-dir", str(tmp_path), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "bad.json" in err and "3" in err


def _run_rank(rank: int, port: int, config) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    run_training(config, PreferenceTuning(config), show_progress=False)


def test_dpo_in_two_processes_matches_one_with_the_same_global_batch(instructions, tmp_path):
    """DDP over gloo: the frozen reference beside the wrapped policy, per-pair means, and the
    evaluations' sums reduced across processes give the single process's numbers."""
    base = instruct_config(instructions, tmp_path, name="sft", epochs=1.0)
    sft = run_training(base, InstructionTuning(base), show_progress=False)

    def config(name, batch_size):
        return DPOConfig(
            init_from=str(sft.checkpoint), data=str(instructions / "colours.json"),
            out_dir=str(tmp_path), name=name, batch_size=batch_size, max_steps=3, lr=1e-3,
            min_lr=1e-3, eval_every=3, eval_batches=2, threads=1, sample_tokens=0,
            batching="pad",
        )  # fmt: skip

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("fork")
    ranks = [context.Process(target=_run_rank, args=(rank, port, config("ddp", 2)))
             for rank in range(2)]  # fmt: skip
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=120)
    assert [process.exitcode for process in ranks] == [0, 0]
    single = run_training(config("single", 4), PreferenceTuning(config("single", 4)),
                          show_progress=False)  # fmt: skip

    def evaluations(run_dir):
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if '"eval"' in line]

    for ddp, one in zip(evaluations(tmp_path / "ddp"), evaluations(single.run_dir), strict=True):
        for key in ("val_loss", "train_loss_eval", "val_reward_margin", "train_accuracy"):
            assert ddp[key] == pytest.approx(one[key], abs=1e-5), key
