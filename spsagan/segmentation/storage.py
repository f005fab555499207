"""Segmentation maps on disk: uint8-quantised probabilities in a compressed `.npz` per image.

A map is an `(8, H, W)` array of probabilities summing to 1 per pixel (channel order:
`spsagan.segmentation.classes.CLASSES`). On disk (format version 1):

- the probabilities are quantised to integers q (0..255) that sum to exactly 255 per pixel
  (largest-remainder rounding of 255 * p), so |q / 255 - p| < 1/255 for every value and the loaded
  maps sum to 1 up to float32 rounding;
- q is stored as its 2-D second difference (q[y, x] - q[y-1, x] - q[y, x-1] + q[y-1, x-1], modulo 256,
  zero outside the image): smooth probability ramps become runs of zeros, and the deflated file is
  about 1.7 times smaller than deflating the plain planes;
- the `.npz` holds two members: `q_grad2d` (uint8 (8, H, W), the coded planes; read it through
  `load_seg`, not directly) and `meta` (a JSON string: which segmenter made the map, the source image,
  the crop for sub-images, ...). Nothing is pickled: `np.load(..., allow_pickle=False)` reads it.

float32 maps as SFTGAN stores them take 32 bytes per pixel (32 MB per megapixel); see
`benchmarks/bench_seg_storage.py` and docs/segmentation.md for the measured size of this format.
Files are written atomically, so a file that exists is complete.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from spsagan.atomic import atomic_path
from spsagan.errors import SegStorageError
from spsagan.segmentation.classes import NUM_CLASSES

FORMAT_VERSION = 1
LEVELS = 255
REQUIRED_META = ("segmenter", "segmenter_label", "semantic")
_FIX = "delete it and rerun the make_seg_maps stage"


# --------------------------------------------------------------------------------------------------
# Quantisation


def quantize(probs: np.ndarray) -> np.ndarray:
    """float (8, H, W) probabilities -> uint8 (8, H, W) integers summing to exactly 255 per pixel.

    Largest-remainder rounding: floor(255 p) per channel, then the missing units go to the channels
    with the largest fractional parts (ties to the lower channel), so |q - 255 p| < 1.
    The input must sum to 1 per pixel (validate it with `check_probabilities`); each pixel is
    renormalised exactly before rounding.
    """
    probs = np.asarray(probs)
    q = np.empty(probs.shape, dtype=np.uint8)
    for top in range(0, probs.shape[1], 64):  # row blocks bound the float64 temporaries
        q[:, top : top + 64] = _quantize_rows(probs[:, top : top + 64])
    return q


def _quantize_rows(probs: np.ndarray) -> np.ndarray:
    probs = np.clip(probs.astype(np.float64), 0.0, None)
    scaled = probs * (LEVELS / probs.sum(axis=0, keepdims=True))
    floor = np.floor(scaled)
    frac = scaled - floor
    q = floor.astype(np.int16)
    missing = LEVELS - q.sum(axis=0)  # 0 .. 7 units per pixel
    # rank[k] = channels ahead of k: larger fraction, or an equal one at a lower index
    rank = np.zeros(q.shape, dtype=np.int16)
    for k in range(q.shape[0]):
        for j in range(k + 1, q.shape[0]):
            j_ahead = frac[j] > frac[k]
            rank[k] += j_ahead
            rank[j] += ~j_ahead
    q += rank < missing[None]
    return q.astype(np.uint8)


def dequantize(q: np.ndarray) -> np.ndarray:
    """uint8 (8, H, W) -> float32 probabilities q / 255."""
    return np.asarray(q, dtype=np.float32) / np.float32(LEVELS)


def check_probabilities(probs: np.ndarray, what: str = "map", atol: float = 1e-3) -> np.ndarray:
    """Validate an (8, H, W) probability map; returns it as a float array (not copied when float).

    Raises ValueError when the shape is wrong, values are not finite or negative, or a pixel's sum is
    off 1 by more than `atol` (a sign of logits or a wrong axis, not of rounding). `quantize`
    renormalises each pixel exactly.
    """
    probs = np.asarray(probs)
    if not np.issubdtype(probs.dtype, np.floating):
        probs = probs.astype(np.float64)
    if probs.ndim != 3 or probs.shape[0] != NUM_CLASSES or probs.shape[1] < 1 or probs.shape[2] < 1:
        raise ValueError(f"{what}: expected ({NUM_CLASSES}, H, W) probabilities, got shape {probs.shape}")
    sums = probs.sum(axis=0, dtype=np.float64)  # NaN or inf anywhere shows up in the sums
    if not np.all(np.isfinite(sums)) or probs.min() < -1e-6:
        raise ValueError(f"{what}: probabilities must be finite and >= 0")
    worst = float(np.abs(sums - 1.0).max())
    if worst > atol:
        raise ValueError(
            f"{what}: channels must sum to 1 per pixel (worst pixel off by {worst:.3g}); "
            "pass softmax probabilities over the 8 channels"
        )
    return probs


def _encode(q: np.ndarray) -> np.ndarray:
    # uint8 subtraction wraps modulo 256, which is the coding.
    rows = q.copy()
    rows[:, 1:] -= q[:, :-1]
    coded = rows.copy()
    coded[:, :, 1:] -= rows[:, :, :-1]
    return coded


def _decode(coded: np.ndarray) -> np.ndarray:
    # uint8 cumulative sums wrap modulo 256, undoing the modulo of _encode exactly.
    return np.cumsum(np.cumsum(coded, axis=1, dtype=np.uint8), axis=2, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# Files


def save_seg(path: str | os.PathLike, probs: np.ndarray, meta: dict) -> int:
    """Quantise and write one map; returns the file size in bytes.

    probs: (8, H, W) float probabilities summing to 1 per pixel (within 1e-3).
    meta: JSON-serialisable dict with at least `segmenter` (name), `segmenter_label` (what exactly made
    it: network + weights digest, or stand-in + seed) and `semantic` (False for stand-in maps).
    """
    probs = check_probabilities(probs, what=str(path))
    return save_quantized(path, quantize(probs), meta)


def save_quantized(path: str | os.PathLike, q: np.ndarray, meta: dict) -> int:
    """Write an already quantised uint8 (8, H, W) map (each pixel summing to 255); returns bytes."""
    path = Path(path)
    q = np.asarray(q)
    if q.dtype != np.uint8 or q.ndim != 3 or q.shape[0] != NUM_CLASSES:
        raise ValueError(f"{path}: expected uint8 ({NUM_CLASSES}, H, W), got {q.dtype} {q.shape}")
    if np.any(q.sum(axis=0, dtype=np.int32) != LEVELS):
        raise ValueError(f"{path}: quantised channels must sum to {LEVELS} per pixel")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"{path}: meta lacks {', '.join(missing)}; every map records which segmenter made it")
    full_meta = {**meta, "format_version": FORMAT_VERSION, "height": int(q.shape[1]), "width": int(q.shape[2])}
    try:
        meta_text = json.dumps(full_meta)
    except TypeError as exc:
        raise ValueError(f"{path}: meta must be JSON-serialisable ({exc})") from exc
    if path.suffix != ".npz":
        raise ValueError(f"{path}: map files must end in .npz")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, q_grad2d=_encode(q), meta=np.array(meta_text))
    return path.stat().st_size


def _open(path: str | os.PathLike):
    path = Path(path)
    if not path.is_file():
        raise SegStorageError(f"{path}: no such segmentation map; run the make_seg_maps stage")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise SegStorageError(f"{path}: unreadable segmentation map ({exc}); {_FIX}") from exc


def _meta_of(path, npz) -> dict:
    try:
        meta = json.loads(str(npz["meta"][()]))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise SegStorageError(f"{path}: segmentation map without readable meta ({exc}); {_FIX}") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise SegStorageError(
            f"{path}: map format version {meta.get('format_version')!r}, this code reads {FORMAT_VERSION}; {_FIX}"
        )
    return meta


def read_seg_meta(path: str | os.PathLike) -> dict:
    """The meta dict of a map file (reads only the small `meta` member)."""
    with _open(path) as npz:
        return _meta_of(path, npz)


def load_quantized(path: str | os.PathLike) -> np.ndarray:
    """uint8 (8, H, W) integers summing to 255 per pixel, as stored (checked)."""
    with _open(path) as npz:
        meta = _meta_of(path, npz)
        try:
            coded = npz["q_grad2d"]
        except (KeyError, ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise SegStorageError(f"{path}: map data unreadable ({exc}); {_FIX}") from exc
    q = _decode(coded)
    if q.shape != (NUM_CLASSES, meta.get("height"), meta.get("width")) or np.any(
        q.sum(axis=0, dtype=np.int32) != LEVELS
    ):
        raise SegStorageError(f"{path}: map data corrupt (shape or per-pixel sums wrong); {_FIX}")
    return q


def load_seg(path: str | os.PathLike, crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Load a map as float32 (8, H, W) probabilities summing to 1 per pixel (each within 1/255 of
    what was saved).

    crop: optional (top, left, height, width) in HR pixels of the map's own image. A training crop
    cut from the LR image at (t, l) with size s matches crop=(4 t, 4 l, 4 s, 4 s) here.
    """
    q = load_quantized(path)
    if crop is not None:
        q = crop_map(q, *crop, what=str(path))
    return dequantize(q)


# --------------------------------------------------------------------------------------------------
# Geometry


def crop_map(probs: np.ndarray, top: int, left: int, height: int, width: int, what: str = "map") -> np.ndarray:
    """probs[:, top:top+height, left:left+width], refusing crops that leave the map."""
    _, h, w = probs.shape
    if min(top, left) < 0 or height < 1 or width < 1 or top + height > h or left + width > w:
        raise ValueError(f"{what}: crop top={top} left={left} {height}x{width} does not fit a {h}x{w} map")
    return probs[:, top : top + height, left : left + width]


def pad_map(probs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad an (8, h, w) map at the bottom/right to (8, height, width) by repeating the edge pixels.

    Used when a segmenter maps a mod-8 (or mod-4) crop of a larger image.
    """
    _, h, w = probs.shape
    if h > height or w > width:
        raise ValueError(f"pad_map: map {h}x{w} is larger than the target {height}x{width}")
    if (h, w) == (height, width):
        return probs
    return np.pad(probs, ((0, 0), (0, height - h), (0, width - w)), mode="edge")


def map_bytes(paths) -> int:
    """Total size in bytes of map files (for the stage's metrics)."""
    return sum(Path(p).stat().st_size for p in paths)
