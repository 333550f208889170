"""Fixtures shared by the whole test suite.

The test data (GPT-2 vocabulary files, "The Verdict", tiktoken's cache) lives outside the
repository in ``../shared/data`` relative to the repository root; tests read it from there and
never touch the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPOSITORY_ROOT.parent / "shared" / "data"

# tiktoken downloads its vocabularies unless they are in its cache; point it at the shared copy
# (set at import so that it also holds for modules that build an encoding at collection time).
os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED_DATA / "tiktoken-cache")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared test-data folder; skips the test (fails it on CI) if the folder is missing."""
    if not SHARED_DATA.is_dir():
        message = f"shared test data not found at {SHARED_DATA} (expected next to the repository)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA
