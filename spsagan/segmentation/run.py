"""Segment a whole dataset: one map file per HR image, and per training sub-image.

`build_segmenter` checks everything it needs (for OutdoorSceneSeg: the weights file, strictly) before
returning, so a stage that builds the segmenter first writes no map when the weights are missing or wrong.
`segment_dataset` then writes, atomically and resumably:

    <out_dir>/<name>.npz        the map of hr_dir/<name>.<ext>, at the image's size
    <out_dir>/sub/<sub>.npz     for each row of index.csv: the full map cut at (top, left, size)

Every map is the prior of the image's LR (`priors_from_lq`: the segmenter on the bicubic x4 upsampling
of the LR that make_lr writes, `spsagan.image.make_lq` of the HR), the function spsagan-upscale calls
on a user's image, so training, evaluation and upscaling see one prior.

A map file that exists and was made by the same segmenter (same label: weights digest or seed) for an
image of the same size is skipped, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from spsagan.data.pairs import INDEX_COLUMNS, read_index
from spsagan.errors import ConfigError, SegStorageError
from spsagan.image import IMAGE_SUFFIXES, list_images, make_lq, read_image
from spsagan.runtime import resolve_device
from spsagan.segmentation.classes import NUM_CLASSES, channel_names
from spsagan.segmentation.outdoor_scene_seg import (
    RANDOM_WEIGHTS,
    WEIGHTS_FILE,
    WEIGHTS_SOURCES,
    OutdoorSceneSegmenter,
    load_outdoor_scene_seg,
    random_outdoor_scene_seg,
)
from spsagan.segmentation.standin import StandInSegmenter
from spsagan.segmentation.storage import (
    check_probabilities,
    crop_map,
    load_quantized,
    pad_map,
    quantize,
    read_seg_meta,
    save_quantized,
)

SEGMENTERS = ("outdoor_scene_seg", "standin")


def build_segmenter(
    name: str,
    weights: str | os.PathLike | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    sha256: str | None = None,
):
    """Make the segmenter named in params.

    name: "outdoor_scene_seg" (needs `weights`, the path of segmentation_OST_bic.pth; verified by a
    strict load, the parameter count and, when given, `sha256`) or "standin" (uses `seed`; `weights`
    and `sha256` do not apply to it). device: "cpu", "cuda", "cuda:1", or "auto".
    weights "random" (`RANDOM_WEIGHTS`): OutdoorSceneSeg with random weights drawn from `seed`, the
    paper profile's rehearsal stand-in (`spsagan.pipeline.rehearsal`); its label says so and its maps are not semantic.
    Raises ConfigError (missing/wrong weights file, with what to do) or ValueError (unknown name).
    """
    if name == "outdoor_scene_seg":
        if str(weights) == RANDOM_WEIGHTS:
            return OutdoorSceneSegmenter(random_outdoor_scene_seg(seed), None, device=resolve_device(device), seed=seed)
        if weights is None:
            raise ConfigError(
                f"segmenter outdoor_scene_seg needs the path of {WEIGHTS_FILE} (params: make_seg_maps "
                f"weights); download it from the {WEIGHTS_SOURCES[0]} ({WEIGHTS_SOURCES[1]})"
            )
        model, digest = load_outdoor_scene_seg(weights, sha256=sha256)
        return OutdoorSceneSegmenter(model, digest, device=resolve_device(device))
    if name == "standin":
        return StandInSegmenter(seed=seed)
    raise ValueError(f"unknown segmenter {name!r}; choose one of {', '.join(SEGMENTERS)}")


def priors_from_lq(segmenter, lqs: list[np.ndarray]) -> list[np.ndarray]:
    """The segmentation priors of images from their LR: the segmenter on the bicubic x4 upsampling of each.

    lqs: uint8 (h, w, 3) RGB or (h, w) gray LR images -> float32 (8, 4h, 4w) probabilities, at the
    size of the generator's x4 output. The one definition of a prior: make_seg_maps (through
    `segment_dataset`, on make_lr's LR) and spsagan-upscale (on the user's image) both call it.
    """
    lqs = [np.repeat(lq[:, :, None], 3, axis=2) if lq.ndim == 2 else lq for lq in map(np.asarray, lqs)]
    maps = segmenter.segment_lq(lqs)
    for lq, probs in zip(lqs, maps):
        want = (NUM_CLASSES, 4 * lq.shape[0], 4 * lq.shape[1])
        if np.shape(probs) != want:
            raise ValueError(
                f"{segmenter.label}: prior of shape {np.shape(probs)} for a {lq.shape[0]}x{lq.shape[1]} "
                f"LR image, expected {want}"
            )
    return maps


def prior_from_lq(segmenter, lq: np.ndarray) -> np.ndarray:
    """`priors_from_lq` of one image: uint8 (h, w[, 3]) -> float32 (8, 4h, 4w)."""
    return priors_from_lq(segmenter, [lq])[0]


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError as exc:
        raise ValueError(f"{path}: unreadable image ({exc}); re-run the stage that made it") from exc


def read_checked_index(index_csv: str | os.PathLike, sizes: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Read index.csv (`spsagan.data.pairs.read_index`) and check each crop against its source image.

    `source` may be given with or without the image's file suffix. Rows must name a known source,
    use multiples of 4 for top/left/size (so the LR crop is exact) and stay inside the image.
    """
    index_csv = Path(index_csv)
    table = pd.DataFrame(read_index(index_csv), columns=INDEX_COLUMNS)
    table["source"] = [Path(s).stem if Path(s).suffix.lower() in IMAGE_SUFFIXES else s for s in table["source"]]
    for row_number, row in enumerate(table.itertuples(index=False), start=2):
        where = f"{index_csv} line {row_number} (sub {row.sub})"
        if row.source not in sizes:
            raise ValueError(f"{where}: source {row.source!r} is not an image in the HR folder")
        top, left, size = row.top, row.left, row.size
        if min(top, left) < 0 or size < 4 or top % 4 or left % 4 or size % 4:
            raise ValueError(f"{where}: top, left, size must be integers, multiples of 4, size >= 4")
        height, width = sizes[row.source]
        if top + size > height or left + size > width:
            raise ValueError(f"{where}: crop {top},{left}+{size} leaves the {height}x{width} image")
    return table.astype({"top": int, "left": int, "size": int})


def _is_done(path: Path, label: str, expect: dict) -> bool:
    """A map exists, is readable, and was made by this segmenter for this geometry."""
    if not path.is_file():
        return False
    try:
        meta = read_seg_meta(path)
    except SegStorageError:
        return False
    return meta.get("segmenter_label") == label and all(meta.get(k) == v for k, v in expect.items())


def segment_dataset(
    segmenter,
    hr_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    index_csv: str | os.PathLike | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict:
    """Write the map of every image in hr_dir (and of every sub-image in index_csv) under out_dir.

    segmenter: from `build_segmenter`. batch_size: images per forward pass (only images of one size
    share a batch). device: moves the segmenter there first (None: leave it). Returns a summary:
    counts computed/skipped, bytes written in total, bytes per megapixel, seconds, segmenter label.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    started = time.perf_counter()
    if device is not None:
        segmenter.to(resolve_device(device))
    out_dir = Path(out_dir)
    images = list_images(hr_dir, hint="run the make_lr stage first")
    sizes = {name: _image_size(path) for name, path in images.items()}
    subs = read_checked_index(index_csv, sizes) if index_csv is not None else pd.DataFrame(columns=INDEX_COLUMNS)
    subs_of = {name: group for name, group in subs.groupby("source")}
    base_meta = {**segmenter.meta(), "classes": list(channel_names(segmenter.semantic))}

    def full_path(name):
        return out_dir / f"{name}.npz"

    def sub_tasks(name):
        """Sub-image rows of `name` whose map is not done yet."""
        rows = subs_of.get(name)
        if rows is None:
            return []
        return [
            r
            for r in rows.itertuples(index=False)
            if not _is_done(
                out_dir / "sub" / f"{r.sub}.npz",
                segmenter.label,
                {"source": name, "top": r.top, "left": r.left, "size": r.size},
            )
        ]

    def write_subs(name, q, rows):
        for r in rows:
            meta = {**base_meta, "source": name, "sub": r.sub, "top": r.top, "left": r.left, "size": r.size}
            save_quantized(out_dir / "sub" / f"{r.sub}.npz", crop_map(q, r.top, r.left, r.size, r.size), meta)

    todo = [
        n
        for n in images
        if not _is_done(full_path(n), segmenter.label, {"source": n, "height": sizes[n][0], "width": sizes[n][1]})
    ]
    pending = set(todo)
    skipped = [n for n in images if n not in pending]
    sub_counts = {"sub_computed": 0, "sub_skipped": len(subs)}
    # Same-size images next to each other, so they can share a batch.
    todo.sort(key=lambda n: (sizes[n], n))
    bar = tqdm(
        total=len(images),
        desc=f"segment {Path(hr_dir).name} ({segmenter.name})",
        unit="img",
        disable=not progress,
        initial=len(skipped),
    )
    for start in range(0, len(todo), int(batch_size)):
        names = todo[start : start + int(batch_size)]
        # The LR make_lr wrote for each HR image, recomputed bit for bit from the HR (same function).
        maps = priors_from_lq(segmenter, [make_lq(read_image(images[n], gray="rgb"), 4) for n in names])
        for name, probs in zip(names, maps):
            probs = check_probabilities(probs, what=f"{segmenter.label} map of {images[name]}")
            q = quantize(pad_map(probs, *sizes[name]))  # a non-mod-4 HR: edge rows/columns repeated
            save_quantized(full_path(name), q, {**base_meta, "source": name})
            rows = sub_tasks(name)
            write_subs(name, q, rows)
            sub_counts["sub_computed"] += len(rows)
            bar.update(1)
    bar.close()
    for name in skipped:  # full map done earlier; finish sub-images a killed run left out
        rows = sub_tasks(name)
        if rows:
            write_subs(name, load_quantized(full_path(name)), rows)
            sub_counts["sub_computed"] += len(rows)
    sub_counts["sub_skipped"] = len(subs) - sub_counts["sub_computed"]

    full_bytes = sum(full_path(n).stat().st_size for n in images)
    megapixels = sum(h * w for h, w in sizes.values()) / 1e6
    sub_bytes = sum((out_dir / "sub" / f"{s}.npz").stat().st_size for s in subs["sub"])
    return {
        "segmenter": segmenter.name,
        "segmenter_label": segmenter.label,
        "semantic": bool(segmenter.semantic),
        "images": len(images),
        "computed": len(todo),
        "skipped": len(skipped),
        "sub_images": len(subs),
        **sub_counts,
        "megapixels": round(megapixels, 4),
        "map_bytes": int(full_bytes),
        "sub_map_bytes": int(sub_bytes),
        "bytes_per_megapixel": round(full_bytes / megapixels) if megapixels else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
