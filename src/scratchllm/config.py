"""Configuration: typed, torch-free dataclasses for the model, training, sampling and Word2Vec.

``GPTConfig`` describes the shape of a GPT-2 style model; ``TrainConfig`` one training run
(data, model preset, optimizer, schedule, evaluation, checkpoints, device); ``SamplingConfig``
how generation picks tokens; ``Word2VecConfig`` a Word2Vec run. They are read by the model, the
CLI, checkpoints and the server alike, so they import nothing heavier than the standard
library. Each field carries its help text (``_option``), written once: the CLI turns the fields
into flags (``scratchllm.cli.config_flags``).

The defaults are the walkthrough's ``GPT_CONFIG_124M``. Presets are looked up by name:

>>> GPTConfig.from_name("gpt2-medium").n_layer
24
>>> GPTConfig.from_name("cpu-tiny", dropout=0.0).head_dim
16
>>> GPTConfig(n_head=0)
Traceback (most recent call last):
    ...
scratchllm.errors.ConfigError: n_head must be a positive integer, got 0
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from scratchllm.errors import ConfigError

if TYPE_CHECKING:
    import torch

INIT_SCHEMES = ("gpt2", "torch-default")  # GPTConfig.init
# the corpus of the default run and of every --corpus left out: embedded (corpora.py), so it
# works offline everywhere
DEFAULT_CORPUS = "python-docs"
# the vocabulary of the default run's byte-level BPE; also a bare `bpe` tokenizer spec's and
# `scratchllm train-tokenizer`'s
DEFAULT_BPE_VOCAB = 4096


def _option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    flag: str | None = None,
) -> Any:
    """A field whose ``help`` is written once: the CLI's ``--help`` shows it as is.

    ``choices`` (the allowed values), ``metavar`` (the value's name in the help) and ``flag``
    (the option's name, when it is not the field's) shape the flag the CLI makes of it.
    """
    metadata: dict[str, Any] = {"help": help}
    for key, value in (("choices", choices), ("metavar", metavar), ("flag", flag)):
        if value is not None:
            metadata[key] = value
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT-2 style decoder-only transformer.

    The defaults give the walkthrough's 124M model. With ``qkv_bias=False`` and
    ``tie_weights=False`` (the walkthrough's choices) it has 163,009,536 parameters; tying the
    output head to ``wte`` gives 124,412,160. OpenAI's released GPT-2 checkpoints have
    ``qkv_bias=True`` (+27,648 parameters at this size) and a tied head: load them with
    ``GPTConfig.from_name("gpt2-small", qkv_bias=True, tie_weights=True)``.
    """

    # GPT-2's BPE: 50,000 merges + 256 bytes + <|endoftext|>
    vocab_size: int = _option(50257, "token ids the model knows (the tokenizer's vocabulary size)")
    context_length: int = _option(
        1024, "longest sequence the model sees: the size of its positional table wpe"
    )
    n_embd: int = _option(768, "width of every token vector (C)")
    n_head: int = _option(12, "attention heads per layer; each sees n_embd / n_head dims (hs)")
    n_layer: int = _option(12, "transformer blocks")
    dropout: float = _option(
        0.1, "one dropout rate for the embeddings, attention weights and residual branches"
    )
    # the walkthrough leaves the q/k/v projection bias-free; GPT-2 has one
    qkv_bias: bool = _option(False, "a bias on the query/key/value projection")
    # GPT-2 ties them; the walkthrough does not
    tie_weights: bool = _option(False, "share the token embedding wte with the output head")
    layer_norm_eps: float = _option(
        1e-5, "LayerNorm epsilon, which keeps 1/sqrt(var + eps) finite (GPT-2's value)"
    )
    # the walkthrough's chapter-5 run needs "torch-default" to reach its published losses
    init: str = _option(
        "gpt2",
        "how the weights start (model/gpt.py): 'gpt2' (normal 0.02, residual projections "
        "scaled by 1/sqrt(2 n_layer)) or 'torch-default' (the walkthrough's: torch's own "
        "nn.Embedding N(0, 1) and nn.Linear U(+-1/sqrt(fan_in)))",
        choices=INIT_SCHEMES,
    )

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "n_embd", "n_head", "n_layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ConfigError(
                f"n_embd {self.n_embd} must be divisible by n_head {self.n_head} "
                f"(each head gets n_embd / n_head dims)"
            )
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.layer_norm_eps, int | float) or not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        for name in ("qkv_bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.init not in INIT_SCHEMES:
            raise ConfigError(f"init must be one of {INIT_SCHEMES}, got {self.init!r}")

    @property
    def head_dim(self) -> int:
        """Dimensions per attention head (``hs``)."""
        return self.n_embd // self.n_head

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> GPTConfig:
        """The preset ``name`` (see ``PRESETS``), with any field replaced by ``overrides``."""
        if name not in PRESETS:
            raise ConfigError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
        return PRESETS[name].replace(**overrides)

    def replace(self, **changes: Any) -> GPTConfig:
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"GPTConfig has no field(s) {unknown}; fields are {_field_names()}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        """Inverse of ``to_dict``; unknown keys are an error, missing ones take the defaults."""
        return cls().replace(**data)


def _field_names() -> list[str]:
    return [field.name for field in dataclasses.fields(GPTConfig)]


# The four GPT-2 sizes (Radford et al. 2019, table 2; the counts are the walkthrough's, with
# qkv_bias=False) and two CPU presets sized so a few minutes of CPU training learns something.
# vocab_size stays GPT-2's here; training replaces it with the tokenizer's own size.
PRESETS: dict[str, GPTConfig] = {
    "gpt2-small": GPTConfig(),  # 124M
    "gpt2-medium": GPTConfig(n_embd=1024, n_head=16, n_layer=24),  # 355M
    "gpt2-large": GPTConfig(n_embd=1280, n_head=20, n_layer=36),  # 774M
    "gpt2-xl": GPTConfig(n_embd=1600, n_head=25, n_layer=48),  # 1558M
    # no dropout here: a run that reads its data many times adds it as an override (the
    # default run does, since python-docs is only ~100k tokens)
    "cpu-tiny": GPTConfig(context_length=128, n_embd=64, n_head=4, n_layer=2, dropout=0.0),
    "cpu-small": GPTConfig(context_length=256, n_embd=256, n_head=4, n_layer=4, dropout=0.0),
}


# ---- training --------------------------------------------------------------------------------

SCHEDULES = ("cosine", "constant")  # learning-rate decay after the warmup
SPLITS = ("auto", "characters")  # how a corpus is cut into train and val (data/prepare.py)
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 autocast on CUDA, fp32 elsewhere


@dataclass(frozen=True)
class RunOptions:
    """What every training run shares, whatever it trains for: the run folder, the batch, how
    long, the optimizer and its schedule, evaluation, checkpoints and the runtime.

    The run machinery (``train/run.py``) reads only these fields; a run's own config
    (``TrainConfig`` for pretraining, the finetuning configs) subclasses this and adds its data,
    model and task fields, redeclaring a field here to give it another default. The same
    dataclass comes from a TOML file (``from_toml``), from CLI flags, or both, and is saved as
    ``train.toml`` in the run folder. TOML has no null, so "not set" is ``0`` or ``""`` where a
    field says so.
    """

    # the run
    name: str = _option("", "run folder name under out_dir (default: the start time)")
    out_dir: str = _option("out/runs", "folder that holds the runs")
    seed: int = _option(1337, "seeds the initialisation, the data order and dropout")
    # batches: micro-batches of examples, accumulated to tokens_per_step
    batch_size: int = _option(16, "windows per micro-batch (per process)")
    tokens_per_step: int = _option(
        0, "tokens per optimizer step, reached by gradient accumulation; 0 = one micro-batch"
    )
    # how long: whichever of max_steps and epochs comes first (at least one must be set)
    max_steps: int = _option(250, "optimizer steps; 0 = as many as `epochs` needs")
    epochs: float = _option(0.0, "passes over the training windows; 0 = as many as max_steps")
    # AdamW with linear warmup, then cosine decay to min_lr
    lr: float = _option(1e-3, "peak learning rate")
    min_lr: float = _option(1e-4, "learning-rate floor at the end of the cosine decay")
    warmup_steps: int = _option(25, "linear warmup steps from lr/warmup_steps to lr")
    schedule: str = _option("cosine", "decay after warmup: 'cosine' (to min_lr) or 'constant'")
    weight_decay: float = _option(0.1, "AdamW weight decay, on weights of 2 or more dimensions")
    beta1: float = _option(0.9, "AdamW beta1")
    beta2: float = _option(0.95, "AdamW beta2 (0.95 as GPT-3 trained; torch's default is 0.999)")
    grad_clip: float = _option(1.0, "clip the gradient norm to this; 0 = no clipping")
    # evaluation and checkpoints
    eval_every: int = _option(50, "evaluate (val loss, sample, plot) every N steps")
    eval_batches: int = _option(3, "val batches per evaluation (fixed, so evaluations compare)")
    checkpoint_every: int = _option(0, "save a checkpoint every N steps; 0 = at each evaluation")
    keep_last: int = _option(2, "checkpoints kept besides the best by val loss")
    background_checkpoints: bool = _option(
        True,
        "write checkpoints in a thread while training goes on (holds a CPU copy of the "
        "weights and optimizer state until written); false = training waits for the disk",
    )
    # runtime
    keep_freed_memory: bool = _option(
        True,
        "keep the memory a step frees for the next step instead of returning it to the OS "
        "(glibc on Linux: no page faults, CPU steps ~1.1x faster at gpt2-small); the process "
        "then holds its peak memory until it exits",
    )
    device: str = _option("auto", "'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda:N' or 'mps'")
    precision: str = _option("auto", "'auto' (bf16 autocast on CUDA, else fp32), 'fp32' or 'bf16'")
    compile: bool = _option(False, "torch.compile the model (slow start, faster steps on GPU)")
    threads: int = _option(
        0,
        "CPU threads for torch; 0 = the free cores, rechecked at each evaluation (a fixed "
        "number keeps CPU results bit-exact across resumes)",
    )

    def __post_init__(self) -> None:
        _check_types(self)
        positive = ("batch_size", "eval_every", "eval_batches", "keep_last")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        not_negative = ("seed", "tokens_per_step", "max_steps", "warmup_steps")
        not_negative += ("checkpoint_every", "threads")
        for name in not_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"min_lr must be between 0 and lr ({self.lr}), got {self.min_lr}")
        for name in ("epochs", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if value < 0 or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.max_steps == 0 and self.epochs == 0:
            raise ConfigError("set max_steps or epochs (or both: the run stops at the first)")
        for name, allowed in (("schedule", SCHEDULES), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ConfigError(
                f"unknown training option(s) {unknown}; options are {self.field_names()}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the TOML layout (a dict-valued entry becomes a table)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of ``to_dict``; unknown keys are an error, missing ones take the defaults."""
        return cls().replace(**data)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Self:
        """Read a run config from a TOML file (see ``configs/``)."""
        path = Path(path)
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"no config file at {path}") from None
        except IsADirectoryError:
            raise ConfigError(f"{path} is a folder; pass a TOML file (see configs/)") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
        try:
            return cls.from_dict(data)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None

    def to_toml(self) -> str:
        """The config as a TOML document that ``from_toml`` reads back to an equal config."""
        data = self.to_dict()
        tables = {key: value for key, value in data.items() if isinstance(value, dict)}
        scalars = {key: value for key, value in data.items() if key not in tables}
        lines = [f"{key} = {_toml_value(value)}" for key, value in scalars.items()]
        for table, values in tables.items():
            lines += ["", f"[{table}]"]
            lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class TrainConfig(RunOptions):
    """One pretraining run: the shared ``RunOptions`` plus its data and model.

    Model fields other than the preset go in ``model_overrides`` (the ``[model]`` table of the
    TOML file); the vocabulary size comes from the tokenizer. A ``[model]`` table lists every
    override (the default ``{"dropout": 0.2}`` applies only without one).

    The defaults are the README's run: ``cpu-small`` on python-docs with a 4,096-token BPE,
    250 steps of 4,096 tokens (~10 epochs), about 7 minutes on 2 CPU cores.

    >>> TrainConfig(lr=0.0).lr
    Traceback (most recent call last):
        ...
    scratchllm.errors.ConfigError: lr must be a positive number, got 0.0
    """

    # data: a corpus tokenized into the run folder, or a folder `scratchllm prepare` wrote
    corpus: str = _option(DEFAULT_CORPUS, "named corpus, text file, folder or glob of files")
    data: str = _option("", "prepared data folder (scratchllm prepare); replaces corpus/tokenizer")
    tokenizer: str = _option(
        f"bpe:{DEFAULT_BPE_VOCAB}", "tokenizer spec: gpt2, a saved folder, or bpe:N"
    )
    val_fraction: float = _option(0.1, "share of the corpus held out for validation")
    split: str = _option(
        "auto",
        "train/val cut: 'auto' (at a document boundary, else mid-token-stream) or "
        "'characters' (the walkthrough's cut of the text at (1 - val_fraction) of its characters)",
    )
    stride: int = _option(0, "tokens between window starts; 0 = the context length (no overlap)")
    # the model: a preset (config.PRESETS) plus field overrides
    model: str = _option(
        "cpu-small",
        "model preset (see `scratchllm model --help`); '' = none, the overrides give the shape "
        "(what an --init-from run records)",
    )
    # python-docs is ~100k tokens: the default run reads it ~10 times and overfits without
    # dropout (measured: val loss flat from epoch 7 while train keeps falling)
    model_overrides: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"dropout": 0.2},
        metadata={"help": "GPTConfig fields that replace the preset's"},
    )
    init_from: str = _option(
        "", "checkpoint whose weights and tokenizer start this new run (continued pretraining)"
    )
    # the sample printed at each evaluation
    sample_prompt: str = _option("The", "prompt of the greedy sample printed at each evaluation")
    sample_tokens: int = _option(40, "tokens in that sample; 0 = no sample")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("stride", "sample_tokens"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {self.split!r}")
        self.model_config(vocab_size=1)  # an unknown preset or a bad override fails here

    def model_config(self, *, vocab_size: int) -> GPTConfig:
        """The preset with the overrides, sized for a tokenizer of ``vocab_size`` ids.

        An explicit ``vocab_size`` override (e.g. padded to a multiple of 64) must hold them all.
        """
        overrides = dict(self.model_overrides)
        wanted = overrides.pop("vocab_size", vocab_size)
        if wanted < vocab_size:
            raise ConfigError(
                f"model vocab_size {wanted} is smaller than the tokenizer's {vocab_size} ids"
            )
        if not self.model:  # no preset: GPTConfig's defaults, every field overridable
            return GPTConfig(vocab_size=wanted).replace(**overrides)
        return GPTConfig.from_name(self.model, vocab_size=wanted, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the TOML layout: the model preset and overrides as a ``model`` table."""
        data = dataclasses.asdict(self)
        data["model"] = {"preset": data["model"], **data.pop("model_overrides")}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; ``model`` may also be just a preset name."""
        data = dict(data)
        model = data.pop("model", None)
        if isinstance(model, dict):
            model = dict(model)
            if "preset" in model:
                data["model"] = model.pop("preset")
            data["model_overrides"] = {**model, **data.get("model_overrides", {})}
        elif model is not None:
            data["model"] = model
        return cls().replace(**data)


# ---- finetuning -------------------------------------------------------------------------------

# "auto" (from each file's suffix) and labelled.LABELLED_FORMATS (a test keeps them in step)
DATA_FORMATS = ("auto", "csv", "tsv", "jsonl")


@dataclass(frozen=True)
class ClassificationDataOptions:
    """Where a classifier's labelled data comes from and how it is prepared; the defaults are
    the walkthrough's chapter 6. TOML has no null: "not set" is ``""`` or ``0``."""

    data: str = _option(
        "sms-spam",
        "labelled data: 'sms-spam' (downloaded once) or a CSV, TSV or JSONL file; with "
        "val_data, the training file",
    )
    val_data: str = _option("", "validation file; '' = split `data` into train/val/test")
    test_data: str = _option("", "test file (needs val_data); '' = no test split")
    data_format: str = _option(
        "auto",
        "format of the files: 'auto' (from the suffix), csv, tsv, jsonl",
        choices=DATA_FORMATS,
    )
    text_column: str = _option("text", "column (JSONL: key) holding the text")
    label_column: str = _option("label", "column (JSONL: key) holding the class name")
    balance: bool = _option(
        True,
        "undersample every class to the size of the smallest (with val_data: the training "
        "file only), as the walkthrough does",
    )
    data_seed: int = _option(123, "seeds balancing and the split (the walkthrough's 123)")
    train_fraction: float = _option(0.7, "share of the examples that train (when we split)")
    val_fraction: float = _option(0.1, "share that validates (when we split); the rest tests")
    max_length: int = _option(
        0,
        "pad and truncate texts to N tokens; 0 = the longest training text (at most the "
        "model's context length)",
    )

    def __post_init__(self) -> None:
        for name in ("data", "val_data", "test_data", "data_format", "text_column", "label_column"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        if not self.data:
            raise ConfigError("data must name a dataset ('sms-spam') or a file")
        if self.test_data and not self.val_data:
            raise ConfigError(
                "test_data needs val_data: give the validation file too, or leave both out "
                "and let `data` be split"
            )
        if self.data_format not in DATA_FORMATS:
            raise ConfigError(
                f"data_format must be one of {DATA_FORMATS}, got {self.data_format!r}"
            )
        if not self.text_column or not self.label_column or self.text_column == self.label_column:
            raise ConfigError(
                "text_column and label_column must be two different non-empty names, got "
                f"{self.text_column!r} and {self.label_column!r}"
            )
        if not isinstance(self.balance, bool):
            raise ConfigError(f"balance must be true or false, got {self.balance!r}")
        for name in ("data_seed", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if self.data_seed >= 2**32:  # numpy's RandomState takes 32-bit seeds
            raise ConfigError(f"data_seed must be below 2**32, got {self.data_seed}")
        train, val = self.train_fraction, self.val_fraction
        for name, value in (("train_fraction", train), ("val_fraction", val)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, got {value!r}")
        if not (0 < train < 1 and 0 < val < 1 and train + val <= 1):
            raise ConfigError(
                "train_fraction and val_fraction must be in (0, 1) with a sum of at most 1 "
                f"(the rest tests), got {train} and {val}"
            )

    @property
    def format(self) -> Literal["csv", "tsv", "jsonl"] | None:
        """The files' format, or None to take it from each file's suffix."""
        return None if self.data_format == "auto" else self.data_format  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for TOML and JSON; ``ClassificationDataOptions(**data)`` reads it back."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def _default(name: str, default: Any, source: type = RunOptions) -> Any:
    """A field of ``source`` (``RunOptions``, or another options class) redeclared with another
    default, keeping its help."""
    return dataclasses.field(default=default, metadata=source.__dataclass_fields__[name].metadata)


@dataclass(frozen=True)
class FinetuneRunOptions(RunOptions):
    """The run options finetuning shares, as the walkthrough's chapters 6 and 7 set them:
    seed 123, batches of 8 examples, AdamW with beta2 0.999 at a constant rate, no warmup or
    clipping, an evaluation over 5 batches; how long and how fast are each task's own."""

    seed: int = _default("seed", 123)
    batch_size: int = _default("batch_size", 8)
    max_steps: int = _default("max_steps", 0)
    warmup_steps: int = _default("warmup_steps", 0)
    schedule: str = _default("schedule", "constant")
    beta2: float = _default("beta2", 0.999)
    grad_clip: float = _default("grad_clip", 0.0)
    eval_batches: int = _default("eval_batches", 5)


TRAINABLE_CHOICES = ("last-block", "last:N", "all", "head", "lora")


@dataclass(frozen=True)
class ClassifyConfig(FinetuneRunOptions, ClassificationDataOptions):
    """One classification finetuning run: a pretrained GPT, labelled data (the
    ``ClassificationDataOptions`` fields), a new head, and the shared ``RunOptions``.

    The defaults are the walkthrough's chapter-6 spam classifier: AdamW at lr 5e-5 with weight
    decay 0.1, batch 8, 5 epochs, an evaluation every 50 steps over 5 batches, no warmup,
    decay or clipping, seed 123; the last transformer block, the final LayerNorm and the new
    head train.

    >>> ClassifyConfig(trainable="last:2").trainable_blocks
    2
    >>> ClassifyConfig(trainable="middle")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    scratchllm.errors.ConfigError: trainable must be one of (...), got 'middle'
    """

    epochs: float = _default("epochs", 5.0)
    lr: float = _default("lr", 5e-5)
    min_lr: float = _default("min_lr", 5e-5)
    eval_every: int = _default("eval_every", 50)
    # the model to start from
    init_from: str = _option(
        "gpt2", "pretrained checkpoint: gpt2 (downloaded), a checkpoint folder or a run folder"
    )
    dropout: float = _option(0.0, "dropout while finetuning (the walkthrough's 0.0)")
    # the head, and what trains
    position: str = _option(
        "last-token",
        "the hidden state the head reads: 'last-token' (each text's last real token) or "
        "'last' (the last position of the padded sequence, as the walkthrough reads it)",
    )
    trainable: str = _option(
        "last-block",
        "what trains: 'last-block' (the last block, the final LayerNorm and the head: the "
        "walkthrough's), 'last:N' (the last N blocks), 'all', 'head', or 'lora' (adapters only)",
    )
    lora_rank: int = _option(16, "LoRA rank, with trainable = lora (appendix E's 16)")
    lora_alpha: float = _option(
        16.0, "LoRA alpha; the update is scaled by alpha / rank (appendix E's code: by alpha)"
    )
    lora_split_qkv: bool = _option(
        True, "one adapter each for query, key and value (false: one over the fused c_attn)"
    )
    lora_head: bool = _option(True, "give the new head an adapter too (appendix E does)")

    def __post_init__(self) -> None:
        RunOptions.__post_init__(self)
        ClassificationDataOptions.__post_init__(self)
        if not self.init_from:
            raise ConfigError("init_from must name a pretrained checkpoint (e.g. gpt2)")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.position not in HEAD_POSITIONS:
            raise ConfigError(f"position must be one of {HEAD_POSITIONS}, got {self.position!r}")
        self.trainable_blocks  # noqa: B018 - validates `trainable`
        if self.trainable == "lora":
            self.lora_config()

    @property
    def trainable_blocks(self) -> int | None:
        """How many of the last blocks train (``last-block``: 1, ``last:N``: N), else None."""
        if self.trainable == "last-block":
            return 1
        kind, _, count = self.trainable.partition(":")
        if kind == "last" and count.isdigit() and int(count) > 0:
            return int(count)
        if self.trainable in ("all", "head", "lora"):
            return None
        raise ConfigError(
            f"trainable must be one of {TRAINABLE_CHOICES} (N a number of blocks), "
            f"got {self.trainable!r}"
        )

    def lora_config(self) -> LoRAConfig:
        """The adapters of a ``trainable = "lora"`` run: every linear layer of the blocks, and
        the head unless ``lora_head`` is false (appendix E wraps every ``nn.Linear``)."""
        targets = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        return LoRAConfig(
            rank=self.lora_rank,
            alpha=self.lora_alpha,
            targets=targets + (("head",) if self.lora_head else ()),
            split_qkv=self.lora_split_qkv,
        )


BATCHINGS = ("pad", "group", "pack")
LOGPROB_REDUCTIONS = ("mean", "sum")


@dataclass(frozen=True)
class InstructionOptions:
    """What instruction tuning and preference tuning share: the starting model, the data, the
    prompt format, how examples become batches, and what trains. TOML has no null: "not set"
    is ``""`` or ``0``."""

    init_from: str = _option(
        "gpt2-medium",
        "pretrained checkpoint: gpt2, gpt2-medium, ... (downloaded), a checkpoint folder or a "
        "run folder",
    )
    data: str = _option(
        "instruction-data",
        "instruction data: 'instruction-data' (the walkthrough's 1,100 examples, downloaded "
        "once) or a JSON / JSONL file of {instruction, input, output}; split 85/10/5 into "
        "train/test/val as the walkthrough does",
    )
    prompt_format: str = _option(
        "",
        "how an instruction becomes model text: alpaca, phi3; '' = the starting checkpoint's, "
        "else alpaca",
    )
    max_length: int = _option(
        0, "truncate each example to N tokens; 0 = the model's context length (GPT-2's 1,024: "
        "the walkthrough's allowed_max_length)",
    )  # fmt: skip
    batching: str = _option(
        "group",
        "how examples become batches: 'pad' (shuffled, padded to the batch's longest: the "
        "walkthrough's), 'group' (batches of similar lengths: less padding), 'pack' (also "
        "packs each batch's examples into as few rows as fit max_length, attention kept "
        "inside each example); the loss of a batch is the same in all three",
        choices=BATCHINGS,
    )
    dropout: float = _option(0.0, "dropout while finetuning (the walkthrough's 0.0)")
    lora_rank: int = _option(
        0, "train LoRA adapters of this rank on every linear layer instead of all weights; 0 = off"
    )
    lora_alpha: float = _option(16.0, "LoRA alpha; the update is scaled by alpha / rank")
    sample_tokens: int = _option(
        50, "tokens of the greedy response to the first validation instruction printed at "
        "each evaluation; 0 = none",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("data must name a dataset or a JSON / JSONL file")
        if self.batching not in BATCHINGS:
            raise ConfigError(f"batching must be one of {BATCHINGS}, got {self.batching!r}")
        for name in ("max_length", "lora_rank", "sample_tokens"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.prompt_format:
            from scratchllm.finetune.prompts import get_prompt_format

            get_prompt_format(self.prompt_format)
        self.lora_config()

    def lora_config(self) -> LoRAConfig | None:
        """Adapters on every linear layer of the blocks (and none on the tied output head),
        or None when ``lora_rank`` is 0: every weight trains."""
        if self.lora_rank == 0:
            return None
        targets = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        return LoRAConfig(rank=self.lora_rank, alpha=self.lora_alpha, targets=targets)


@dataclass(frozen=True)
class InstructConfig(FinetuneRunOptions, InstructionOptions):
    """One instruction-finetuning run (supervised finetuning): a pretrained GPT trained to
    produce each example's output after its prompt, with the shared ``RunOptions``.

    The defaults are the walkthrough's chapter 7: GPT-2 medium, AdamW at lr 5e-5 with weight
    decay 0.1, batch 8, 2 epochs, no warmup, decay or clipping, seed 123, examples cut to the
    context length (1,024). It evaluates every 5 steps; we evaluate every 25 (an evaluation
    also saves a checkpoint: 4 GB at gpt2-medium with the optimizer's state).

    >>> InstructConfig(batching="sorted")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    scratchllm.errors.ConfigError: batching must be one of (...), got 'sorted'
    """

    epochs: float = _default("epochs", 2.0)
    lr: float = _default("lr", 5e-5)
    min_lr: float = _default("min_lr", 5e-5)
    eval_every: int = _default("eval_every", 25)
    mask_prompt: bool = _option(
        False,
        "leave the prompt's tokens (instruction and input) out of the loss: only the response "
        "is learned (the walkthrough's exercise 7.2)",
    )

    def __post_init__(self) -> None:
        RunOptions.__post_init__(self)
        InstructionOptions.__post_init__(self)
        if not self.init_from:
            raise ConfigError("init_from must name a pretrained checkpoint (e.g. gpt2-medium)")


@dataclass(frozen=True)
class DPOConfig(FinetuneRunOptions, InstructionOptions):
    """One preference-tuning run (DPO): an instruction-tuned GPT (the policy) learns to prefer
    each example's ``chosen`` response over its ``rejected`` one, relative to a frozen copy of
    where it started (the reference).

    The defaults are the walkthrough's DPO notebook: AdamW at lr 5e-6 with weight decay 0.01,
    batch 8, 1 epoch, beta 0.1, each response's log-probability the mean over its tokens, the
    prompt's tokens masked, seed 123. There is no default ``init_from``: it is your
    instruction-tuned checkpoint (``require_init_from`` says so before a run starts).
    """

    epochs: float = _default("epochs", 1.0)
    lr: float = _default("lr", 5e-6)
    min_lr: float = _default("min_lr", 5e-6)
    weight_decay: float = _default("weight_decay", 0.01)
    eval_every: int = _default("eval_every", 25)
    init_from: str = _option(
        "", "the instruction-tuned checkpoint to start from (a run or checkpoint folder); required"
    )
    data: str = _option(
        "instruction-preference",
        "preference data: 'instruction-preference' (the walkthrough's 1,100 examples with "
        "chosen and rejected responses, downloaded once) or a JSON / JSONL file of "
        "{instruction, input, output, chosen, rejected}; split 85/10/5 as the walkthrough does",
    )
    beta: float = _option(
        0.1, "how far the policy may move from the reference (DPO's beta; the walkthrough's 0.1)"
    )
    logprob: str = _option(
        "mean",
        "a response's log-probability: 'mean' over its tokens (the walkthrough's) or 'sum' "
        "(the DPO paper's)",
        choices=LOGPROB_REDUCTIONS,
    )

    def __post_init__(self) -> None:
        RunOptions.__post_init__(self)
        InstructionOptions.__post_init__(self)
        if not self.beta > 0 or not math.isfinite(self.beta):
            raise ConfigError(f"beta must be a positive number, got {self.beta}")
        if self.logprob not in LOGPROB_REDUCTIONS:
            raise ConfigError(f"logprob must be one of {LOGPROB_REDUCTIONS}, got {self.logprob!r}")

    def require_init_from(self) -> None:
        """A clear error when no starting checkpoint is given."""
        if not self.init_from:
            raise ConfigError(
                "init_from must name the instruction-tuned checkpoint to start from "
                "(e.g. --init-from out/runs/NAME of a `scratchllm finetune instruct` run)"
            )


def train_field_names() -> list[str]:
    return TrainConfig.field_names()


def _check_types(config: RunOptions) -> None:
    """Each field must have its default's type (an int is accepted for a float)."""
    for name, field in type(config).__dataclass_fields__.items():
        value = getattr(config, name)
        if field.default is dataclasses.MISSING:  # a table (default_factory)
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a table of fields, got {value!r}")
            continue
        expected = type(field.default)
        if expected is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if ok:
                object.__setattr__(config, name, float(value))  # 1 in TOML means 1.0
        elif expected is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise ConfigError(f"{name} must be a {expected.__name__}, got {value!r}")


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _toml_value(value: Any) -> str:
    """One TOML value: a basic string with TOML's escapes, a boolean, or a number's repr.

    >>> print(_toml_value('say "hi"\\n'), _toml_value(True), _toml_value(4e-4))
    "say \\"hi\\"\\n" true 0.0004
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # TOML forbids raw control characters (but tab) and DEL in a basic string
        escaped = (
            _TOML_ESCAPES.get(char)
            or (f"\\u{ord(char):04X}" if ord(char) < 0x20 or ord(char) == 0x7F else char)
            for char in value
        )
        return '"' + "".join(escaped) + '"'
    if isinstance(value, int | float):
        return repr(value)
    raise ConfigError(f"cannot write {value!r} to TOML")


# ---- generation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick tokens and when to stop; validated on creation (``generate/sampling.py``).

    Temperature 0 (the default) is greedy, always the most likely token: deterministic, and the
    walkthrough's default. Around 0.7-1.0 with ``top_k`` or ``top_p`` gives varied but coherent
    text.

    >>> SamplingConfig(top_p=1.5)
    Traceback (most recent call last):
        ...
    scratchllm.errors.ConfigError: top_p must be in (0, 1] (or None to keep all), got 1.5
    """

    temperature: float = _option(
        0.0, "divides the logits: 0 = greedy (the most likely token, deterministic)"
    )
    top_k: int | None = _option(
        None, "sample among the k most likely tokens only (default: all)", metavar="K"
    )
    top_p: float | None = _option(
        None,
        "sample among the most likely tokens whose probabilities sum to p (nucleus; default: all)",
        metavar="P",
    )
    max_new_tokens: int = _option(
        50, "generate at most this many tokens (an end-of-text token or a stop string ends earlier)"
    )
    seed: int | None = _option(
        None,
        "seed of the sampler's random generator, for reproducible samples (default: torch's "
        "global random state)",
    )
    stop_strings: tuple[str, ...] = _option(
        (), "stop before this text, which is not shown (repeatable)", metavar="TEXT", flag="stop"
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ConfigError(
                f"temperature must be a finite number >= 0 (0 means greedy), got {self.temperature}"
            )
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top_k must be at least 1 (or None to keep all), got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1] (or None to keep all), got {self.top_p}")
        if self.max_new_tokens < 0:
            raise ConfigError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise ConfigError(f"seed must be in 0 .. 2**64 - 1, got {self.seed}")
        # accept any sequence (a list from JSON or argparse) but store a hashable tuple
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings))
        if any(not isinstance(stop, str) or not stop for stop in self.stop_strings):
            raise ConfigError(f"stop strings must be non-empty strings, got {self.stop_strings}")

    def make_generator(self, device: torch.device | str = "cpu") -> torch.Generator | None:
        """A ``torch.Generator`` on ``device`` seeded with ``seed``, or None if there is no seed."""
        if self.seed is None:
            return None
        import torch  # here, not at the top: the config (and the CLI's --help) stays torch-free

        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed)
        return generator


# ---- word embeddings -------------------------------------------------------------------------

WORD2VEC_ARCHITECTURES = ("skipgram", "cbow")
# the label rows of word2vec/model.py are made once, for up to this many noise words
MAX_NEGATIVE = 1000


@dataclass(frozen=True)
class Word2VecConfig:
    """Word2Vec's settings (``word2vec/``); the defaults are word2vec's and gensim's, so results
    compare.

    >>> Word2VecConfig(window=0)
    Traceback (most recent call last):
        ...
    scratchllm.errors.ConfigError: window must be a positive integer, got 0
    """

    dim: int = _option(100, "vector size")
    window: int = _option(5, "largest distance to a context word; each center word draws 1..window")
    negative: int = _option(
        5, "noise words drawn per center word (from the unigram distribution ^ 3/4)"
    )
    min_count: int = _option(5, "leave out words seen fewer times")
    sample: float = _option(
        1e-3, "subsampling threshold for frequent words; 0 keeps every occurrence"
    )
    epochs: int = _option(5, "passes over the corpus")
    # word2vec's skip-gram default
    alpha: float = _option(0.025, "starting learning rate, decayed linearly to min_alpha")
    min_alpha: float = _option(0.0001, "learning rate at the end of the linear decay")
    architecture: Literal["skipgram", "cbow"] = _option(
        "skipgram",
        "'skipgram' predicts the context from each word; 'cbow' (continuous bag of words) "
        "predicts each word from the mean of its context",
    )
    # see the module docstring of word2vec/model.py for why batches are small
    batch_size: int = _option(128, "consecutive center words per update")
    lowercase: bool = _option(True, "fold case when splitting text into words")
    seed: int = _option(
        1,
        "seeds the initialisation, subsampling, windows and negatives (runs with one thread "
        "are reproducible)",
    )

    def __post_init__(self) -> None:
        for name in ("dim", "window", "negative", "min_count", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.negative > MAX_NEGATIVE:
            raise ConfigError(f"negative must be at most {MAX_NEGATIVE}, got {self.negative}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.lowercase, bool):
            raise ConfigError(f"lowercase must be true or false, got {self.lowercase!r}")
        for name in ("sample", "alpha", "min_alpha"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be positive, got {self.alpha!r}")
        if self.min_alpha > self.alpha:
            raise ConfigError(
                f"min_alpha {self.min_alpha} must not exceed alpha {self.alpha}: the learning "
                "rate decays from alpha to min_alpha"
            )
        if self.architecture not in WORD2VEC_ARCHITECTURES:
            raise ConfigError(
                f"architecture must be one of {', '.join(WORD2VEC_ARCHITECTURES)}, "
                f"got {self.architecture!r}"
            )

    def replace(self, **changes: Any) -> Word2VecConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# embed-plot: enough points to show structure, few enough to read every label
MAP_POINTS = 60
PROJECTION_METHODS = ("pca", "tsne")  # word2vec/projection.py


# ---- what a checkpoint carries besides the GPT (weights/checkpoint.py) -----------------------

HEAD_KINDS = ("classification",)
# which hidden state a classification head reads: the walkthrough's "last" position of the
# (padded) sequence, or the "last-token" of each text, wherever its padding starts
HEAD_POSITIONS = ("last", "last-token")
# the linear layers an adapter can target: the four of each block, the output head, and a task
# head beside the GPT ("head", a classifier's)
LORA_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj", "lm_head", "head")


@dataclass(frozen=True)
class HeadConfig:
    """A task head on the GPT's final hidden states: ``Linear(n_embd, num_classes)`` reading
    one position. A checkpoint declares it in ``config.json`` with its label names.

    >>> HeadConfig(num_classes=2, labels=("ham", "spam")).label_names
    ('ham', 'spam')
    >>> HeadConfig(num_classes=3, labels=("a", "b"))
    Traceback (most recent call last):
        ...
    scratchllm.errors.ConfigError: head: 2 labels for 3 classes; give one name per class
    """

    kind: str = "classification"
    num_classes: int = 2
    labels: tuple[str, ...] = ()  # one name per class, in class order; () = "0", "1", ...
    position: str = "last"  # one of HEAD_POSITIONS
    bias: bool = True

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ConfigError(f"head: kind must be one of {HEAD_KINDS}, got {self.kind!r}")
        count = self.num_classes
        if isinstance(count, bool) or not isinstance(count, int) or count < 2:
            raise ConfigError(f"head: num_classes must be an integer >= 2, got {count!r}")
        labels = self.labels
        if not isinstance(labels, tuple | list) or not all(isinstance(x, str) for x in labels):
            raise ConfigError(f"head: labels must be a list of strings, got {labels!r}")
        object.__setattr__(self, "labels", tuple(labels))
        if labels and len(labels) != count:
            raise ConfigError(
                f"head: {len(labels)} labels for {count} classes; give one name per class"
            )
        if any(not label for label in labels) or len(set(labels)) != len(labels):
            raise ConfigError(f"head: label names must be distinct and non-empty: {labels!r}")
        if self.position not in HEAD_POSITIONS:
            raise ConfigError(
                f"head: position must be one of {HEAD_POSITIONS}, got {self.position!r}"
            )
        if not isinstance(self.bias, bool):
            raise ConfigError(f"head: bias must be true or false, got {self.bias!r}")

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.labels or tuple(str(index) for index in range(self.num_classes))

    def parameter_shapes(self, n_embd: int) -> dict[str, tuple[int, ...]]:
        """The head's weights, as ``head.safetensors`` must hold them."""
        shapes: dict[str, tuple[int, ...]] = {"weight": (self.num_classes, n_embd)}
        if self.bias:
            shapes["bias"] = (self.num_classes,)
        return shapes

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> HeadConfig:
        return _strict_from_dict(cls, data, what="head")


@dataclass(frozen=True)
class LoRAConfig:
    """Low-rank adapters (Hu et al. 2021): each targeted ``nn.Linear`` ``W`` computes
    ``x W^T + (alpha / rank) * x A^T B^T`` with trainable ``A`` (rank, in) and ``B`` (out, rank),
    ``B`` starting at zero. ``targets`` name layers by their GPT-2 suffix (``LORA_TARGETS``).

    >>> LoRAConfig(rank=8, alpha=16).scale
    2.0
    """

    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    dropout: float = 0.0  # on the adapter's input only
    # one adapter each for the query, key and value thirds of the fused c_attn, as the
    # walkthrough's separate W_query / W_key / W_value get; False: one over the whole matrix
    split_qkv: bool = True

    def __post_init__(self) -> None:
        rank = self.rank
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ConfigError(f"adapters: rank must be a positive integer, got {rank!r}")
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
            raise ConfigError(f"adapters: alpha must be a positive number, got {alpha!r}")
        object.__setattr__(self, "alpha", float(alpha))
        targets = self.targets
        if not isinstance(targets, tuple | list) or not targets:
            raise ConfigError(f"adapters: targets must be a non-empty list, got {targets!r}")
        object.__setattr__(self, "targets", tuple(targets))
        unknown = sorted(set(self.targets) - set(LORA_TARGETS))
        if unknown or len(set(self.targets)) != len(self.targets):
            raise ConfigError(
                f"adapters: targets must be distinct names from {LORA_TARGETS}, got "
                f"{list(self.targets)}"
            )
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ConfigError(f"adapters: dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.split_qkv, bool):
            raise ConfigError(f"adapters: split_qkv must be true or false, got {self.split_qkv!r}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["targets"] = list(self.targets)
        return {"kind": "lora", **data}

    @classmethod
    def from_dict(cls, data: Any) -> LoRAConfig:
        if isinstance(data, dict) and data.get("kind", "lora") != "lora":
            raise ConfigError(f"adapters: kind must be 'lora', got {data.get('kind')!r}")
        data = {k: v for k, v in data.items() if k != "kind"} if isinstance(data, dict) else data
        return _strict_from_dict(cls, data, what="adapters")


def _strict_from_dict(cls: Any, data: Any, *, what: str) -> Any:
    """``cls(**data)``, refusing anything but a table of its own fields."""
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a table of fields, got {data!r}")
    names = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{what}: unknown field(s) {unknown}; fields are {names}")
    return cls(**data)
