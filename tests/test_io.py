"""Atomic writes: the new file appears whole, or the old one stays, with no temporary left."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

from scratchllm.io import atomic_path, atomic_write_text, atomic_writer


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_atomic_writer_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and leftovers(tmp_path) == []
    with atomic_writer(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new" and leftovers(tmp_path) == []


def test_atomic_path_serves_writers_that_take_a_file_name(tmp_path):
    target = tmp_path / "model.safetensors"
    tensors = {"w": torch.arange(6.0).reshape(2, 3)}
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary != target
        save_file(tensors, temporary)
        assert not target.exists()  # only once the block is done
    assert torch.equal(load_file(target)["w"], tensors["w"]) and leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # as a plain open() gives
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as temporary:
        temporary.write_bytes(b"truncated")
        raise KeyboardInterrupt
    assert torch.equal(load_file(target)["w"], tensors["w"]) and leftovers(tmp_path) == []
