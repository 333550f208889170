"""`scratchllm` itself: `python -m scratchllm` and the help it prints."""

from __future__ import annotations

import os
import subprocess
import sys


def test_python_dash_m_and_help_teach(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "scratchllm", "prepare", "--help"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "--tokenizer" in help_text and "bpe:N" in help_text
    assert "(default python-docs)" in help_text
