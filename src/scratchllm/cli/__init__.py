"""The ``scratchllm`` command line: each subcommand is a thin wrapper over a library function.

Run ``scratchllm --help`` for the list and ``scratchllm COMMAND --help`` for each one. User
mistakes (a wrong path, a corrupt file, an unknown word) and OS errors (a folder where a file
belongs, no permission, a full disk) print one ``error:`` line and exit with status 2; they
never show a traceback. Outputs are checked before the work starts. Warnings (a flag that does
nothing, a prompt cut to the model's window) are one ``warning:`` line on stderr.

Each stage of the pipeline has a module here with an ``add_commands(commands)`` function that
adds its subcommands; ``STAGES`` lists them, so a new stage is one more name there. The shared
options (``--corpus``, ``--tokenizer``, ``--checkpoint``, ``-o``, ``--device``, ``--seed``) are
defined once, in ``options.py``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from scratchllm.cli.options import describe_os_error, warn
from scratchllm.errors import ScratchLLMError

# the modules of scratchllm.cli that add subcommands, in the order `--help` lists them
STAGES = (
    "data",
    "model",
    "weights",
    "generate",
    "chat",
    "serve",
    "train",
    "finetune",
    "judge",
    "word2vec",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    status = 0
    try:
        with warnings.catch_warnings():  # restores the warning machinery afterwards
            warnings.showwarning = _one_line_warning
            status = args.run(args)
    except ScratchLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `scratchllm tokenize ... | head`
        sys.stderr.close()
    except OSError as error:  # a folder given for a file, no permission, a full disk, ...
        print(f"error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    return status or 0


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning (a prompt cropped to the model's window, ...) as one ``warning:``
    line, without Python's source location and code line: the user ran a command."""
    warn(str(message))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scratchllm",
        description="A GPT-2 style LLM built from scratch: corpus -> tokenizer -> token files "
        "-> sliding windows -> GPT -> pretraining -> generation -> GPT-2's weights -> "
        "finetuning (classify, instruct, dpo) -> chat and serve.",
        epilog="Start with `scratchllm train` (no arguments): it trains a BPE tokenizer and a "
        "small GPT on the embedded python-docs corpus under out/runs/; then `scratchllm "
        "generate --prompt ...` continues text with the model it trained, and `scratchllm "
        "chat` or `scratchllm serve` talk with it.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print scratchllm's version and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for stage in STAGES:
        importlib.import_module(f"{__name__}.{stage}").add_commands(commands)
    return parser


def package_version() -> str:
    """The installed distribution's version; ``__version__`` when running from a source tree."""
    from importlib import metadata

    try:
        return metadata.version("scratchllm")
    except metadata.PackageNotFoundError:
        from scratchllm import __version__

        return __version__


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (reading the package metadata
    took ~30 ms, which every other command would pay for nothing)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs) -> None:
        kwargs.setdefault("nargs", 0)
        kwargs.setdefault("default", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"scratchllm {package_version()}")
        parser.exit()
