"""A training step for the data-parallel tests (tests/test_training_ddp.py), on CPU with gloo.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_trainer.py ROOT JOB[,JOB...] [INIT]

JOB: psnr (tiny L1 pretraining into ROOT/psnr), psnr-paced (the same, paced so that a test can
signal it: see `paced`), gan (tiny +spsa GAN training from
INIT, without the adversarial term: ROOT/gan) or gan-adv (with it: ROOT/gan-adv). Rank 0 writes
the summary to ROOT/<job>.json; every rank writes its trained modules to ROOT/<job>.rank<r>.pt.
Errors print one line and a Preempted run exits 75, as in a step. The configs and data are shared
with the tests; `gpus` is set to the number of processes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent

from spsagan.image import imresize  # noqa: E402
from spsagan.pipeline.params import load_config  # noqa: E402
from spsagan.training import SubImageSet, TrainData, ValImage  # noqa: E402

torch.set_num_threads(1)

_PARAMS = dict(params_path=REPO / "params.yaml", schema_path=REPO / "workflow" / "schemas" / "params.schema.yaml")
PSNR = replace(
    load_config("pretrain_psnr", "demo", **_PARAMS),
    num_feat=8,
    num_block=1,
    num_grow_ch=4,
    iters=12,
    batch_size=4,
    crop_size=32,
    lr=1.0e-3,
    lr_step=6,
    val_every=6,
    ckpt_every=4,
    log_every=2,
    seeds=[5],
    deterministic=True,
)
GAN = replace(
    load_config("train_gan", "demo", **_PARAMS),
    iters=10,
    batch_size=4,
    crop_size=96,
    lr_g=1.0e-4,
    lr_step=5,
    perceptual_layer="conv1_2",
    perceptual_weights="",
    d_num_feat=4,
    val_every=5,
    ckpt_every=4,
    log_every=2,
    seeds=[6],
    deterministic=True,
    w_gan=0.0,
)
GAN_ADV = replace(GAN, w_gan=5.0e-3)
JOBS = {"psnr": PSNR, "psnr-paced": PSNR, "gan": GAN, "gan-adv": GAN_ADV}


def textured(rng, size):
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack(
        [np.sin(x / (5 + c) + rng.random() * 6) * 60 + np.cos(y / (4 + c)) * 50 + 128 for c in range(3)], -1
    )
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def soft_map(rng, size):
    logits = rng.normal(size=(8, size, size))
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def toy_data() -> TrainData:
    """Three 128x128 textured images with maps, and one held-out image (the same in every process)."""
    rng = np.random.default_rng(0)
    gts = [textured(rng, 128) for _ in range(3)]
    train = SubImageSet.from_arrays("toy", gts, [imresize(g, 0.25) for g in gts], [soft_map(rng, 128) for _ in gts])
    val_gt = textured(rng, 48)
    val = [ValImage("val0", imresize(val_gt, 0.25), val_gt, soft_map(rng, 48))]
    return TrainData([train], [1.0], val, segmenter="test-random")


def run(job: str, root: Path, cfg=None, init: Path | None = None, on_step=None) -> dict:
    """Train `job` into root/<folder>/model.pt with checkpoints in root/ckpt and dvclive in root/live-<job>."""
    from spsagan.training import train_gan, train_psnr

    cfg = cfg or JOBS[job]
    folder = job.removesuffix("-paced")
    common = dict(device="cpu", progress=False, on_step=on_step)
    if job.startswith("psnr"):
        return train_psnr(
            cfg, "esrgan", toy_data(), root / folder / "model.pt", root / "ckpt", root / f"live-{folder}", **common
        )
    return train_gan(
        cfg, "+spsa", init, toy_data(), root / folder / "model.pt", root / "ckpt", root / f"live-{folder}", **common
    )


def paced(root: Path):
    """on_step hook: each rank writes its PID to root/rank<r>.pid; rank 0 marks the 3rd iteration in
    root/started; from there the loop slows down, so that a signal arrives before the end."""
    rank = int(os.environ.get("RANK", "0"))

    def hook(done):
        if done == 1:
            (root / f"rank{rank}.pid").write_text(str(os.getpid()))
        if done == 3 and rank == 0:
            (root / "started").write_text(str(done))
        if done >= 3:
            time.sleep(0.5)

    return hook


def keep_final_weights(where: dict) -> None:
    """Make both stages save this rank's trained modules (every entry, buffers too) to where["path"]."""
    from spsagan.training import gan, psnr

    for module in (gan, psnr):

        def fit(run, data, generator, modules, optimizers, train_step, _fit=module.fit):
            summary = _fit(run, data, generator, modules, optimizers, train_step)
            torch.save({name: m.state_dict() for name, m in modules.items()}, where["path"])
            return summary

        module.fit = fit


def main() -> None:
    root, jobs = Path(sys.argv[1]), sys.argv[2].split(",")
    init = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    rank = int(os.environ.get("RANK", "0"))
    where = {}
    keep_final_weights(where)
    for job in jobs:
        cfg = replace(JOBS[job], gpus=int(os.environ.get("WORLD_SIZE", "1")))
        where["path"] = root / f"{job}.rank{rank}.pt"
        summary = run(job, root, cfg, init, on_step=paced(root) if job.endswith("-paced") else None)
        if rank == 0:
            (root / f"{job}.json").write_text(json.dumps(summary))
    print(f"rank {rank}: done", flush=True)


if __name__ == "__main__":
    from spsagan.pipeline.step import main_guard

    main_guard(main)  # as a step runs: one line per error, Preempted exits 75
