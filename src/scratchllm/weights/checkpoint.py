"""Our checkpoint folder: a model that describes itself.

A checkpoint is a folder holding everything needed to use a model again::

    config.json          format version, the GPTConfig fields, the tokenizer's fingerprint
    model.safetensors    the weights under GPT-2's parameter names (a tied lm_head is stored once)
    tokenizer/           the tokenizer, as Tokenizer.save writes it
    training_state.pt    (training checkpoints only) what resuming needs: optimizer moments,
                         step, data position, random states; see ``save_training_state``

Weights are safetensors, so loading never unpickles anything. The training state is a torch
file of tensors and plain values only, read with ``torch.load(weights_only=True)``, which
refuses any other object. Every file is written to a temporary name and renamed into place,
and ``config.json`` is written last: a folder that has it is complete.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file as save_safetensors_file

from scratchllm.config import GPTConfig
from scratchllm.errors import CheckpointError, ScratchLLMError
from scratchllm.io import atomic_path, atomic_write_text, atomic_writer
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import Tokenizer, load_tokenizer

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
TRAINING_STATE_FILE = "training_state.pt"
TRAINING_STATE_VERSION = 1
TIED_KEY = "lm_head.weight"  # the same tensor as wte.weight when the config ties them


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: GPT,
    tokenizer: Tokenizer,
    *,
    extra: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` and ``tokenizer`` to ``directory`` (created if needed); returns it.

    ``extra`` adds JSON fields to ``config.json``; ``training_state`` is written as
    ``training_state.pt`` (see ``save_training_state``). ``state_dict`` is the weights to write
    (default: the model's own); a copy taken earlier lets the model train on meanwhile.
    """
    directory = Path(directory)
    _check_vocabulary(model.config, tokenizer, where=str(directory))
    weights = model.state_dict() if state_dict is None else state_dict
    tensors = {
        name: tensor.detach().to("cpu").contiguous()
        for name, tensor in weights.items()
        if not (model.config.tie_weights and name == TIED_KEY)
    }
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(directory / TOKENIZER_DIR)
    with atomic_path(directory / WEIGHTS_FILE) as temporary:
        save_safetensors_file(tensors, temporary)  # from the tensors: no 0.5 GB bytes copy
    if training_state is not None:
        save_training_state(directory, training_state)
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


def save_training_state(directory: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts, None) to ``training_state.pt``.

    A ``format_version`` is added; ``load_training_state`` checks it.
    """
    path = Path(directory) / TRAINING_STATE_FILE
    with atomic_writer(path) as handle:  # streamed: AdamW's moments are 2x the weights
        torch.save({"format_version": TRAINING_STATE_VERSION, **state}, handle)
    return path


def load_training_state(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``training_state.pt`` with ``weights_only=True``: plain data and tensors only.

    A missing, truncated or foreign file is a ``CheckpointError`` saying which.
    """
    path = Path(directory) / TRAINING_STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} is missing: {directory} holds weights but no training state to resume "
            "from (start a new run from its weights with --init-from instead)"
        ) from None
    except pickle.UnpicklingError as error:  # what weights_only raises for foreign objects
        reason = str(error).splitlines()[0] if str(error) else "unreadable"
        raise CheckpointError(
            f"{path} holds something other than tensors and plain data, or is corrupt; it was "
            f"not loaded, since unpickling it could run code ({reason})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path} is corrupt or truncated ({error})") from None
    if not isinstance(state, dict) or state.get("format_version") != TRAINING_STATE_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise CheckpointError(
            f"{path} has training-state format version {version!r}; this scratchllm reads "
            f"{TRAINING_STATE_VERSION}"
        )
    return state
