"""`scratchllm` itself: `python -m scratchllm`, `--version`, and help that never loads torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import scratchllm
from scratchllm.cli import main, package_version

# Runs every command's --help in one fresh interpreter and reports, for each, whether torch
# had been imported by then (commands are walked from the parser, so new ones are covered).
HELP_PROBE = """
import argparse, contextlib, io, json, sys
from scratchllm.cli import build_parser, main

def commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield prefix + (name,)
                yield from commands(subparser, prefix + (name,))

report = {}
for command in [(), *commands(build_parser())]:
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        try:
            main([*command, "--help"])
        except SystemExit:
            pass
    report[" ".join(command) or "(none)"] = ["usage:" in printed.getvalue(), "torch" in sys.modules]
print(json.dumps(report))
"""


def run_python(*arguments: str, cwd) -> subprocess.CompletedProcess:
    """``python ARGUMENTS`` in ``cwd``, importing the scratchllm under test (not another one
    installed, or found through a relative PYTHONPATH)."""
    source = str(Path(scratchllm.__file__).resolve().parent.parent)
    path = os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


def test_python_dash_m_and_help_teach(tmp_path):
    result = run_python("-m", "scratchllm", "prepare", "--help", cwd=tmp_path)
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "--tokenizer" in help_text and "bpe:N" in help_text
    assert "(default python-docs)" in help_text


def test_help_does_not_import_torch(tmp_path):
    # python -m scratchllm --help, through __main__: no line of -X importtime names torch
    result = run_python("-X", "importtime", "-m", "scratchllm", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "usage: scratchllm" in result.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "scratchllm.cli" in imported
    assert not [name for name in imported if name.split(".")[0] == "torch"]
    # and every subcommand's --help
    result = run_python("-c", HELP_PROBE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"train", "generate", "word2vec train", "embed-plot"} <= set(report)
    assert all(printed_usage for printed_usage, _ in report.values())
    assert [command for command, (_, torch) in report.items() if torch] == []


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert printed == f"scratchllm {package_version()}\n"
    assert printed.split()[1][0].isdigit()
