"""The training loop on a tiny model: what a run writes, that it learns, and that resuming
repeats the uninterrupted run bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from scratchllm.config import TrainConfig
from scratchllm.errors import CheckpointError, ConfigError
from scratchllm.model.gpt import GPT
from scratchllm.train import train
from scratchllm.train.batches import stack_windows
from scratchllm.train.metrics import MetricsLog
from scratchllm.train.pretrain import Pretraining
from scratchllm.train.run import Run
from scratchllm.train.run_dir import best_checkpoint, list_checkpoints
from scratchllm.weights.checkpoint import TRAINING_STATE_FILE, WEIGHTS_FILE, load_checkpoint


def make_run(config):
    """The run machinery with the pretraining objective, set up but not started."""
    return Run(config, Pretraining(config))


def read_metrics(run_dir):
    return MetricsLog.resume(run_dir / "metrics.jsonl", up_to_step=10**9).records


def final_weights(result):
    return load_file(result.checkpoint / WEIGHTS_FILE)


def test_a_run_writes_config_metrics_plot_and_checkpoints(make_config):
    config = make_config(keep_last=1, max_steps=12)
    result = train(config, show_progress=False)
    run = result.run_dir
    assert (result.step, result.total_steps, result.stopped_by) == (12, 12, None)
    assert result.tokens_seen == 12 * 4 * 16
    assert TrainConfig.from_toml(run / "train.toml") == config  # the effective config
    info = json.loads((run / "run.json").read_text())
    assert info["model"]["n_layer"] == 2 and info["model"]["vocab_size"] == 300
    records = read_metrics(run)
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 13))
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 4, 8, 12]
    assert all(isinstance(r["sample"], str) for r in evals)
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5  # it learns
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # keep_last=1 keeps the newest and the best by val loss, nothing else
    best = best_checkpoint(run)
    kept = [path for _, path in list_checkpoints(run)]
    assert result.checkpoint == kept[-1] and best in kept and len(kept) <= 2
    assert json.loads((run / "checkpoints" / "best.json").read_text())["val_loss"] == min(
        r["val_loss"] for r in evals[1:]
    )
    model, tokenizer = load_checkpoint(result.checkpoint)
    assert tokenizer.vocab_size == 300 and model.config.context_length == 16
    assert not any(path.name.startswith(".") for path in (run / "checkpoints").iterdir())


def test_learns_below_the_unigram_baseline(make_config):
    result = train(make_config(max_steps=60, eval_every=60, sample_tokens=0), show_progress=False)
    # the unigram baseline scores ~3.5 nats here; the grammar's next word is far more certain
    assert result.val_loss < result.unigram_loss - 0.5


def test_resume_repeats_the_uninterrupted_run_bit_for_bit(make_config):
    # dropout, accumulation and evaluations in between: everything that could drift
    common = dict(
        max_steps=7, eval_every=3, tokens_per_step=128, model_overrides={"dropout": 0.1,
        "n_layer": 2, "n_embd": 32, "n_head": 4, "context_length": 16},
    )  # fmt: skip
    whole = train(make_config(name="whole", **common), show_progress=False)
    config = make_config(name="pieces", **common)
    first = train(config, stop_after=4, show_progress=False)
    assert (first.step, first.stopped_by) == (4, "stop_after")
    assert first.checkpoint.name == "step-0000004"
    second = train(config, resume=first.run_dir, show_progress=False)
    assert second.step == 7
    assert second.losses == whole.losses  # exact float equality, all 7 steps
    evals = [[r["val_loss"] for r in read_metrics(x.run_dir) if r["kind"] == "eval"]
             for x in (whole, second)]  # fmt: skip
    assert evals[0] == evals[1]
    for name, tensor in final_weights(whole).items():
        assert torch.equal(tensor, final_weights(second)[name]), name


def test_resume_refuses_a_different_run(make_config):
    config = make_config(max_steps=2, eval_every=2)
    result = train(config, show_progress=False)
    with pytest.raises(ConfigError, match=r"cannot change lr .*--init-from"):
        train(config.replace(lr=5e-3), resume=result.run_dir, show_progress=False)
    # how long it runs may change: extend it by two steps
    longer = train(config.replace(max_steps=4), resume=result.run_dir, show_progress=False)
    assert longer.step == 4 and len(longer.losses) == 4


def test_resume_from_a_truncated_state_is_a_clear_error(make_config):
    config = make_config(max_steps=2, eval_every=2)
    result = train(config, show_progress=False)
    state = result.checkpoint / TRAINING_STATE_FILE
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        train(config, resume=result.run_dir, show_progress=False)


def test_a_new_run_refuses_an_existing_folder(make_config):
    config = make_config(max_steps=1, eval_every=1, sample_tokens=0)
    train(config, show_progress=False)
    with pytest.raises(CheckpointError, match="already exists.*--resume"):
        train(config, show_progress=False)


def test_init_from_starts_a_new_run_from_the_weights(make_config):
    base = train(make_config(name="base", max_steps=4, eval_every=4), show_progress=False)
    tuned = train(
        make_config(name="tuned", init_from=str(base.run_dir), max_steps=2, eval_every=2),
        show_progress=False,
    )
    base_evals = [r for r in read_metrics(base.run_dir) if r["kind"] == "eval"]
    tuned_evals = [r for r in read_metrics(tuned.run_dir) if r["kind"] == "eval"]
    assert tuned_evals[0]["step"] == 0  # a new run: its own step count and schedule
    assert tuned_evals[0]["val_loss"] == base_evals[-1]["val_loss"]  # the same weights
    assert tuned.step == 2
    with pytest.raises(ConfigError, match="fixes the model's shape"):
        overrides = {"n_layer": 3, "n_embd": 32, "n_head": 4, "context_length": 16}
        train(make_config(name="wider", init_from=str(base.run_dir), model_overrides=overrides))


def test_dropout_continues_the_init_stream_as_the_walkthrough_does(make_config):
    # the walkthrough: torch.manual_seed(seed); model = GPTModel(cfg); train. Dropout masks
    # come from the stream after the init's draws; a generator of its own seeded alike for the
    # init would leave dropout replaying the very numbers that drew the weights
    config = make_config(max_steps=1)
    config = config.replace(model_overrides={**config.model_overrides, "dropout": 0.5})
    trainer = make_run(config)
    state = torch.get_rng_state()  # the trainer's; the references below reseed torch
    inputs, targets = stack_windows(trainer.objective.train_set, trainer.plan.window_indices(0))
    torch.manual_seed(7)  # the config's seed
    reference = GPT(trainer.objective.model_config).train()
    expected = F.cross_entropy(reference(inputs).flatten(0, 1), targets.flatten()).item()
    torch.manual_seed(7)  # the same weights, with masks from the start of the stream
    replayed = F.cross_entropy(reference(inputs).flatten(0, 1), targets.flatten()).item()
    assert replayed != expected  # the masks differ, so the check below can fail
    torch.set_rng_state(state)
    result = trainer.run(stop_after=None, show_progress=False)
    assert result.losses[0] == expected


def test_accumulation_matches_one_bigger_batch(make_config):
    big = train(make_config(name="big", batch_size=8, max_steps=3), show_progress=False)
    accumulated = train(
        make_config(name="accumulated", batch_size=4, tokens_per_step=128, max_steps=3),
        show_progress=False,
    )
    # the same 8 windows per step, so the same gradient up to float summation order
    assert accumulated.losses == pytest.approx(big.losses, rel=1e-5)


def test_tokens_per_step_must_be_a_multiple_of_a_micro_batch(make_config):
    with pytest.raises(ConfigError, match="multiple of the tokens in one micro-batch"):
        train(make_config(tokens_per_step=100), show_progress=False)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch._dynamo's own imports
def test_compiled_model_checkpoints_have_plain_names(make_config):
    # torch.compile wraps lazily (no compilation until the first call); saving goes through
    # the original module, so no "_orig_mod." prefix reaches the checkpoint
    trainer = make_run(make_config(compile=True))
    assert type(trainer.step_model).__name__ == "OptimizedModule"
    assert any(k.startswith("_orig_mod.") for k in trainer.step_model.state_dict())
    trainer.step = 1  # pretend a step ran, then save it
    trainer._save()
    trainer.writer.wait()  # the write runs in the background
    assert not any(
        "_orig_mod" in name for name in load_file(trainer.last_checkpoint / WEIGHTS_FILE)
    )


def test_a_run_keeps_freed_memory_unless_told_not_to(make_config, monkeypatch):
    from scratchllm.train import run

    calls = []
    monkeypatch.setattr(run, "keep_freed_memory", lambda: calls.append("kept") or True)
    make_run(make_config(name="kept", max_steps=1))
    assert calls == ["kept"]
    make_run(make_config(name="given-back", max_steps=1, keep_freed_memory=False))
    assert calls == ["kept"]


def test_an_init_from_run_records_what_runs_and_resumes(make_config):
    # the new user's report: a cpu-tiny run, a run --init-from it, whose train.toml said
    # cpu-small and whose --resume failed with "another shape"
    base = train(make_config(name="t1", max_steps=4, eval_every=4), show_progress=False)
    config = make_config(
        name="b", init_from=str(base.run_dir), max_steps=4, eval_every=2, model="cpu-small",
        model_overrides={"dropout": 0.1},
    )  # fmt: skip
    first = train(config, stop_after=2, show_progress=False)
    recorded = TrainConfig.from_toml(first.run_dir / "train.toml")
    assert recorded.init_from == str(base.checkpoint)  # the checkpoint, not the moving run
    assert recorded.model == ""  # no preset has its shape: the overrides give all of it
    assert recorded.model_overrides == {**base_model_config(base), "dropout": 0.1}
    assert recorded.tokenizer == str(base.checkpoint / "tokenizer")
    resumed = train(recorded, resume=first.run_dir, show_progress=False)
    whole = train(config.replace(name="b-whole"), show_progress=False)
    assert resumed.step == 4 and resumed.losses == whole.losses


def base_model_config(result):
    model, _ = load_checkpoint(result.checkpoint)
    return model.config.to_dict()


def test_a_start_that_failed_before_its_first_checkpoint_does_not_block_its_name(
    make_config, monkeypatch
):
    from scratchllm.train import run as run_module

    def fail(*args, **kwargs):
        raise RuntimeError("boom during setup")

    config = make_config(name="again", max_steps=2, eval_every=2)
    monkeypatch.setattr(run_module, "build_optimizer", fail)
    with pytest.raises(RuntimeError, match="boom"):
        train(config, show_progress=False)
    with pytest.raises(CheckpointError, match="start that failed before its first checkpoint"):
        train(config, resume=config.out_dir + "/again", show_progress=False)
    monkeypatch.undo()
    result = train(config, show_progress=False)  # the same name starts afresh
    assert result.step == 2
    with pytest.raises(CheckpointError, match="already exists"):  # a real run is never cleared
        train(config, show_progress=False)


def test_an_edited_train_toml_is_caught_against_the_checkpoint(make_config):
    config = make_config(name="edited", max_steps=4, eval_every=2)
    first = train(config, stop_after=2, show_progress=False)
    toml = first.run_dir / "train.toml"
    toml.write_text(toml.read_text().replace("lr = 0.01", "lr = 0.5"))
    edited = TrainConfig.from_toml(toml)
    assert edited.lr == 0.5
    with pytest.raises(ConfigError, match=r"cannot change lr 0\.01 -> 0\.5.*step-0000002 was"):
        train(edited, resume=first.run_dir, show_progress=False)


def test_an_init_from_run_of_a_preset_records_that_preset(make_config):
    base = train(
        make_config(name="tiny", model="cpu-tiny", model_overrides={}, max_steps=1, eval_every=1),
        show_progress=False,
    )
    tuned = train(
        make_config(
            name="tuned", init_from=str(base.run_dir), max_steps=1, eval_every=1,
            model_overrides={},
        ),
        show_progress=False,
    )  # fmt: skip
    recorded = TrainConfig.from_toml(tuned.run_dir / "train.toml")
    assert recorded.model == "cpu-tiny"  # not the default preset (cpu-small) it was asked for
    assert json.loads((tuned.run_dir / "run.json").read_text())["model"]["n_embd"] == 64


def test_init_from_a_pretrained_name_uses_the_downloaded_copy(make_config, tmp_path, monkeypatch):
    import shutil

    from scratchllm.train.run_dir import resolve_checkpoint

    monkeypatch.setenv("SCRATCHLLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(CheckpointError, match="not downloaded yet.*scratchllm download gpt2"):
        train(make_config(name="no-gpt2", init_from="gpt2"), show_progress=False)
    base = train(make_config(name="base", max_steps=1, eval_every=1), show_progress=False)
    shutil.copytree(base.checkpoint, tmp_path / "cache" / "models" / "gpt2")
    assert resolve_checkpoint("gpt2") == tmp_path / "cache" / "models" / "gpt2"
    tuned = train(
        make_config(name="tuned", init_from="gpt2", max_steps=1, eval_every=1),
        show_progress=False,
    )
    recorded = TrainConfig.from_toml(tuned.run_dir / "train.toml")
    assert recorded.init_from == str(tmp_path / "cache" / "models" / "gpt2")
