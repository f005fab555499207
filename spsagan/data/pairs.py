"""The make_lr stage's library: mod-cropped HR, MATLAB-bicubic LR, and optional training sub-images.

For each HR image (read with `spsagan.image.read_image`, whose rules convert gray, gray+alpha,
RGBA, palette and 16-bit files; training sets pass gray="rgb", test sets gray="keep"):

    hr = modcrop(image, scale)           # drop the last H % scale rows and W % scale columns
    lq = make_lq(hr, scale)              # imresize(hr, 1 / scale): MATLAB bicubic, uint8 rounding
    <out>/HR/<name>.png, <out>/LR_x<scale>/<name>.png

Sub-images (training sets; `subimage_size` given): square HR windows of `subimage_size`, every
`subimage_step` pixels down and across, plus a last window flush with the bottom/right edge so the
whole image is covered (BasicSR's extract_subimages with threshold 0). Every offset is a multiple of
`scale`, and each LR sub-image is cut from the full image's LR at offset / scale, so it is
pixel-identical to the corresponding region of the full LR (no new border effects). Written to
`<out>/sub/HR/<name>_s<k>.png`, `<out>/sub/LR_x<scale>/<name>_s<k>.png`, and `<out>/sub/index.csv`
(columns sub, source, top, left, size; HR pixels in the mod-cropped image).

Small images: an image whose mod-cropped height or width is below `min_size` (the training crop
size; at least `scale`) is rejected with an error naming it (or skipped with too_small="skip").
An image at least `min_size` but smaller than `subimage_size` gets square sub-images of side
min(H, W) instead, tiled the same way (its `size` column says so).

Everything is written into a temporary folder renamed to `out` at the end: a failure leaves `out`
as it was.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from spsagan.atomic import atomic_dir
from spsagan.errors import ConfigError
from spsagan.image import list_images, make_lq, modcrop, read_image, write_image

INDEX_COLUMNS = ("sub", "source", "top", "left", "size")


def subimage_positions(length: int, size: int, step: int) -> list[int]:
    """Window starts covering [0, length): 0, step, 2*step, ... plus length - size if the end is not reached."""
    if length < size:
        return []
    starts = list(range(0, length - size + 1, step))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def plan_subimages(height: int, width: int, size: int, step: int) -> list[tuple[int, int, int]]:
    """(top, left, side) of every sub-image of an HR image; side = min(size, height, width)."""
    side = min(size, height, width)
    return [
        (top, left, side)
        for top in subimage_positions(height, side, step)
        for left in subimage_positions(width, side, step)
    ]


def make_pairs(
    hr_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    scale: int = 4,
    gray: str = "keep",
    subimage_size: int | None = None,
    subimage_step: int | None = None,
    min_size: int = 0,
    too_small: str = "error",
    workers: int = 1,
    progress: bool = False,
    sources: dict[str, str] | None = None,
    source_dir: str | None = None,
) -> dict:
    """Write HR/LR pairs (and sub-images) for every image in `hr_dir` into `out_dir`; return a summary dict.

    scale: integer downscaling factor (4 for this project); LR folder is `LR_x<scale>`.
    gray: "keep" (test sets: gray stays 1-channel) or "rgb" (training sets: gray replicated to 3).
    subimage_size / subimage_step: HR side and stride of sub-images, multiples of `scale`
    (step defaults to half the size, rounded down to a multiple of `scale`); None: no sub-images.
    min_size: smallest allowed mod-cropped side, normally the training HR crop (e.g. 96).
    too_small: "error" (default) or "skip" for images below min_size.
    workers: processes to use (1 = in this process).
    sources / source_dir: what the user calls an HR file (its name -> the user's own file) and the folder
    they imported (download_data's provenance): messages then name those, not the pipeline's copy.
    """
    min_side = max(int(min_size), scale)
    _check_args(scale, gray, subimage_size, subimage_step, min_side, too_small, workers)
    if subimage_size is not None and subimage_step is None:
        subimage_step = max(scale, subimage_size // 2 // scale * scale)
    files = list(list_images(hr_dir, hint="run the download_data stage first").values())
    small = _too_small(files, scale, min_side)
    if small and too_small == "error":
        sources = sources or {}
        listed = "; ".join(f"{sources.get(p.name, p)} ({h}x{w} after mod-crop)" for p, h, w in small[:10])
        where = source_dir or hr_dir
        more = f" and {len(small) - 10} more" if len(small) > 10 else ""
        # Advice a pipeline user can follow: min_size is make_lr.min_size (training sets only); below the
        # scale (any set) an image cannot be downscaled at all. `too_small` is a library argument.
        fix = (
            f"remove them from {where} or lower make_lr.min_size (the smallest training crop)"
            if min_side > scale
            else f"remove them from {where}: an image must be at least {scale} px to be downscaled x{scale}"
        )
        raise ConfigError(
            f"{len(small)} HR image(s) smaller than {min_side} px on a side: {listed}{more}; {fix} "
            "(library callers may pass too_small='skip')"
        )
    skipped = {p for p, _, _ in small}
    jobs = [(str(p), p.stem, scale, gray, subimage_size, subimage_step) for p in files if p not in skipped]
    if not jobs:
        raise ConfigError(f"{hr_dir}: every image is smaller than {min_side} px on a side; nothing to do")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        results = _run(jobs, tmp, workers, progress)
        if subimage_size is not None:
            (tmp / "sub").mkdir(exist_ok=True)
            write_index(index_path(tmp), [row for result in results for row in result["rows"]])
    n_bytes = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return {
        "images": len(results),
        "subimages": sum(len(r["rows"]) for r in results) if subimage_size is not None else 0,
        "gray_images": [r["name"] for r in results if r["gray"]],
        "skipped_too_small": [p.name for p, _, _ in small],
        "scale": scale,
        "gray": gray,
        "subimage_size": subimage_size,
        "subimage_step": subimage_step,
        "min_size": min_side,
        "hr_pixels": sum(r["pixels"] for r in results),
        "bytes": n_bytes,
    }


def _check_args(scale, gray, size, step, min_side, too_small, workers) -> None:
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if gray not in ("keep", "rgb"):
        raise ValueError(f"gray must be 'keep' (test sets) or 'rgb' (training sets), got {gray!r}")
    if too_small not in ("error", "skip"):
        raise ValueError(f"too_small must be 'error' or 'skip', got {too_small!r}")
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if size is None:
        if step is not None:
            raise ValueError("subimage_step given without subimage_size")
        return
    if size % scale or size < min_side:
        raise ValueError(
            f"subimage_size must be a multiple of scale={scale} and at least min_size={min_side}, got {size}"
        )
    if step is not None and (step % scale or step < scale):
        raise ValueError(f"subimage_step must be a positive multiple of scale={scale}, got {step}")


def _too_small(files: list[Path], scale: int, min_side: int) -> list[tuple[Path, int, int]]:
    """Files whose mod-cropped side is below min_side, judged from the header (unreadable ones pass here
    and fail later in read_image with its own message)."""
    from PIL import Image

    small = []
    for path in files:
        try:
            with Image.open(path) as im:
                w, h = im.size
        except (OSError, SyntaxError, ValueError):
            continue
        h, w = h - h % scale, w - w % scale
        if min(h, w) < min_side:
            small.append((path, h, w))
    return small


def _run(jobs: list[tuple], tmp: Path, workers: int, progress: bool) -> list[dict]:
    from tqdm import tqdm

    bar = dict(total=len(jobs), desc="make_lr", unit="img", disable=not progress, leave=False)
    if workers == 1 or len(jobs) <= 1:
        return [_make_one(job, tmp) for job in tqdm(jobs, **bar)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(_make_one, jobs, [tmp] * len(jobs), chunksize=4), **bar))


def _make_one(job: tuple, tmp: Path) -> dict:
    """Process one HR file; return its name, gray flag, pixel count and sub-image index rows."""
    path, name, scale, gray, size, step = job
    hr = modcrop(read_image(path, gray=gray), scale)
    lq = make_lq(hr, scale)
    lr_folder = f"LR_x{scale}"
    write_image(tmp / "HR" / f"{name}.png", hr)
    write_image(tmp / lr_folder / f"{name}.png", lq)
    rows = []
    if size is not None:
        for k, (top, left, side) in enumerate(plan_subimages(hr.shape[0], hr.shape[1], size, step), start=1):
            sub = f"{name}_s{k:03d}"
            write_image(tmp / "sub" / "HR" / f"{sub}.png", hr[top : top + side, left : left + side])
            write_image(tmp / "sub" / lr_folder / f"{sub}.png", lr_crop(lq, top, left, side, scale))
            rows.append((sub, name, top, left, side))
    return {"name": name, "gray": hr.ndim == 2, "pixels": int(hr.shape[0] * hr.shape[1]), "rows": rows}


def index_path(set_dir: str | os.PathLike) -> Path:
    """Where the sub-image index of one make_lr training set lives: `<set_dir>/sub/index.csv`."""
    return Path(set_dir) / "sub" / "index.csv"


def write_index(path: str | os.PathLike, rows) -> None:
    """The one writer of a sub-image index: rows of (sub, source, top, left, size)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(INDEX_COLUMNS)
        writer.writerows(rows)


def read_index(path: str | os.PathLike) -> list[dict]:
    """The one reader of a sub-image index: rows as dicts (sub, source: str; top, left, size: int).

    Checks the columns, that every number is an integer and that no sub-image is listed twice;
    any problem names the file and line and says to rerun make_lr.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no sub-image index; run the make_lr stage for this training set")
    rows, seen = [], set()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != INDEX_COLUMNS:
            raise ValueError(
                f"{path}: expected columns {','.join(INDEX_COLUMNS)}, got {reader.fieldnames}; rerun the make_lr stage"
            )
        for line, r in enumerate(reader, start=2):
            try:
                row = {"sub": r["sub"], "source": r["source"], **{k: int(r[k]) for k in ("top", "left", "size")}}
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path} line {line}: top, left and size must be integers, got "
                    f"{[r.get(k) for k in ('top', 'left', 'size')]}; rerun the make_lr stage"
                ) from None
            if row["sub"] in seen:
                raise ValueError(f"{path} line {line}: sub-image {row['sub']} listed twice; rerun the make_lr stage")
            seen.add(row["sub"])
            rows.append(row)
    return rows


def lr_crop(lq: np.ndarray, top: int, left: int, size: int, scale: int = 4) -> np.ndarray:
    """The LR region matching HR window (top, left, size): lq[top/s : (top+size)/s, left/s : (left+size)/s]."""
    if top % scale or left % scale or size % scale:
        raise ValueError(f"HR window ({top}, {left}, {size}) is not aligned to scale {scale}")
    return lq[top // scale : (top + size) // scale, left // scale : (left + size) // scale]
