"""The options several commands share, each defined once, and the helpers behind them.

``--corpus`` (with ``--replace-invalid-utf8``), ``--tokenizer``, ``--checkpoint``,
``-o/--output``, ``--device`` and ``--seed`` mean the same thing in every command that takes
them; a command only says what its default is. Nothing here imports torch: building the parser
(and so every ``--help``) stays fast, and the heavy modules load when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from scratchllm.config import DEFAULT_CORPUS, TrainConfig
from scratchllm.errors import ScratchLLMError

C = TypeVar("C")  # a RunOptions subclass

DEFAULT_RUNS = Path(TrainConfig.__dataclass_fields__["out_dir"].default)  # where runs go
# the names weights/hub.py resolves (kept here too: the parser must not import huggingface_hub;
# tests/cli/test_weights.py checks the two agree)
PRETRAINED_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
DEFAULT_OUT = DEFAULT_RUNS.parent  # and beside them, prepared data

# viz.IMAGE_FORMATS, which imports matplotlib and torch: a test checks the two agree
IMAGE_OUTPUT_HELP = "image to write: .png, .jpg, .svg or .pdf"
TOKENIZER_SPEC_HELP = (
    "'gpt2' (GPT-2's BPE via tiktoken), 'gpt2:PATH' (GPT-2's vocabulary from a .tiktoken file "
    "or a folder with encoder.json + vocab.bpe), the folder of a saved tokenizer"
)
TRAINED_TOKENIZER_SPEC_HELP = (
    "'bpe:N' (train our byte-level BPE with vocabulary N on the corpus) or "
    "'simple' (train the word-level tokenizer on the corpus)"
)


def warn(message: str) -> None:
    """One ``warning:`` line on stderr: something was given that does nothing, or was cut."""
    print(f"warning: {message}", file=sys.stderr)


def flags(names: list[str]) -> str:
    """Field names as the flags a user typed.

    >>> flags(["top_k", "seed"])
    '--top-k, --seed'
    """
    return ", ".join("--" + name.replace("_", "-") for name in names)


# ---- the shared options ----------------------------------------------------------------------


def add_corpus_options(parser: argparse.ArgumentParser, *, without: str | None = None) -> None:
    """``--corpus`` and ``--replace-invalid-utf8``. The default is the named default corpus,
    unless ``without`` says what the command does without a corpus (``args.corpus`` is then
    None)."""
    parser.add_argument(
        "--corpus",
        default=DEFAULT_CORPUS if without is None else None,
        help="a named corpus (see `scratchllm corpora`), a text file, a folder or a glob of "
        ".txt/.md files "
        + (f"(default {DEFAULT_CORPUS})" if without is None else f"(default: {without})"),
    )
    parser.add_argument(
        "--replace-invalid-utf8",
        action="store_true",
        help="replace undecodable bytes instead of stopping with an error",
    )


def add_tokenizer_option(
    parser: argparse.ArgumentParser, *, default: str, trains: bool = False, purpose: str = ""
) -> None:
    """``--tokenizer SPEC``; ``trains``: the command has a corpus to train ``bpe:N`` on."""
    kinds = TOKENIZER_SPEC_HELP + (f", {TRAINED_TOKENIZER_SPEC_HELP}" if trains else "")
    parser.add_argument(
        "--tokenizer",
        default=default,
        metavar="SPEC",
        help=f"{purpose}{kinds} (default {default})",
    )


def add_checkpoint_option(
    parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup,
    *,
    without: str | None = None,
) -> None:
    """``--checkpoint DIR``; ``without`` says what the command uses when it is not given
    (default: the latest checkpoint of the latest run; "" for a required choice)."""
    if without is None:
        without = f"the latest checkpoint of the latest run under {DEFAULT_RUNS}"
    parser.add_argument(
        "--checkpoint",
        metavar="DIR|NAME",
        help="a checkpoint folder, a run folder for its latest checkpoint, or a pretrained "
        f"name ({', '.join(PRETRAINED_NAMES)}: the copy `scratchllm download` made)"
        + (f" (default: {without})" if without else ""),
    )


def add_output_option(
    parser: argparse.ArgumentParser,
    *,
    what: str,
    default: Path | None = None,
    default_text: str | None = None,
) -> None:
    """``-o/--output``; ``what`` says what is written there. Required unless there is a
    ``default``, or a ``default_text`` saying how the command chooses one (the value is then
    None)."""
    if default is None and default_text is None:
        parser.add_argument("-o", "--output", type=Path, required=True, metavar="PATH", help=what)
        return
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=default,
        metavar="PATH",
        help=f"{what} (default {default_text or default})",
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``, with the help of ``TrainConfig.device``: one meaning everywhere."""
    field = TrainConfig.__dataclass_fields__["device"]
    help_text = field.metadata["help"]
    parser.add_argument(
        "--device", default=field.default, help=f"{help_text} (default {field.default})"
    )


def add_seed_option(parser: argparse.ArgumentParser, *, default: int, seeds: str) -> None:
    """``--seed N``; ``seeds`` says what the seed decides."""
    parser.add_argument(
        "--seed", type=int, default=default, metavar="N", help=f"seeds {seeds} (default {default})"
    )


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (a count of windows, tokens, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


# ---- what the options resolve to ----------------------------------------------------------------


def load_corpus(args: argparse.Namespace):
    """The corpus of ``--corpus``, decoded as ``--replace-invalid-utf8`` says."""
    from scratchllm.corpora import load_corpus as load

    return load(args.corpus, errors="replace" if args.replace_invalid_utf8 else "strict")


def resolve_tokenizer(spec: str, *, corpus):
    """Turn a --tokenizer spec into a tokenizer, training one on ``corpus`` if asked."""
    from scratchllm.train.data import resolve_tokenizer as resolve

    return resolve(spec, corpus=corpus, log=print)


def checkpoint_path(given: str | None) -> Path:
    """The checkpoint a command uses: the one given (a folder, a run's latest, or a pretrained
    name's downloaded copy), else the latest run's."""
    from scratchllm.train.run_dir import find_latest_run, latest_checkpoint, resolve_checkpoint

    if given is not None:
        return resolve_checkpoint(given)
    run = find_latest_run(DEFAULT_RUNS)
    if run is None:
        raise ScratchLLMError(
            f"no --checkpoint given and no trained run under {DEFAULT_RUNS}; train one with "
            "`scratchllm train` or pass --checkpoint"
        )
    checkpoint = latest_checkpoint(run)
    print(f"using {checkpoint}", file=sys.stderr)
    return checkpoint


def read_text(path: Path) -> str:
    """A UTF-8 text file, with a one-line error if it is missing, unreadable or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScratchLLMError(f"no such file: {path}") from None
    except OSError as error:  # a folder, no permission, ...
        raise ScratchLLMError(f"cannot read {path}: {describe_os_error(error)}") from None
    except UnicodeDecodeError as error:
        raise ScratchLLMError(f"{path} is not UTF-8 (byte offset {error.start})") from None


# ---- outputs: checked before the work, removed again if writing fails ------------------------


def check_output_folder(path: Path, *, marker: str, kind: str) -> None:
    """Refuse, before any work is done, a folder output that cannot be written.

    ``path`` may be new, an empty folder, or a folder already holding a ``kind`` (recognised by
    its ``marker`` file), which is replaced; a file, or a folder of other files, is refused
    rather than mixed into.
    """
    if path.exists() and not path.is_dir():
        raise ScratchLLMError(
            f"{path} is a file; give a new or empty folder to save the {kind} into"
        )
    if path.is_dir() and not (path / marker).exists() and any(path.iterdir()):
        raise ScratchLLMError(
            f"{path} is a folder of other files, not a {kind} (no {marker}); give a new or "
            f"empty folder, or a {kind} to replace"
        )
    _check_can_write_in(path if path.is_dir() else path.parent, path)


def check_output_file(path: Path, *, example: str) -> None:
    """Refuse, before any work is done, a file output that cannot be written: a folder, or a
    path whose folder cannot be created or written. ``example`` is a file name to suggest."""
    if path.is_dir():
        raise ScratchLLMError(f"{path} is a folder; give a file name such as {path / example}")
    _check_can_write_in(path.parent, path)


def _check_can_write_in(folder: Path, path: Path) -> None:
    """``folder``, or the nearest folder above it that exists, must be a writable folder."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ScratchLLMError(f"cannot create {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ScratchLLMError(f"cannot write {path}: {existing} is not writable")


@contextlib.contextmanager
def writing_output(path: Path) -> Iterator[None]:
    """Write ``path`` (a file or folder) in the block; if the block fails, remove what it
    created, so that a failed command leaves nothing half-written, and turn an OS error (a
    full disk, a lost mount) into one line that names ``path``.

    A folder that already held files (one being replaced) keeps them: each file is written
    atomically, so it holds the old version or the new one.
    """
    was_empty_folder = path.is_dir() and not any(path.iterdir())
    created: Path | None = None
    if not path.exists():
        created = path
        while not created.parent.exists():
            created = created.parent  # the first folder the writing will create
    try:
        yield
    except BaseException as error:
        if created is not None and created.is_dir():
            shutil.rmtree(created, ignore_errors=True)
        elif created is not None:
            created.unlink(missing_ok=True)
        elif was_empty_folder:
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise ScratchLLMError(f"could not write {path}: {describe_os_error(error)}") from None
        raise


def describe_os_error(error: OSError) -> str:
    """An OS error in one line: the path(s) it names, then its reason.

    >>> describe_os_error(IsADirectoryError(21, "Is a directory", "runs/"))
    'runs/: Is a directory'
    """
    reason = error.strerror or str(error)
    if error.filename is None:
        return reason
    where = os.fsdecode(error.filename)
    if error.filename2 is not None:
        where += f" -> {os.fsdecode(error.filename2)}"
    return f"{where}: {reason}"


def slug(name: str) -> str:
    """A folder name for a corpus name or path."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name) or "corpus"


# ---- training runs ------------------------------------------------------------------------------


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--resume`` and ``--no-progress``: what every training command takes."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="a TOML run config (see configs/)"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last checkpoint: same data, model, "
        "optimizer state, data order and random state, so the losses are those of an "
        "uninterrupted run. Flags may only change how long it runs and how it reports. "
        "(To start a NEW run from a model's weights, use --init-from.)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (evaluations still print)"
    )


def base_run_config(args: argparse.Namespace, config_class: type[C]) -> C:
    """The config the flags then change: the resumed run's own ``train.toml``, else
    ``--config FILE``, else the defaults."""
    from scratchllm.train.run_dir import read_run_config

    if args.resume is not None:
        if args.config is not None:
            raise ScratchLLMError("--resume reads the run's own train.toml; drop --config")
        return read_run_config(args.resume, config_class)
    if args.config is not None:
        return config_class.from_toml(args.config)
    return config_class()
