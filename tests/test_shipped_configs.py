"""Every run config in configs/ loads with the config class of the command its header names,
and holds the walkthrough's settings its header states."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scratchllm.config import ClassifyConfig, DPOConfig, InstructConfig, TrainConfig

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
COMMANDS = {
    "scratchllm train": TrainConfig,
    "scratchllm finetune classify": ClassifyConfig,
    "scratchllm finetune instruct": InstructConfig,
    "scratchllm finetune dpo": DPOConfig,
}


def config_class(path):
    """The class of the command that the file's header runs with ``--config`` on it."""
    text = path.read_text(encoding="utf-8")
    for command, cls in COMMANDS.items():
        if re.search(rf"{command} --config configs/{re.escape(path.name)}", text):
            return cls
    raise AssertionError(f"{path.name}: its header names no command run with --config on it")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    config = config_class(path).from_toml(path)
    assert config.name == path.stem  # its run folder is named after the file


def test_the_chapter_7_configs_hold_the_walkthroughs_settings():
    instruct = InstructConfig.from_toml(CONFIGS / "instruct-gpt2-medium.toml")
    assert (instruct.init_from, instruct.lr, instruct.batch_size, instruct.epochs) == (
        "gpt2-medium", 5e-5, 8, 2.0,
    )  # fmt: skip
    assert (instruct.batching, instruct.eval_every, instruct.seed) == ("pad", 5, 123)
    dpo = DPOConfig.from_toml(CONFIGS / "dpo-gpt2-medium.toml")
    assert dpo.init_from == f"{instruct.out_dir}/{instruct.name}"  # the run above
    assert (dpo.lr, dpo.weight_decay, dpo.beta, dpo.epochs) == (5e-6, 0.01, 0.1, 1.0)
