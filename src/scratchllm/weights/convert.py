"""Hugging Face GPT-2 folders <-> our checkpoints, both ways.

**In** (``convert_from_hf``): a folder in Hugging Face's layout (``config.json`` +
``model.safetensors`` or ``pytorch_model.bin``, and the tokenizer files), or a single weights
file. The model's shape comes from ``config.json`` (``gpt_config_from_hf``) or, without one,
from the weights' shapes (``infer_gpt_config``); the weights go through the one name map
(``hf_gpt2.from_hf_state_dict``), the tokenizer through ``hf_tokenizer.read_hf_tokenizer``.
The result is an inference-ready checkpoint: ``dropout`` 0.0 (set it when you finetune),
``qkv_bias=True`` (every Hugging Face ``c_attn`` has a bias), the head tied or not as the
source says. ``pytorch_model.bin`` is read with ``torch.load(weights_only=True)``, which refuses
anything but tensors and plain data.

**Out** (``convert_to_hf``): a folder that ``transformers.AutoModelForCausalLM`` and
``AutoTokenizer`` load with no code of ours: ``config.json`` (``model_type: gpt2``, the GPT-2
fields, ``activation_function: gelu_new`` -- GPT-2's tanh GELU, which ours is), the weights as
``model.safetensors`` (``to_hf_state_dict``; a tied head is stored once, as Hugging Face does;
a model without QKV bias gets zero biases), and the tokenizer files.

What Hugging Face's GPT-2 can hold and ours cannot (an inner MLP width other than 4x, an erf
GELU, attention scaled by layer index, cross-attention) is refused with a ``CheckpointError``
naming the field, rather than converted into a model that computes something else.

Every output folder is built in a temporary folder beside the target and renamed into place
at the end (``atomic_directory``): a failure leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors_file
from safetensors.torch import save_file as save_safetensors_file

from scratchllm.config import GPTConfig
from scratchllm.errors import CheckpointError, ConfigError, ScratchLLMError, TokenizerError
from scratchllm.finetune.lora import merge_lora
from scratchllm.io import atomic_write_text
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import Tokenizer, get_tokenizer
from scratchllm.weights.checkpoint import read_checkpoint, save_checkpoint
from scratchllm.weights.hf_gpt2 import from_hf_state_dict, to_hf_state_dict
from scratchllm.weights.hf_tokenizer import read_hf_tokenizer, vocabulary_of, write_hf_tokenizer

HF_CONFIG_FILE = "config.json"
HF_SAFETENSORS_FILE = "model.safetensors"
HF_PYTORCH_FILE = "pytorch_model.bin"
GPT2_VOCAB_SIZE = 50257
# Every GPT-2 size has 64 dimensions per head (768/12, 1024/16, 1280/20, 1600/25; Radford et
# al. 2019, table 2): the head count is the one shape a weights file cannot tell.
GPT2_HEAD_SIZE = 64
# GPT2Config's defaults (transformers' configuration_gpt2.py): a config.json may leave out a
# field that equals them.
HF_GPT2_DEFAULTS: dict[str, Any] = {
    "vocab_size": GPT2_VOCAB_SIZE,
    "n_positions": 1024,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "n_inner": None,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-5,
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
}
# the tanh approximation of GELU under its two names in transformers' ACT2FN
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")

Log = Callable[[str], None]


# ---- configs, as pure functions -----------------------------------------------------------


def gpt_config_from_hf(hf_config: Mapping[str, Any], *, where: str = "config.json") -> GPTConfig:
    """Our ``GPTConfig`` for a Hugging Face GPT-2 ``config.json`` (parsed).

    >>> gpt_config_from_hf({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4})
    ... # doctest: +NORMALIZE_WHITESPACE
    GPTConfig(vocab_size=50257, context_length=1024, n_embd=64, n_head=4, n_layer=2,
              dropout=0.0, qkv_bias=True, tie_weights=True, layer_norm_eps=1e-05, init='gpt2')
    """
    if hf_config.get("model_type", "gpt2") != "gpt2":
        raise CheckpointError(
            f"{where} describes a {hf_config.get('model_type')!r} model; only GPT-2 "
            f"(model_type 'gpt2') converts to scratchllm's GPT"
        )
    hf = {**HF_GPT2_DEFAULTS, **hf_config}
    unsupported = []
    if hf["activation_function"] not in TANH_GELUS:
        unsupported.append(f"activation_function {hf['activation_function']!r} (ours: gelu_new)")
    if hf["n_inner"] not in (None, 4 * hf["n_embd"]):
        unsupported.append(f"n_inner {hf['n_inner']} (ours: 4 x n_embd)")
    if not hf["scale_attn_weights"] or hf["scale_attn_by_inverse_layer_idx"]:
        unsupported.append("attention scaling other than 1/sqrt(head size)")
    if hf["add_cross_attention"]:
        unsupported.append("cross-attention")
    if unsupported:
        raise CheckpointError(
            f"{where}: this GPT-2 variant has {'; '.join(unsupported)}, which scratchllm's GPT "
            f"does not compute; it cannot be converted faithfully"
        )
    try:
        return GPTConfig(
            vocab_size=hf["vocab_size"],
            # transformers before v3 wrote n_ctx
            context_length=hf_config.get("n_positions", hf_config.get("n_ctx", 1024)),
            n_embd=hf["n_embd"],
            n_head=hf["n_head"],
            n_layer=hf["n_layer"],
            dropout=0.0,  # inference-ready; finetuning sets its own
            qkv_bias=True,  # every Hugging Face c_attn has a bias
            tie_weights=bool(hf["tie_word_embeddings"]),
            layer_norm_eps=hf["layer_norm_epsilon"],
        )
    except ScratchLLMError as error:
        raise CheckpointError(f"{where} is not a usable GPT-2 config: {error}") from None


def hf_config_from_gpt(config: GPTConfig, *, eot_id: int | None) -> dict[str, Any]:
    """Hugging Face's ``config.json`` for our ``config``: a ``GPT2LMHeadModel`` that computes
    what ours does. ``eot_id`` (the tokenizer's ``<|endoftext|>``) is GPT-2's bos and eos."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.context_length,
        "n_ctx": config.context_length,  # what transformers before v3 read
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,  # 4 x n_embd, as ours
        "activation_function": "gelu_new",  # GPT-2's tanh GELU, which ours is
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "use_cache": True,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "tie_word_embeddings": config.tie_weights,
    }


_LAYER_KEY = re.compile(r"^(?:transformer\.)?h\.(\d+)\.")


def infer_gpt_config(
    state: Mapping[str, torch.Tensor], *, n_head: int | None = None
) -> tuple[GPTConfig, str]:
    """The ``GPTConfig`` that Hugging Face GPT-2 weights (either key layout) have, and a line
    saying what was inferred. Layers, width, vocabulary and context come from the shapes, the
    tie from ``lm_head.weight`` (absent or equal to ``wte``); the head count cannot, so it is
    ``n_head`` or ``n_embd / 64`` (GPT-2's head size)."""
    prefix = "transformer." if any(key.startswith("transformer.") for key in state) else ""
    try:
        vocab_size, n_embd = state[f"{prefix}wte.weight"].shape
        context_length = state[f"{prefix}wpe.weight"].shape[0]
    except (KeyError, ValueError):
        raise CheckpointError(
            "these weights have no GPT-2 token and position tables (wte.weight, wpe.weight); "
            "are they GPT-2 weights?"
        ) from None
    layers = {int(match.group(1)) for key in state if (match := _LAYER_KEY.match(key))}
    head = state.get("lm_head.weight")
    tied = head is None or torch.equal(head, state[f"{prefix}wte.weight"])
    how = f"n_head {n_head} as given"
    if n_head is None:
        if n_embd % GPT2_HEAD_SIZE:
            raise CheckpointError(
                f"these weights (width {n_embd}) come without a config.json, and the head count "
                f"cannot be read from shapes; pass n_head (or the folder with its config.json)"
            )
        n_head = n_embd // GPT2_HEAD_SIZE
        how = f"n_head {n_head} assumed (GPT-2's {GPT2_HEAD_SIZE} dims per head)"
    try:
        config = GPTConfig(
            vocab_size=vocab_size,
            context_length=context_length,
            n_embd=n_embd,
            n_head=n_head,
            n_layer=len(layers),
            dropout=0.0,
            qkv_bias=True,
            tie_weights=tied,
        )
    except ScratchLLMError as error:
        raise CheckpointError(f"these weights give no valid config: {error}") from None
    summary = (
        f"no config.json: config inferred from the weights' shapes ({len(layers)} layers, width "
        f"{n_embd}, vocabulary {vocab_size}, context {context_length}, "
        f"{'tied' if tied else 'untied'} head; {how}; layer_norm_eps 1e-5)"
    )
    return config, summary


# ---- reading Hugging Face's files ------------------------------------------------------------


def read_hf_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or a ``pytorch_model.bin`` (``.bin``/``.pt``/
    ``.pth``, read with ``weights_only=True``: tensors and plain data only, never code)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_safetensors_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path} is corrupt or truncated ({error})") from None
    if path.suffix not in (".bin", ".pt", ".pth"):
        raise CheckpointError(
            f"{path}: expected a .safetensors file or a PyTorch .bin, or a folder holding one"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # what weights_only raises for foreign objects
        reason = str(error).splitlines()[0] if str(error) else "unreadable"
        raise CheckpointError(
            f"{path} holds something other than tensors, or is corrupt; it was not loaded, since "
            f"unpickling it could run code ({reason})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path} is corrupt or truncated ({error})") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise CheckpointError(f"{path} is not a state dict of tensors")
    return dict(state)


def _read_hf_config(path: Path) -> dict[str, Any]:
    try:
        hf_config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from None
    if not isinstance(hf_config, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return hf_config


# ---- the output folder -----------------------------------------------------------------------


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str], *, replace: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``target`` to build in; renamed to ``target`` when the block
    succeeds, removed when it fails. An existing non-empty ``target`` is an error unless
    ``replace``, in which case it is swapped out and removed only once the new one is in."""
    target = Path(target)
    if target.exists() and not replace and (not target.is_dir() or any(target.iterdir())):
        raise CheckpointError(
            f"{target} already exists and is not empty; remove it or choose another output folder"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        )
    except OSError as error:
        raise CheckpointError(f"cannot create a folder next to {target}: {error}") from None
    try:
        yield temporary
        # mkdtemp makes the folder private (0700); give it what a plain mkdir would
        os.chmod(temporary, 0o777 & ~_current_umask())
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()  # an empty folder the user made for us
        if target.exists():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, old)
            os.replace(temporary, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)  # the only portable way to read the umask is to set it and restore it
    os.umask(mask)
    return mask


def write_checkpoint_from_hf(
    directory: Path,
    hf_state: Mapping[str, torch.Tensor],
    config: GPTConfig,
    tokenizer: Tokenizer,
    *,
    source: dict[str, Any],
) -> Path:
    """Map ``hf_state`` onto our names, load it strictly into ``GPT(config)`` and save the
    checkpoint, with ``source`` (where it came from) recorded in its ``config.json``."""
    ours = from_hf_state_dict(hf_state, config)
    # a fixed generator: the init is overwritten, and the user's global random state is kept
    model = GPT(config, generator=torch.Generator().manual_seed(0))
    model.load_state_dict(ours, strict=True)
    del ours
    return save_checkpoint(directory, model.eval(), tokenizer, extra={"source": source})


# ---- in ----------------------------------------------------------------------------------------


def convert_from_hf(
    source: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    tokenizer: Tokenizer | str | None = None,
    n_head: int | None = None,
    log: Log | None = None,
) -> Path:
    """Convert Hugging Face GPT-2 weights into a scratchllm checkpoint folder; returns it.

    ``source``: a folder in Hugging Face's layout (``config.json`` + ``model.safetensors`` or
    ``pytorch_model.bin``, with ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``), or a
    single ``model.safetensors`` / ``pytorch_model.bin`` (its config is then inferred from the
    shapes: ``n_head`` = width / 64 unless given). The tokenizer: ``tokenizer`` when given
    (``"gpt2"``, ``"gpt2:PATH"``, a saved tokenizer folder, or a ``Tokenizer``), else the
    folder's files, else GPT-2's when the vocabulary has 50,257 entries. ``log`` receives a
    line on where the config came from (or what was inferred) and one on the tokenizer.
    ``output_dir`` must not exist or be empty; it appears complete or not at all.
    """
    source = Path(source)
    say = log or (lambda message: None)
    folder = source if source.is_dir() else None
    if folder is not None:
        weights = next(
            (
                folder / name
                for name in (HF_SAFETENSORS_FILE, HF_PYTORCH_FILE)
                if (folder / name).is_file()
            ),
            None,
        )
        if weights is None:
            sharded = any(folder.glob("*.index.json"))
            raise CheckpointError(
                f"{folder} holds no {HF_SAFETENSORS_FILE} or {HF_PYTORCH_FILE}"
                + ("; sharded checkpoints are not supported" if sharded else "")
            )
    elif source.is_file():
        weights = source
    else:
        raise CheckpointError(
            f"{source} does not exist; pass a Hugging Face folder or weights file"
        )
    hf_state = read_hf_weights(weights)
    config_path = folder / HF_CONFIG_FILE if folder is not None else None
    if config_path is not None and config_path.is_file():
        config = gpt_config_from_hf(_read_hf_config(config_path), where=str(config_path))
        how = f"config from {config_path}"
    else:
        config, how = infer_gpt_config(hf_state, n_head=n_head)
    say(how)
    chosen = _tokenizer_for(folder, config, tokenizer, what=str(source))
    say(f"tokenizer: {chosen.describe()}")
    record = {"format": "huggingface", "path": str(source.resolve()), "config": how}
    with atomic_directory(output_dir) as temporary:
        write_checkpoint_from_hf(temporary, hf_state, config, chosen, source=record)
    return Path(output_dir)


def _tokenizer_for(
    folder: Path | None, config: GPTConfig, given: Tokenizer | str | None, *, what: str
) -> Tokenizer:
    """The tokenizer a conversion uses: given, else the folder's, else GPT-2's for its size."""
    try:
        if isinstance(given, Tokenizer):
            return given
        if given is not None:
            kind, _, path = str(given).partition(":")
            return (
                get_tokenizer("gpt2", path=path)
                if kind == "gpt2" and path
                else get_tokenizer(str(given))
            )
        found = read_hf_tokenizer(folder) if folder is not None else None
        if found is not None:
            return found
        if config.vocab_size == GPT2_VOCAB_SIZE:
            return get_tokenizer("gpt2")
    except TokenizerError as error:
        raise CheckpointError(
            f"{what}: the tokenizer does not load ({error}); pass one explicitly (tokenizer="
            f"'gpt2:PATH', or the folder of a saved tokenizer)"
        ) from None
    raise CheckpointError(
        f"{what} has no tokenizer files (tokenizer.json, or vocab.json + merges.txt) and a "
        f"vocabulary of {config.vocab_size:,}, not GPT-2's {GPT2_VOCAB_SIZE:,}: pass the "
        f"tokenizer it was trained with (the folder of a saved tokenizer)"
    )


# ---- out ---------------------------------------------------------------------------------------


def convert_to_hf(checkpoint: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> Path:
    """Write a scratchllm checkpoint as a Hugging Face GPT-2 folder; returns it.

    ``transformers.AutoModelForCausalLM.from_pretrained(output_dir)`` and
    ``AutoTokenizer.from_pretrained(output_dir)`` load it with no scratchllm code and give our
    logits and ids. The checkpoint's tokenizer must be a byte-level BPE (GPT-2's or one we
    trained); a word-level one is refused before anything is written. ``output_dir`` must not
    exist or be empty; it appears complete or not at all.
    """
    loaded = read_checkpoint(checkpoint)
    model, tokenizer = loaded.model, loaded.tokenizer
    if loaded.head is not None:
        raise CheckpointError(
            f"{checkpoint} has a {loaded.head.config.kind} head, which a GPT2LMHeadModel "
            "folder cannot hold; only language-model checkpoints are exported"
        )
    if loaded.adapters is not None:  # Hugging Face's GPT-2 has no adapters: fold them in
        try:
            merge_lora(model)
        except ConfigError as error:
            raise CheckpointError(f"{checkpoint} cannot be exported: {error}") from None
    try:
        vocabulary_of(tokenizer)  # refuses a word-level tokenizer before any writing
    except TokenizerError as error:
        raise CheckpointError(f"{checkpoint} cannot be exported: {error}") from None
    config = model.config
    hf_state = to_hf_state_dict(model.state_dict(), config)
    if config.tie_weights:
        del hf_state["lm_head.weight"]  # it is wte; Hugging Face ties it back on loading
    tensors = {name: tensor.detach().contiguous() for name, tensor in hf_state.items()}
    hf_config = hf_config_from_gpt(config, eot_id=tokenizer.eot_id)
    with atomic_directory(output_dir) as temporary:
        # "format": "pt" is the metadata transformers checks before reading safetensors weights
        save_safetensors_file(tensors, temporary / HF_SAFETENSORS_FILE, metadata={"format": "pt"})
        atomic_write_text(temporary / HF_CONFIG_FILE, json.dumps(hf_config, indent=2) + "\n")
        write_hf_tokenizer(tokenizer, temporary, model_max_length=config.context_length)
    return Path(output_dir)
