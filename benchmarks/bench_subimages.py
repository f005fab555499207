"""Sub-images vs full images for training crops: time per 16-crop batch and bytes on disk.

Run by hand:  python benchmarks/bench_subimages.py [--images 6] [--batches 5] [--size 480 --step 240]

Builds DIV2K-sized (1356 x 2040) HR images from scikit-image's bundled photos (upscaled, plus
mild noise so the PNGs compress like real photos rather than like smooth upscales), runs
make_pairs once without and once with sub-images, then draws batches of 16 aligned
96 x 96 / 24 x 24 crops the way a training loader does without caching: pick an image (or
sub-image) at random, read its HR and LR PNGs, cut a random aligned window.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from spsagan.data.demo import DEMO_IMAGES, demo_image
from spsagan.data.pairs import make_pairs
from spsagan.image import read_image, write_image

HR_SHAPE = (1356, 2040)  # DIV2K's most common size
CROP, SCALE, BATCH = 96, 4, 16


def synthetic_div2k(folder: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    names = list(DEMO_IMAGES)
    for i in range(count):
        img = cv2.resize(demo_image(names[i % len(names)]), HR_SHAPE[::-1], interpolation=cv2.INTER_CUBIC)
        noisy = img.astype(np.int16) + rng.normal(0, 4, img.shape).round().astype(np.int16)
        write_image(folder / f"{i:04d}.png", np.clip(noisy, 0, 255).astype(np.uint8))


def draw_batch(pairs: list[tuple[Path, Path]], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    gts, lqs = [], []
    for _ in range(BATCH):
        hr_path, lr_path = pairs[rng.integers(len(pairs))]
        gt, lq = read_image(hr_path, gray="rgb"), read_image(lr_path, gray="rgb")
        top = rng.integers(0, (gt.shape[0] - CROP) // SCALE + 1) * SCALE
        left = rng.integers(0, (gt.shape[1] - CROP) // SCALE + 1) * SCALE
        gts.append(gt[top : top + CROP, left : left + CROP])
        lqs.append(lq[top // SCALE : (top + CROP) // SCALE, left // SCALE : (left + CROP) // SCALE])
    return np.stack(gts), np.stack(lqs)


def time_batches(folder: Path, batches: int, seed: int = 0) -> list[float]:
    pairs = [(p, folder / "LR_x4" / p.name) for p in sorted((folder / "HR").glob("*.png"))]
    rng = np.random.default_rng(seed)
    draw_batch(pairs, rng)  # warm-up (imports, file cache)
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        draw_batch(pairs, rng)
        times.append(time.perf_counter() - start)
    return times


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--step", type=int, default=240)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthetic_div2k(tmp / "HR", args.images)
        start = time.perf_counter()
        make_pairs(tmp / "HR", tmp / "full", gray="rgb")
        t_full = time.perf_counter() - start
        start = time.perf_counter()
        summary = make_pairs(
            tmp / "HR", tmp / "subs", gray="rgb", subimage_size=args.size, subimage_step=args.step, min_size=CROP
        )
        t_sub = time.perf_counter() - start
        full_times = time_batches(tmp / "full", args.batches)
        sub_times = time_batches(tmp / "subs" / "sub", args.batches)
        full_bytes = folder_bytes(tmp / "full")
        sub_bytes = folder_bytes(tmp / "subs" / "sub")
    n = args.images
    print(
        f"{n} HR images of {HR_SHAPE[0]} x {HR_SHAPE[1]}; sub-images {args.size}/{args.step} "
        f"({summary['subimages']} = {summary['subimages'] / n:.0f} per image); batch of {BATCH} crops "
        f"{CROP}/{CROP // SCALE}; median of {args.batches} batches"
    )
    print(f"{'layout':<22}{'make_lr s/img':>14}{'ms / batch':>12}{'MB / img (HR+LR)':>18}")
    print(
        f"{'full images':<22}{t_full / n:>14.2f}{1e3 * statistics.median(full_times):>12.0f}"
        f"{full_bytes / n / 1e6:>18.2f}"
    )
    print(
        f"{'sub-images':<22}{t_sub / n:>14.2f}{1e3 * statistics.median(sub_times):>12.0f}{sub_bytes / n / 1e6:>18.2f}"
    )
    print(
        f"speed-up per batch {statistics.median(full_times) / statistics.median(sub_times):.1f}x, "
        f"disk {sub_bytes / full_bytes:.2f}x the full images"
    )


if __name__ == "__main__":
    main()
