"""The embedding map PNG (viz.embedding_map / plot_embedding_map)."""

from __future__ import annotations

import struct

import pytest
import torch

from scratchllm.errors import ConfigError
from scratchllm.viz import embedding_map, plot_embedding_map


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_embedding_map_writes_a_readable_png(tmp_path):
    labels = [f"word{i}" for i in range(12)]
    vectors = torch.randn(12, 10, generator=torch.Generator().manual_seed(0))
    path = embedding_map(labels, vectors, tmp_path / "sub" / "map.png", groups=[0] * 6 + [1] * 6)
    width, height = png_size(path)
    assert 800 <= width <= 2000 and 600 <= height <= 1600
    assert list(path.parent.iterdir()) == [path]  # written atomically: no temporary file left


def test_points_and_labels_must_match(tmp_path):
    with pytest.raises(ConfigError, match="one \\(x, y\\) row per label"):
        plot_embedding_map(torch.zeros(3, 2), ["a", "b"], tmp_path / "x.png")
