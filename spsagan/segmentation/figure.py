"""Segmentation figure (the second column of the paper's Fig. 6): image, argmax labels, per-class maps.

Semantic maps are coloured with SFTGAN's colour table. Stand-in maps get a neutral palette and
`cluster k` names instead, and the figure says in its footer that they are not semantic categories.
Matplotlib is used through its object API with the Agg canvas, so importing this module changes no
global backend state.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from spsagan.atomic import atomic_path
from spsagan.segmentation.classes import COLORS, NUM_CLASSES, channel_names, standin_note

# Neutral palette for stand-in clusters (Okabe-Ito plus gray): no colour suggests a class.
CLUSTER_COLORS = (
    (0, 0, 0),
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
)


def colorize(labels: np.ndarray, semantic: bool = True) -> np.ndarray:
    """(H, W) integer labels 0..7 -> uint8 (H, W, 3) RGB in SFTGAN's table (or the cluster palette)."""
    table = np.array(COLORS if semantic else CLUSTER_COLORS, dtype=np.uint8)
    return table[np.asarray(labels)]


def is_semantic_label(segmenter_label: str) -> bool:
    """Stand-in labels start with 'standin' or name random weights; everything else is taken as semantic."""
    label = str(segmenter_label)
    return not label.startswith("standin") and "random weights" not in label


def plot_segmentation(
    image: np.ndarray,
    probs: np.ndarray,
    path: str | os.PathLike,
    title: str,
    segmenter_label: str,
    semantic: bool | None = None,
) -> Path:
    """Write a PNG: the image, its argmax segmentation with a legend, and the 8 per-class maps.

    image: uint8 (H, W, 3) RGB or (H, W) gray; probs: (8, H, W) probabilities in [0, 1].
    semantic: None infers it from `segmenter_label` (see `is_semantic_label`).
    """
    image = np.asarray(image)
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[0] != NUM_CLASSES or probs.shape[1:] != image.shape[:2]:
        raise ValueError(f"{path}: probs {probs.shape} do not match image {image.shape} (expected (8, H, W))")
    if semantic is None:
        semantic = is_semantic_label(segmenter_label)
    names = channel_names(semantic)
    labels = probs.argmax(axis=0)
    height, width = labels.shape
    aspect = height / width

    fig = Figure(figsize=(12, 3.0 * aspect * 2 + 2.4), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3, 4, height_ratios=[2 * aspect, aspect, aspect], hspace=0.25, wspace=0.05)
    ax = fig.add_subplot(grid[0, :2])
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_title("image")
    ax = fig.add_subplot(grid[0, 2:])
    ax.imshow(colorize(labels, semantic), interpolation="nearest")
    ax.set_title("argmax " + ("segmentation" if semantic else "cluster"))
    present = np.unique(labels)
    table = COLORS if semantic else CLUSTER_COLORS
    handles = [Patch(color=np.array(table[k]) / 255, label=names[k]) for k in present]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    for k in range(NUM_CLASSES):
        ax = fig.add_subplot(grid[1 + k // 4, k % 4])
        shown = ax.imshow(probs[k], cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"{k}: {names[k]}", fontsize=9)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=fig.axes[2:], fraction=0.02, pad=0.01, label="probability")
    fig.suptitle(title)
    footer = f"segmenter: {segmenter_label}"
    if not semantic:
        footer += f"\n{standin_note(segmenter_label)}"
    fig.text(0.5, 0.01, footer, ha="center", va="bottom", fontsize=9, color="black" if semantic else "firebrick")

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path
