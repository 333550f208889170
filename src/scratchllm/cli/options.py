"""The options several commands share, each defined once, and the helpers behind them.

``--corpus`` (with ``--replace-invalid-utf8``), ``--tokenizer``, ``--checkpoint``,
``-o/--output``, ``--device`` and ``--seed`` mean the same thing in every command that takes
them; a command only says what its default is. Nothing here imports torch: building the parser
(and so every ``--help``) stays fast, and the heavy modules load when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scratchllm.errors import ScratchLLMError

DEFAULT_OUT = Path("out")
DEFAULT_RUNS = DEFAULT_OUT / "runs"  # TrainConfig.out_dir's default

TOKENIZER_SPEC_HELP = (
    "'gpt2' (GPT-2's BPE via tiktoken), 'gpt2:PATH' (GPT-2's vocabulary from a .tiktoken file "
    "or a folder with encoder.json + vocab.bpe), the folder of a saved tokenizer"
)
TRAINED_TOKENIZER_SPEC_HELP = (
    "'bpe:N' (train our byte-level BPE with vocabulary N on the corpus) or "
    "'simple' (train the word-level tokenizer on the corpus)"
)


# ---- the shared options ----------------------------------------------------------------------


def add_corpus_options(parser: argparse.ArgumentParser, *, without: str | None = None) -> None:
    """``--corpus`` and ``--replace-invalid-utf8``. The default is the named default corpus,
    unless ``without`` says what the command does without a corpus (``args.corpus`` is then
    None)."""
    from scratchllm.corpora import DEFAULT_CORPUS

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
        "--tokenizer", default=default, help=f"{purpose}{kinds} (default {default})"
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
        type=Path,
        metavar="DIR",
        help="a checkpoint folder, or a run folder for its latest checkpoint"
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
        parser.add_argument("-o", "--output", type=Path, required=True, help=what)
        return
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=default,
        help=f"{what} (default {default_text or default})",
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``, with the help of ``TrainConfig.device``: one meaning everywhere."""
    from scratchllm.config import TrainConfig

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


# ---- what the options resolve to ----------------------------------------------------------------


def load_corpus(args: argparse.Namespace):
    """The corpus of ``--corpus``, decoded as ``--replace-invalid-utf8`` says."""
    from scratchllm.corpora import load_corpus as load

    return load(args.corpus, errors="replace" if args.replace_invalid_utf8 else "strict")


def resolve_tokenizer(spec: str, *, corpus):
    """Turn a --tokenizer spec into a tokenizer, training one on ``corpus`` if asked."""
    from scratchllm.train.data import resolve_tokenizer as resolve

    return resolve(spec, corpus=corpus, log=print)


def checkpoint_path(given: Path | None) -> Path:
    """The checkpoint a command uses: the one given (or a run's latest), else the latest run's."""
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
    """A UTF-8 text file, with a one-line error if it is missing or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScratchLLMError(f"no such file: {path}") from None
    except UnicodeDecodeError as error:
        raise ScratchLLMError(f"{path} is not UTF-8 (byte offset {error.start})") from None


def slug(name: str) -> str:
    """A folder name for a corpus name or path."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name) or "corpus"
