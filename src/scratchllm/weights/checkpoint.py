"""Our checkpoint folder: a model that describes itself.

A checkpoint is a folder holding everything needed to use a model again::

    config.json          format version, the GPTConfig fields, the tokenizer's fingerprint, and
                         a declaration of every optional part below
    model.safetensors    the GPT's weights under GPT-2's parameter names (a tied lm_head once)
    tokenizer/           the tokenizer, as Tokenizer.save writes it
    head.safetensors     (with "head" in config.json) a task head: its kind, classes, label
                         names and the position it reads (config.HeadConfig)
    adapters.safetensors (with "adapters") LoRA adapters: rank, alpha, targets
                         (config.LoRAConfig), keys ``h.{i}.<layer>.lora_A`` / ``lora_B``;
                         its own metadata repeats the settings and names the base model
                         (``extra["base"]``), so the small file explains itself
    training_state.pt    (training checkpoints only) what resuming needs: optimizer moments,
                         step, data position, random states; see ``save_training_state``

``config.json`` may also name a ``prompt_format`` (``finetune/prompts.py``) that generation,
chat and the server use. Each part is validated as strictly as the weights: a declared part
whose file is missing, a file nobody declared, an unknown field, a missing or unexpected key,
a wrong shape, or label names that do not fit the classes are each a ``CheckpointError``.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file as save_safetensors_file
from torch import nn

from scratchllm.config import GPTConfig, HeadConfig, LoRAConfig
from scratchllm.errors import CheckpointError, ConfigError, ScratchLLMError
from scratchllm.finetune.lora import (
    HEAD,
    adapter_shapes,
    apply_lora,
    is_adapter_key,
    lora_config_of,
    wrap_head,
)
from scratchllm.finetune.prompts import get_prompt_format
from scratchllm.io import atomic_path, atomic_write_text, atomic_writer
from scratchllm.model.gpt import GPT
from scratchllm.model.heads import ClassificationHead
from scratchllm.tokenizer import Tokenizer, load_tokenizer

FORMAT_VERSION = 2  # 2: optional head, adapters and prompt format; 1 (a GPT only) still reads
READABLE_VERSIONS = (1, 2)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HEAD_FILE = "head.safetensors"
ADAPTERS_FILE = "adapters.safetensors"
TOKENIZER_DIR = "tokenizer"
TRAINING_STATE_FILE = "training_state.pt"
TRAINING_STATE_VERSION = 1
TIED_KEY = "lm_head.weight"  # the same tensor as wte.weight when the config ties them


@dataclass
class Checkpoint:
    """Everything a checkpoint folder holds, loaded (``read_checkpoint``)."""

    path: Path
    model: GPT  # in eval mode, with its LoRA adapters applied when it has any
    tokenizer: Tokenizer
    head: nn.Linear | None = None  # a ClassificationHead, or a LoRALinear wrapping one
    head_config: HeadConfig | None = None
    prompt_format: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # config.json as read

    @property
    def labels(self) -> tuple[str, ...] | None:
        """The head's class names, or None without a head."""
        return None if self.head_config is None else self.head_config.label_names

    @property
    def adapters(self) -> LoRAConfig | None:
        return lora_config_of(self.model)


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: GPT,
    tokenizer: Tokenizer,
    *,
    head: nn.Linear | None = None,
    head_config: HeadConfig | None = None,
    prompt_format: str | None = None,
    extra: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    head_state_dict: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` and ``tokenizer`` (and a head, adapters, a prompt format) to
    ``directory`` (created if needed); returns it.

    LoRA adapters applied to ``model`` (``finetune/lora.py``), and a head's own adapter
    (``head.lora_A`` / ``head.lora_B``), go to their own file, declared with their config.
    ``head_config`` defaults to the head's own (a ``ClassificationHead``'s ``config``).
    ``extra`` adds JSON fields to ``config.json``; ``training_state`` is written as
    ``training_state.pt`` (see ``save_training_state``). ``state_dict`` / ``head_state_dict``
    are the weights to write (default: the modules' own); a copy taken earlier lets the model
    train on meanwhile.
    """
    directory = Path(directory)
    _check_vocabulary(model.config, tokenizer, where=str(directory))
    if prompt_format is not None:
        get_prompt_format(prompt_format)  # an unknown name fails before anything is written
    weights = model.state_dict() if state_dict is None else state_dict
    body = {
        name: _cpu(tensor)
        for name, tensor in weights.items()
        if not is_adapter_key(name) and not (model.config.tie_weights and name == TIED_KEY)
    }
    adapters = {name: _cpu(tensor) for name, tensor in weights.items() if is_adapter_key(name)}
    if head is not None:
        head_weights = head.state_dict() if head_state_dict is None else head_state_dict
        head_tensors = {
            name: _cpu(tensor) for name, tensor in head_weights.items() if not is_adapter_key(name)
        }
        adapters.update(
            {f"{HEAD}.{name}": _cpu(t) for name, t in head_weights.items() if is_adapter_key(name)}
        )
    config: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "tokenizer_fingerprint": tokenizer.fingerprint,
    }
    lora = lora_config_of(model) or (lora_config_of(head) if head is not None else None)
    if adapters:
        assert lora is not None, "adapter weights without LoRA layers"
        config["adapters"] = lora.to_dict()
    if head is not None:
        head_config = head_config or getattr(head, "config", None)
        if not isinstance(head_config, HeadConfig):
            raise ConfigError("save_checkpoint needs the head's HeadConfig (head_config=...)")
        config["head"] = head_config.to_dict()
    if prompt_format is not None:
        config["prompt_format"] = prompt_format
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(directory / TOKENIZER_DIR)
    _write_tensors(directory / WEIGHTS_FILE, body)
    for name, tensors in ((ADAPTERS_FILE, adapters), (HEAD_FILE, head_tensors if head else {})):
        if tensors:
            metadata = None
            if name == ADAPTERS_FILE:  # the file says on its own what it is and whose it is
                metadata = {
                    "format": "scratchllm-lora",
                    "adapters": json.dumps(config["adapters"]),
                    "model": json.dumps(config["model"]),
                    "base": str((extra or {}).get("base", "")),
                }
            _write_tensors(directory / name, tensors, metadata=metadata)
        else:
            (directory / name).unlink(missing_ok=True)  # saved over an older checkpoint
    if training_state is not None:
        save_training_state(directory, training_state)
    config.update(extra or {})
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=1) + "\n")
    return directory


def load_checkpoint(
    directory: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[GPT, Tokenizer]:
    """Read a folder written by ``save_checkpoint``: the model (in eval mode, with its adapters
    when it has any) and the tokenizer. ``read_checkpoint`` also gives the head and the rest."""
    checkpoint = read_checkpoint(directory, device=device)
    return checkpoint.model, checkpoint.tokenizer


def read_checkpoint(
    directory: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> Checkpoint:
    """Read every part of a checkpoint folder, each checked against its declaration."""
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
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{config_path} has format version {version!r}; this scratchllm reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    head_config, lora, prompt_format = _declared_parts(saved, directory)
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
    _load_weights_into(directory / WEIGHTS_FILE, model)
    head = None
    if head_config is not None:
        head = ClassificationHead(head_config, config.n_embd)
        shapes = head_config.parameter_shapes(config.n_embd)
        head.load_state_dict(_read_tensors(directory / HEAD_FILE, shapes, what="head"))
    if lora is not None:
        if HEAD in lora.targets and head is None:
            raise CheckpointError(
                f"{directory / CONFIG_FILE}: its adapters target a 'head' but it declares none"
            )
        num_classes = head_config.num_classes if head_config is not None else None
        expected = adapter_shapes(config, lora, num_classes=num_classes)
        tensors = _read_tensors(directory / ADAPTERS_FILE, expected, what="adapters")
        if any(target != HEAD for target in lora.targets):
            apply_lora(model, lora)
        if head is not None and HEAD in lora.targets:
            head = wrap_head(head, lora)
            prefix = f"{HEAD}."
            head.load_state_dict(
                {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)},
                strict=False,
            )
        model.load_state_dict(
            {k: v for k, v in tensors.items() if not k.startswith(f"{HEAD}.")}, strict=False
        )
    return Checkpoint(
        path=directory,
        model=model.to(device).eval(),
        tokenizer=tokenizer,
        head=None if head is None else head.to(device).eval(),
        head_config=head_config,
        prompt_format=prompt_format,
        metadata=saved,
    )


def read_model_config(directory: str | os.PathLike[str]) -> GPTConfig:
    """The GPTConfig a checkpoint declares, without loading its weights."""
    path = Path(directory) / CONFIG_FILE
    try:
        return GPTConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))["model"])
    except FileNotFoundError:
        raise CheckpointError(
            f"{directory} is not a scratchllm checkpoint (no {CONFIG_FILE})"
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError, ScratchLLMError) as error:
        raise CheckpointError(f"{path} is unreadable: {error}") from None


def _declared_parts(
    saved: dict[str, Any], directory: Path
) -> tuple[HeadConfig | None, LoRAConfig | None, str | None]:
    """The optional parts ``config.json`` declares, each validated, and matched with files."""
    head_config = lora = prompt_format = None
    try:
        if "head" in saved:
            head_config = HeadConfig.from_dict(saved["head"])
        if "adapters" in saved:
            lora = LoRAConfig.from_dict(saved["adapters"])
        if "prompt_format" in saved:
            prompt_format = saved["prompt_format"]
            get_prompt_format(prompt_format)
    except ScratchLLMError as error:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {error}") from None
    for file_name, declared, key in (
        (HEAD_FILE, head_config, "head"),
        (ADAPTERS_FILE, lora, "adapters"),
    ):
        present = (directory / file_name).is_file()
        if declared is not None and not present:
            raise CheckpointError(
                f"{directory}: {CONFIG_FILE} declares {key!r} but {file_name} is missing; the "
                "checkpoint is incomplete"
            )
        if declared is None and present:
            raise CheckpointError(
                f"{directory}: {file_name} is there but {CONFIG_FILE} declares no {key!r}; "
                "remove the file or restore the declaration"
            )
    return head_config, lora, prompt_format


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu").contiguous()


def _write_tensors(
    path: Path, tensors: dict[str, torch.Tensor], *, metadata: dict[str, str] | None = None
) -> None:
    with atomic_path(path) as temporary:
        # from the tensors: no 0.5 GB bytes copy
        save_safetensors_file(tensors, temporary, metadata=metadata)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete") from None
    except (SafetensorError, ValueError, OSError) as error:
        raise CheckpointError(f"{path} is corrupt or truncated ({error})") from None


def _read_tensors(
    path: Path, expected: Mapping[str, tuple[int, ...]], *, what: str
) -> dict[str, torch.Tensor]:
    """The tensors of ``path``, which must be exactly ``expected`` (names and shapes)."""
    tensors = _load_tensors(path)
    _check_shapes(path, {n: tuple(t.shape) for n, t in tensors.items()}, expected, what=what)
    return tensors


def _load_weights_into(path: Path, model: GPT) -> None:
    """Copy the weights in ``path`` into ``model``, checked first against its names and shapes
    from the file's header alone, then read one tensor at a time: loading holds the model plus
    one tensor (not the whole file's bytes and a second copy of every weight besides)."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if model.config.tie_weights:
        del expected[TIED_KEY]  # stored once, as wte.weight
    try:
        with safe_open(path, framework="pt") as weights:
            names = weights.keys()  # noqa: SIM118 - a safetensors handle, not a dict
            found = {name: tuple(weights.get_slice(name).get_shape()) for name in names}
            _check_shapes(path, found, expected, what="its config")
            state = model.state_dict()
            with torch.no_grad():
                for name in found:
                    state[name].copy_(weights.get_tensor(name))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete") from None
    except (SafetensorError, ValueError, OSError, RuntimeError) as error:
        raise CheckpointError(f"{path} is corrupt or truncated ({error})") from None


def _check_shapes(
    path: Path,
    found: Mapping[str, tuple[int, ...]],
    expected: Mapping[str, tuple[int, ...]],
    *,
    what: str,
) -> None:
    if dict(found) != dict(expected):
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        wrong = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])
        raise CheckpointError(
            f"{path} does not match {what}: missing {missing[:4]}, unexpected "
            f"{unexpected[:4]}, wrong shape {[(n, found[n], expected[n]) for n in wrong[:3]]}"
        )


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
