"""Down to two dimensions for a picture: PCA (default) or t-SNE (needs scikit-learn).

Both start from unit-length vectors, since word vectors are compared by cosine: PCA then shows
the two directions along which the chosen words' directions vary most; t-SNE keeps each word's
nearest neighbours near and gives up global distances.

Four points spread 3 along x and 1 along y: the first axis carries 9/10 of the variance.

>>> square = torch.tensor([[3.0, 0.0, 0.0], [-3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
>>> points, shares = pca_2d(square)
>>> points[:, 0].tolist(), [round(share, 2) for share in shares]
([3.0, -3.0, 0.0, 0.0], [0.9, 0.1])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scratchllm.config import PROJECTION_METHODS
from scratchllm.errors import ConfigError, ScratchLLMError

METHODS = PROJECTION_METHODS


@dataclass(frozen=True)
class Projection:
    """2-D points, one per input vector, and what their two axes mean."""

    points: torch.Tensor  # (n, 2)
    axis_labels: tuple[str, str]


def unit_rows(vectors: torch.Tensor) -> torch.Tensor:
    """Each row scaled to length 1 (zero rows stay zero)."""
    vectors = vectors.detach().to("cpu", torch.float64)
    return vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)


def pca_2d(vectors: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
    """The rows of ``vectors`` (n, D) on their first two principal components.

    Returns the (n, 2) points and the share of the variance each axis explains. The sign of
    each axis is fixed (its largest loading positive), so the same vectors give the same map.
    """
    if vectors.dim() != 2 or vectors.shape[0] < 2:
        raise ConfigError(f"PCA needs at least 2 vectors in a (n, D) matrix, got {vectors.shape}")
    centered = vectors.to(torch.float64) - vectors.to(torch.float64).mean(0)
    _, singular, right = torch.linalg.svd(centered, full_matrices=False)
    axes = right[:2]  # (2, D)
    if axes.shape[0] < 2:  # D == 1: a second, empty axis
        axes = torch.cat([axes, torch.zeros_like(axes)])
    flip = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    axes = axes * torch.where(flip == 0, 1.0, flip)
    variance = singular.square()
    total = float(variance.sum()) or 1.0
    shares = [float(value) / total for value in variance[:2]] + [0.0]
    return (centered @ axes.T).float(), (shares[0], shares[1])


def tsne_2d(vectors: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """t-SNE to 2-D with scikit-learn (perplexity at most 30, below the number of points)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ScratchLLMError(
            "t-SNE needs scikit-learn, which is not installed: `pip install scikit-learn`, "
            "or use --method pca"
        ) from None
    count = vectors.shape[0]
    if count < 3:
        raise ConfigError(f"t-SNE needs at least 3 points, got {count}")
    perplexity = min(30.0, (count - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return torch.from_numpy(tsne.fit_transform(vectors.numpy())).float()


def project_2d(vectors: torch.Tensor, *, method: str = "pca", seed: int = 0) -> Projection:
    """Unit-length rows of ``vectors`` projected to 2-D with ``method`` ("pca" or "tsne")."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    unit = unit_rows(vectors)
    if method == "tsne":
        return Projection(tsne_2d(unit, seed=seed), ("t-SNE 1", "t-SNE 2"))
    points, shares = pca_2d(unit)
    labels = tuple(
        f"principal component {axis + 1} ({share:.0%} of variance)"
        for axis, share in enumerate(shares)
    )
    return Projection(points, labels)  # type: ignore[arg-type]
