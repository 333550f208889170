"""Our checkpoint folder: a model that describes itself.

A checkpoint is a folder holding everything needed to use a model again::

    config.json          format version, the GPTConfig fields, the tokenizer's fingerprint
    model.safetensors    the weights under GPT-2's parameter names (a tied lm_head is stored once)
    tokenizer/           the tokenizer, as Tokenizer.save writes it

Weights are safetensors, so loading never unpickles anything. Every file is written to a
temporary name and renamed into place, and ``config.json`` is written last: a folder that has
it is complete. (Training adds resumable state — optimizer, step, RNG — beside these files.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from scratchllm.config import GPTConfig
from scratchllm.errors import CheckpointError, ScratchLLMError
from scratchllm.io import atomic_write_bytes, atomic_write_text
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import Tokenizer, load_tokenizer

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
TIED_KEY = "lm_head.weight"  # the same tensor as wte.weight when the config ties them


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: GPT,
    tokenizer: Tokenizer,
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and ``tokenizer`` to ``directory`` (created if needed); returns it."""
    directory = Path(directory)
    _check_vocabulary(model.config, tokenizer, where=str(directory))
    tensors = {
        name: tensor.detach().to("cpu").contiguous()
        for name, tensor in model.state_dict().items()
        if not (model.config.tie_weights and name == TIED_KEY)
    }
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(directory / TOKENIZER_DIR)
    atomic_write_bytes(directory / WEIGHTS_FILE, save_safetensors(tensors))
    config = {
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "tokenizer_fingerprint": tokenizer.fingerprint,
        **(extra or {}),
    }
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=1) + "\n")
    return directory


def load_checkpoint(
    directory: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[GPT, Tokenizer]:
    """Read a folder written by ``save_checkpoint``: the model (in eval mode) and tokenizer."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"{directory} is not a scratchllm checkpoint (no {CONFIG_FILE}); "
            f"pass the folder that save_checkpoint or `scratchllm train` wrote"
        )
    try:
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        version = saved.get("format_version")
        config = GPTConfig.from_dict(saved["model"])
    except (ValueError, KeyError, TypeError, AttributeError, ScratchLLMError) as error:
        raise CheckpointError(f"{config_path} is unreadable: {error}") from None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has format version {version!r}; this scratchllm reads {FORMAT_VERSION}"
        )
    try:
        tokenizer = load_tokenizer(directory / TOKENIZER_DIR)
    except ScratchLLMError as error:
        raise CheckpointError(f"{directory}: its tokenizer does not load ({error})") from None
    if saved.get("tokenizer_fingerprint") != tokenizer.fingerprint:
        raise CheckpointError(
            f"{directory}: the tokenizer in {TOKENIZER_DIR}/ is not the one the model was "
            f"saved with (fingerprint {tokenizer.fingerprint}, expected "
            f"{saved.get('tokenizer_fingerprint')})"
        )
    _check_vocabulary(config, tokenizer, where=str(directory))
    model = GPT(config)
    model.load_state_dict(_read_weights(directory / WEIGHTS_FILE, model), strict=True)
    return model.to(device).eval(), tokenizer


def _read_weights(path: Path, model: GPT) -> dict[str, torch.Tensor]:
    try:
        tensors = load_safetensors(path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete") from None
    except (SafetensorError, ValueError, OSError) as error:
        raise CheckpointError(f"{path} is corrupt or truncated ({error})") from None
    if model.config.tie_weights:
        tensors[TIED_KEY] = tensors.get("wte.weight")
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in tensors.items() if t is not None}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        wrong = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])
        raise CheckpointError(
            f"{path} does not match its config: missing {missing[:4]}, unexpected "
            f"{unexpected[:4]}, wrong shape {[(n, found[n], expected[n]) for n in wrong[:3]]}"
        )
    return tensors


def _check_vocabulary(config: GPTConfig, tokenizer: Tokenizer, *, where: str) -> None:
    if tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"{where}: the tokenizer has {tokenizer.vocab_size:,} ids but the model only "
            f"{config.vocab_size:,} embedding rows; build the model with "
            f"vocab_size >= {tokenizer.vocab_size}"
        )
