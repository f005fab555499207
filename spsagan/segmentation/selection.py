"""Multi-category selection of DIV2K images for GAN training (paper section 4).

The paper trains on OST plus DIV2K images "containing multiple categories" without saying how they
were chosen. Rule used here (both thresholds are params of the stage):

    fraction_k = share of the image's pixels whose most probable class (argmax over the 8 channels) is k
    an image is selected when at least `min_categories` of the 7 OST categories (sky, water, grass,
    mountain, building, plant, animal) each have fraction_k >= `min_fraction`

Background is not a category (it is SFTGAN's "everything else"); `count_background=True` counts it too.
With stand-in maps the "categories" are colour clusters, so the selection then only means "several
distinct regions"; the written table records which segmenter made the maps.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from spsagan.atomic import atomic_path, write_text
from spsagan.segmentation.classes import BACKGROUND, NUM_CLASSES, channel_names
from spsagan.segmentation.storage import load_quantized, read_seg_meta


def class_fractions(probs: np.ndarray) -> np.ndarray:
    """(8, H, W) probabilities (or uint8 quantised maps) -> (8,) float64 argmax pixel shares, summing to 1."""
    labels = np.asarray(probs).argmax(axis=0)
    return np.bincount(labels.ravel(), minlength=NUM_CLASSES).astype(np.float64) / labels.size


def count_categories(fractions: np.ndarray, min_fraction: float, count_background: bool = False) -> int:
    """How many classes cover at least `min_fraction` of the pixels (background excluded by default)."""
    present = np.asarray(fractions) >= min_fraction
    if not count_background:
        present[BACKGROUND] = False
    return int(present.sum())


def select_multi_category(
    fractions: dict[str, np.ndarray],
    min_categories: int,
    min_fraction: float,
    count_background: bool = False,
    semantic: bool = True,
) -> pd.DataFrame:
    """One row per image: name, the 8 fractions, n_categories, selected (bool); sorted by name.

    fractions: image name -> (8,) argmax shares (see `class_fractions`).
    semantic: False for stand-in maps; only changes the column names (`cluster k` instead of classes).
    """
    if not isinstance(min_categories, (int, np.integer)) or isinstance(min_categories, bool) or min_categories < 1:
        raise ValueError(f"min_categories must be an integer >= 1, got {min_categories!r}")
    if not 0.0 < float(min_fraction) <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction!r}")
    names = channel_names(semantic)
    rows = []
    for image in sorted(fractions):
        share = np.asarray(fractions[image], dtype=np.float64)
        n = count_categories(share, min_fraction, count_background)
        rows.append(
            {
                "name": image,
                **{c: float(f) for c, f in zip(names, share)},
                "n_categories": n,
                "selected": n >= min_categories,
            }
        )
    return pd.DataFrame(rows, columns=["name", *names, "n_categories", "selected"])


def fractions_from_maps(map_dir: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Argmax shares of every `<name>.npz` map directly in `map_dir` (sub-image maps in `sub/` are not
    included), and the meta of the first map (which segmenter made them). Raises if maps disagree on it.
    """
    paths = sorted(Path(map_dir).glob("*.npz"))
    if not paths:
        raise FileNotFoundError(f"{map_dir}: no segmentation maps (*.npz); run the make_seg_maps stage first")
    fractions, meta = {}, None
    for path in paths:
        this = read_seg_meta(path)
        if meta is None:
            meta = this
        elif this["segmenter_label"] != meta["segmenter_label"]:
            raise ValueError(
                f"{path}: made by {this['segmenter_label']}, but {paths[0].name} by "
                f"{meta['segmenter_label']}; rerun make_seg_maps so all maps come from one segmenter"
            )
        fractions[path.stem] = class_fractions(load_quantized(path))
    return fractions, meta


def write_selection(
    table: pd.DataFrame, table_path: str | os.PathLike, list_path: str | os.PathLike, segmenter_label: str
) -> list[str]:
    """Write the full table as CSV (plus a `segmenter` column) and the selected names, one per line,
    both atomically. Returns the selected names."""
    selected = table.loc[table["selected"], "name"].tolist()
    with atomic_path(table_path) as tmp:
        table.assign(segmenter=segmenter_label).to_csv(tmp, index=False, float_format="%.6f")
    write_text(list_path, "".join(f"{name}\n" for name in selected))
    return selected


def selection_paths(seg_root: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Where make_seg_maps keeps the selection of set `name`: (full table CSV, selected names list)."""
    folder = Path(seg_root) / "selection"
    return folder / f"{name}.csv", folder / f"{name}_selected.txt"


def read_selected(seg_root: str | os.PathLike, name: str) -> list[str]:
    """The images of set `name` that passed the multi-category selection (make_seg_maps' output)."""
    listing = selection_paths(seg_root, name)[1]
    if not listing.exists():
        raise FileNotFoundError(
            f"{listing} does not exist: train_gan.selected_only names {name!r}, "
            f"so make_seg_maps.select_set must be {name!r}"
        )
    names = listing.read_text().split()
    if not names:
        raise ValueError(
            f"{listing}: no image of {name} passed the multi-category selection; "
            "lower make_seg_maps.min_categories or min_fraction"
        )
    return names
