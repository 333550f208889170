"""Plots: attention heatmaps, training loss curves, embedding maps (PNG, JPEG, SVG or PDF).

matplotlib draws through its Agg canvas directly, never through ``pyplot``: no GUI backend, no
global figure state, so plotting works on a headless server and in tests. Files are written
atomically (``scratchllm.io.atomic_writer``), in the format their suffix names
(``image_format``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from scratchllm.errors import ConfigError
from scratchllm.io import atomic_writer
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer.base import Tokenizer

INCHES_PER_TOKEN = 0.45  # room for one rotated token label per row/column
# a heatmap's side grows with the prompt up to this (1,440 px at DPI); longer prompts label
# every k-th token instead, so a 120-token prompt gives a 13 x 12 inch image, not 54 x 54
MAX_HEATMAP_INCHES = 12.0
MAX_TICK_LABELS = int((MAX_HEATMAP_INCHES - 1.5) / INCHES_PER_TOKEN)  # 23 fit on that side
DPI = 120
# what the suffix of an output names, as matplotlib's savefig formats (JPEG through Pillow,
# which matplotlib depends on)
IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".svg": "svg", ".pdf": "pdf"}


def image_format(path: str | os.PathLike[str]) -> str:
    """The savefig format ``path``'s suffix names, or a ``ConfigError`` saying which exist.

    >>> image_format("map.JPG"), image_format("out/heat.svg")
    ('jpeg', 'svg')
    """
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        raise ConfigError(
            f"cannot write {path}: {f'{suffix!r} is not' if suffix else 'no suffix names'} an "
            f"image type we write; end the name with {', '.join(IMAGE_FORMATS)}"
        )
    return IMAGE_FORMATS[suffix]


def tick_step(count: int, room: int) -> int:
    """Label every ``tick_step``-th of ``count`` tokens so at most ``room`` labels are drawn.

    >>> tick_step(20, 23), tick_step(120, 23), tick_step(47, 23)
    (1, 6, 3)
    """
    return max(1, -(-count // max(1, room)))  # ceiling division


def colour_limit(weights: torch.Tensor) -> float:
    """The weight a heatmap's brightest colour stands for: the largest below the first row.

    A causal model's first query sees only itself, so row 0 is always ``[1, 0, ...]``; scaled
    to that 1, the weights of a long prompt (about 1/T each) would all look alike.

    >>> colour_limit(torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]]))
    0.5
    """
    rest = weights[1:]
    largest = float(rest.max()) if rest.numel() else 1.0
    return largest if largest > 0 else 1.0


def plot_attention(
    weights: torch.Tensor,
    tokens: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Draw one head's attention weights ``(T, T)`` as a heatmap and save it (the format the
    suffix of ``path`` names: .png, .jpg, .svg or .pdf).

    Rows are queries (the token that looks), columns keys (the token looked at); both axes are
    labelled with ``tokens`` (every k-th token past what fits). Future keys, which a causal
    model never sees, are left blank. Colours run from 0 to the largest weight below the first
    row (whose only weight is always 1), on a square-root scale so that the small weights of
    long prompts still show. Returns the path written.
    """
    weights = weights.detach().float().cpu()
    if weights.dim() != 2 or weights.shape[0] != weights.shape[1]:
        raise ConfigError(f"attention weights must be a square (T, T) matrix, got {weights.shape}")
    if len(tokens) != weights.shape[0]:
        raise ConfigError(f"{len(tokens)} token labels for a {tuple(weights.shape)} matrix")
    count = len(tokens)
    side = min(MAX_HEATMAP_INCHES, max(4.0, 1.5 + INCHES_PER_TOKEN * count))
    figure = Figure(figsize=(side + 1.0, side), dpi=DPI)  # +1 inch for the colour bar
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    future = np.triu(np.ones((count, count), dtype=bool), k=1)
    shown = np.ma.masked_array(weights.numpy(), mask=future)
    largest = colour_limit(weights)
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="whitesmoke")
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=largest)
    image = axes.imshow(shown, cmap=colours, norm=norm, interpolation="nearest")
    figure.colorbar(
        image,
        ax=axes,
        label="attention weight (square-root scale)",
        extend="max" if largest < 1.0 else "neither",
    )
    # make whitespace visible: "\n" for newlines, a middle dot for spaces (GPT-2's " journey")
    labels = [repr(token)[1:-1].replace(" ", "\u00b7") for token in tokens]
    step = tick_step(count, MAX_TICK_LABELS)
    positions = range(0, count, step)
    axes.set_xticks(positions, [labels[index] for index in positions], rotation=90)
    axes.set_yticks(positions, [labels[index] for index in positions])
    every = "" if step == 1 else f"; 1 token in {step} labelled"
    axes.set_xlabel(f"key (attended to){every}")
    axes.set_ylabel("query (attending)")
    if title:
        axes.set_title(title)
    return _save_figure(figure, path)


def attention_heatmap(
    prompt: str,
    *,
    tokenizer: Tokenizer,
    model: GPT,
    layer: int,
    head: int,
    output: str | os.PathLike[str],
) -> Path:
    """Run ``model`` on ``prompt`` and plot the weights of ``head`` in ``layer`` (from 0).

    The model runs in eval mode (no dropout); the prompt must fit its context length.
    """
    config = model.config
    if not 0 <= layer < config.n_layer:
        raise ConfigError(
            f"layer {layer} is out of range: the model has layers 0..{config.n_layer - 1}"
        )
    if not 0 <= head < config.n_head:
        raise ConfigError(
            f"head {head} is out of range: each layer has heads 0..{config.n_head - 1}"
        )
    token_ids = tokenizer.encode(prompt, allowed_special="all")
    if not token_ids:
        raise ConfigError("the prompt is empty: give at least one token of text")
    if max(token_ids) >= config.vocab_size:
        raise ConfigError(
            f"the tokenizer produced id {max(token_ids)}, but the model's vocabulary has "
            f"{config.vocab_size} ids: use the tokenizer the model was trained with"
        )
    device = model.wte.weight.device
    was_training = model.training
    model.eval()
    try:
        weights = model.attention_weights(torch.tensor([token_ids], device=device))
    finally:
        model.train(was_training)
    tokens = [tokenizer.decode([token_id]) for token_id in token_ids]
    title = f"layer {layer}, head {head}"
    return plot_attention(weights[layer][0, head], tokens, output, title=title)


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """The mean of each value and up to ``window - 1`` values before it (a trailing window).

    >>> moving_average([1.0, 3.0, 5.0, 7.0], 2)
    [1.0, 2.0, 4.0, 6.0]
    """
    averaged, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        averaged.append(total / min(index + 1, window))
    return averaged


def plot_losses(
    path: str | os.PathLike[str],
    *,
    train: Sequence[tuple[int, float]],
    val: Sequence[tuple[int, float]] = (),
    train_eval: Sequence[tuple[int, float]] = (),
    baseline: float | None = None,
    title: str | None = None,
    unit: str = "nats per token",
) -> Path:
    """Draw loss against tokens seen and save it (as ``path``'s suffix says); returns the path.

    ``train`` holds one ``(tokens, loss)`` point per step (drawn faintly, with a moving average
    over about 2% of the steps on top); ``val`` and ``train_eval`` (the train loss measured
    like val, in eval mode on fixed batches) one per evaluation; ``baseline`` draws the
    unigram baseline as a dashed line.
    """
    figure = Figure(figsize=(8, 5), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    if train:
        tokens, losses = zip(*train, strict=True)
        axes.plot(tokens, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
        smooth = moving_average(losses, max(1, len(losses) // 50))
        axes.plot(tokens, smooth, color="tab:blue", label="train (per step, smoothed)")
    for points, label, style in (
        (train_eval, "train (eval mode, fixed batches)", dict(color="tab:green", marker=".")),
        (val, "validation", dict(color="tab:orange", marker="o", markersize=3)),
    ):
        if points:
            tokens, losses = zip(*points, strict=True)
            axes.plot(tokens, losses, label=label, **style)
    if baseline is not None:
        label = f"unigram baseline {baseline:.2f}"
        axes.axhline(baseline, color="gray", linestyle="--", label=label)
    axes.set_xlabel("tokens seen")
    axes.set_ylabel(f"loss ({unit})")
    axes.grid(alpha=0.3)
    if train or val or train_eval:
        axes.legend()
    if title:
        axes.set_title(title)
    return _save_figure(figure, path)


def plot_metric(
    path: str | os.PathLike[str],
    curves: dict[str, Sequence[tuple[int, float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
) -> Path:
    """Draw one metric's curves (``label -> [(x, value), ...]``, e.g. train and validation
    accuracy per evaluation) and save them as ``path``'s suffix says; returns the path."""
    figure = Figure(figsize=(8, 5), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for label, points in curves.items():
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, marker="o", markersize=3, label=label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    if any(curves.values()):
        axes.legend()
    if title:
        axes.set_title(title)
    return _save_figure(figure, path)


def plot_embedding_map(
    points: torch.Tensor,
    labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    groups: Sequence[int] | None = None,
    axis_labels: tuple[str, str] = ("", ""),
    title: str | None = None,
) -> Path:
    """Draw labelled 2-D points ``(n, 2)`` as a scatter plot and save it (as ``path``'s suffix
    says).

    ``groups`` gives each point a group number; each group gets its own colour and a legend
    entry naming its first words. Returns the path written.
    """
    points = points.detach().float().cpu()
    if points.dim() != 2 or points.shape[1] != 2 or points.shape[0] != len(labels):
        raise ConfigError(f"need one (x, y) row per label: {len(labels)} labels, {points.shape}")
    groups = list(groups) if groups is not None else [0] * len(labels)
    figure = Figure(figsize=(11, 8.5), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    colours = matplotlib.colormaps["tab10"]
    for group in sorted(set(groups)):
        members = [index for index, member in enumerate(groups) if member == group]
        names = ", ".join(labels[index] for index in members[:3])
        label = names + (", ..." if len(members) > 3 else "")
        axes.scatter(
            points[members, 0].numpy(),
            points[members, 1].numpy(),
            s=18,
            color=colours(group % 10),
            label=label if len(set(groups)) > 1 else None,
        )
        for index in members:
            x, y = points[index].tolist()
            axes.annotate(
                labels[index],
                (x, y),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=9,
                color=colours(group % 10) if len(set(groups)) > 1 else "black",
            )
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.grid(alpha=0.3)
    axes.margins(0.08)  # room for the labels of the outermost points
    if len(set(groups)) > 1:
        axes.legend(loc="best", fontsize=8)
    if title:
        axes.set_title(title)
    return _save_figure(figure, path)


def embedding_map(
    labels: Sequence[str],
    vectors: torch.Tensor,
    output: str | os.PathLike[str],
    *,
    groups: Sequence[int] | None = None,
    method: str = "pca",
    seed: int = 0,
    title: str | None = None,
) -> Path:
    """Project ``vectors`` (n, D), one per label, to 2-D (``method`` "pca" or "tsne") and plot."""
    from scratchllm.word2vec.projection import project_2d

    projection = project_2d(vectors, method=method, seed=seed)
    return plot_embedding_map(
        projection.points,
        labels,
        output,
        groups=groups,
        axis_labels=projection.axis_labels,
        title=title,
    )


def _save_figure(figure, path: str | os.PathLike[str]) -> Path:
    """Lay out ``figure`` and write it to ``path`` atomically, in the format its suffix names."""
    image_type = image_format(path)
    figure.tight_layout()
    path = Path(path)
    with atomic_writer(path) as handle:
        figure.savefig(handle, format=image_type)
    return path
