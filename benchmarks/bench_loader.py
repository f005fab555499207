"""The training data loader's throughput against the training step's appetite, at the paper's batch.

Run by hand:  python benchmarks/bench_loader.py [--images 4] [--batches 40] [--workers 0,2,4,8] [--appetite 9.4]

Builds DIV2K-sized photos (as bench_subimages.py), cuts them into the paper's 480/240 sub-images with
`make_pairs`, writes a segmentation map per sub-image (the GAN's SPSA presets read them), then builds
batches of 16 aligned 96/24 crops through the real loader (`spsagan.training.data.batches`, the
DataLoader the trainers use) with 0..8 worker processes, and prints batches per second. The step's
appetite is the training rate in it/s (from benchmarks/gpu_train_step.py on the same machine): a
loader below it starves the GPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_subimages import synthetic_div2k

from spsagan.data.pairs import make_pairs
from spsagan.segmentation.storage import save_seg
from spsagan.training.data import SubImageSet, TrainData, batches

CROP, BATCH = 96, 16
SEG_META = {"segmenter": "synthetic", "segmenter_label": "synthetic (benchmark)", "semantic": False}


def synthetic_maps(sub: Path, seg_sub: Path, seed: int = 0) -> None:
    """A smooth random 8-class map for every HR sub-image (the size and compression of real priors)."""
    rng = np.random.default_rng(seed)
    seg_sub.mkdir(parents=True, exist_ok=True)
    for hr in sorted((sub / "HR").glob("*.png")):
        coarse = rng.normal(size=(8, 8, 8)).astype(np.float32) * 4
        logits = np.kron(coarse, np.ones((60, 60), np.float32))  # 480 x 480
        probs = np.exp(logits - logits.max(0))
        save_seg(seg_sub / f"{hr.stem}.npz", probs / probs.sum(0), SEG_META)


def rate(data: TrainData, workers: int, n: int, with_seg: bool) -> float:
    """Batches per second over `n` batches after the first (worker start-up excluded)."""
    sampler = data.sampler(BATCH, seed=0)
    stream = batches(data, sampler, CROP, with_seg, 0, n + 1, workers=workers)
    next(stream)
    start = time.perf_counter()
    for _ in stream:
        pass
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", default="0,2,4,8")
    parser.add_argument("--appetite", type=float, default=None, help="the training step's it/s to compare with")
    args = parser.parse_args()
    workers = [w for w in map(int, args.workers.split(",")) if w <= (os.cpu_count() or 1)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthetic_div2k(tmp / "HR", args.images)
        make_pairs(tmp / "HR", tmp / "set", gray="rgb", subimage_size=480, subimage_step=240, min_size=CROP)
        synthetic_maps(tmp / "set" / "sub", tmp / "seg" / "sub")
        print(
            f"{args.images} DIV2K-sized photos, 480/240 sub-images; batch {BATCH} of {CROP}/{CROP // 4} crops; "
            f"{args.batches} batches after the first; {os.cpu_count()} CPUs"
        )
        print(f"{'workers':>7} {'with maps':>9} {'batches/s':>10}" + ("  vs appetite" if args.appetite else ""))
        for with_seg in (False, True):
            # cache_mb=0: every crop is decoded from its PNG, as on a training set too large to cache.
            subset = SubImageSet.from_dir("set", tmp / "set", tmp / "seg" if with_seg else None, cache_mb=0)
            data = TrainData([subset], [1.0])
            for w in workers:
                r = rate(data, w, args.batches, with_seg)
                ratio = f"  {r / args.appetite:.2f}x" if args.appetite else ""
                print(f"{w:>7} {str(with_seg):>9} {r:>10.1f}{ratio}")


if __name__ == "__main__":
    main()
