"""PCA against numpy's SVD; t-SNE's missing-dependency error."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from scratchllm.errors import ConfigError, ScratchLLMError
from scratchllm.word2vec.projection import pca_2d, project_2d


def test_pca_matches_numpy_svd_up_to_sign():
    data = torch.randn(30, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    points, shares = pca_2d(data)
    centered = data.numpy() - data.numpy().mean(0)
    _, singular, right = np.linalg.svd(centered, full_matrices=False)
    expected = centered @ right[:2].T
    np.testing.assert_allclose(np.abs(points.numpy()), np.abs(expected), rtol=1e-5, atol=1e-5)
    variance = singular**2
    np.testing.assert_allclose(shares, variance[:2] / variance.sum(), rtol=1e-9)


def test_pca_is_deterministic_in_sign():
    data = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    first, _ = pca_2d(data)
    second, _ = pca_2d(data.clone())
    assert torch.equal(first, second)


def test_project_uses_unit_vectors_and_names_the_axes():
    vectors = torch.tensor([[1.0, 0.0], [10.0, 0.0], [0.0, 5.0]])
    projection = project_2d(vectors)
    assert torch.allclose(projection.points[0], projection.points[1], atol=1e-6)  # same direction
    assert projection.axis_labels[0].startswith("principal component 1 (")
    with pytest.raises(ConfigError, match="method"):
        project_2d(vectors, method="umap")


def test_tsne_without_scikit_learn_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn...` fail
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(ScratchLLMError, match="pip install scikit-learn"):
        project_2d(torch.randn(5, 3), method="tsne")


def test_tsne_when_scikit_learn_is_installed():
    pytest.importorskip("sklearn", reason="t-SNE is optional: scikit-learn is not installed")
    noise = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    groups = torch.cat([noise[:6] + 5.0, noise[6:] - 5.0])  # two opposite directions
    projection = project_2d(groups, method="tsne", seed=0)
    assert projection.points.shape == (12, 2)
    first, second = projection.points[:6].mean(0), projection.points[6:].mean(0)
    spread = projection.points[:6].std(0).norm()
    assert (first - second).norm() > spread  # the two clusters stay apart
