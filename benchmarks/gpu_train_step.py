"""Training speed and peak GPU memory per stage and preset, on synthetic data.

Runs a few iterations of PSNR pretraining (RRDB and RRSB) and of GAN training (esrgan, +fa, +spsa,
spsagan) through the real training functions (`train_psnr`, `train_gan`), times the iterations
after a warm-up (CUDA synchronised), and prints a table. Paper size by default: 23 blocks,
64 features, batch 16, 96x96 HR crops, VGG19 to conv5_4 (random weights: same cost).

    python benchmarks/gpu_train_step.py                 # CUDA, paper size, default settings
    python benchmarks/gpu_train_step.py --variants      # also fp32 and NCHW for pretraining
    python benchmarks/gpu_train_step.py --tiny          # CPU smoke run, tiny networks
    python benchmarks/gpu_train_step.py --device cpu --num-feat 32 --num-block 2 --presets esrgan
    python benchmarks/gpu_train_step.py --check-resume  # deterministic resume gives equal weights here?
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dataclasses import replace

from spsagan.device import resolve_device
from spsagan.pipeline.params import load_config
from spsagan.training import SubImageSet, TrainData, train_gan, train_psnr
from spsagan.training.device import describe

# The SPEC's example RRSB mask (prunes x1->conv4, x1->conv5, x2->conv5).
EXAMPLE_MASK = [
    [True],
    [True, True],
    [True, True, True],
    [True, False, True, True],
    [True, False, False, True, True],
]


def synthetic_data(n: int, size: int, seed: int = 0) -> TrainData:
    """n random RGB sub-images (size x size HR) with matching LR (box-downsampled) and soft maps."""
    rng = np.random.default_rng(seed)
    gts = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    lqs = [
        g.reshape(size // 4, 4, size // 4, 4, 3).mean((1, 3)).round().astype(np.uint8) for g in gts
    ]
    segs = []
    for _ in range(n):
        logits = rng.normal(size=(8, size, size)).astype(np.float32)
        e = np.exp(logits - logits.max(0))
        segs.append(e / e.sum(0))
    return TrainData([SubImageSet.from_arrays("synthetic", gts, lqs, segs)], [1.0])


class Timer:
    """on_step hook: synchronised timestamps after the warm-up and after the last iteration (no
    synchronisation in between, so the CPU may run ahead of the GPU as in real training)."""

    def __init__(self, device: torch.device, warmup: int, iters: int):
        self.device, self.marks, self.stamps = device, (warmup, iters), []

    def __call__(self, done: int) -> None:
        if done in self.marks:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.stamps.append(time.perf_counter())

    def rate(self) -> float:
        return (self.marks[1] - self.marks[0]) / (self.stamps[1] - self.stamps[0])


def measure(fn, device: torch.device, warmup: int, iters: int):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    timer = Timer(device, warmup, iters)
    fn(timer)
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    )
    return timer.rate(), peak


class Interrupt(Exception):
    pass


def check_resume(device: torch.device) -> None:
    """Deterministic mode on `device`: a run interrupted mid-way and resumed ends with the same
    weights (torch.equal) as an uninterrupted one, for PSNR pretraining and +spsa GAN training."""
    data = synthetic_data(4, 192)
    common = dict(iters=6, batch_size=2, crop_size=96, lr_step=3, val_every=6, ckpt_every=2, log_every=1, seed=3,
                  deterministic=True)
    psnr_cfg = replace(load_config("pretrain_psnr", "paper"), **common, num_feat=16, num_block=2, num_grow_ch=8,
                       lr=1.0e-3)
    gan_cfg = replace(load_config("train_gan", "paper"), **common, perceptual_layer="conv3_4", perceptual_weights="",
                      d_num_feat=8)

    def interrupt_at(step):
        def hook(done):
            if done == step:
                raise Interrupt

        return hook

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for stage in ("pretrain_psnr", "train_gan"):
            outs = []
            for run, cut in (("full", None), ("cut", 3)):
                root = tmp / stage / run
                if stage == "pretrain_psnr":
                    fn = lambda **kw: train_psnr(
                        psnr_cfg, "esrgan", data, root / "model.pt", root / "ckpt", None, device=device,
                        progress=False, **kw
                    )
                else:
                    fn = lambda **kw: train_gan(
                        gan_cfg,
                        "+spsa",
                        tmp / "pretrain_psnr" / "full" / "model.pt",
                        data,
                        root / "model.pt",
                        root / "ckpt",
                        None,
                        device=device,
                        progress=False,
                        **kw,
                    )
                if cut is not None:
                    try:
                        fn(on_step=interrupt_at(cut))
                    except Interrupt:
                        pass
                summary = fn()
                outs.append(torch.load(root / "model.pt", weights_only=True)["params_g"])
            equal = all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])
            worst = max(
                float((outs[0][k].float() - outs[1][k].float()).abs().max()) for k in outs[0]
            )
            print(
                f"resume check {stage:<14} on {describe(device, False)}: resumed from step "
                f"{summary['resumed_from']}, weights equal: {equal} (max |diff| {worst:.3g})"
            )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tiny", action="store_true", help="tiny networks on CPU (smoke test)")
    ap.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    ap.add_argument("--num-feat", type=int, default=None)
    ap.add_argument("--num-block", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument(
        "--crop", type=int, default=96, help="HR crop (96 or 128: the discriminator's sizes)"
    )
    ap.add_argument("--iters", type=int, default=None, help="timed iterations (after warm-up)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument(
        "--presets", default="esrgan,+fa,+spsa,spsagan", help="GAN presets, comma-separated"
    )
    ap.add_argument("--variants", action="store_true", help="also time fp32 and NCHW pretraining")
    ap.add_argument(
        "--vgg-layer",
        default=None,
        help="perceptual VGG19 layer (default conv5_4; conv2_2 with --tiny)",
    )
    ap.add_argument(
        "--d-feat", type=int, default=None, help="discriminator width (default 64; 8 with --tiny)"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--deterministic", action="store_true")
    ap.add_argument(
        "--check-resume", action="store_true", help="only run the deterministic resume check"
    )
    args = ap.parse_args(argv)
    if args.check_resume:
        check_resume(resolve_device(args.device or "auto"))
        return

    tiny = args.tiny
    device = resolve_device("cpu" if tiny and args.device is None else (args.device or "auto"))
    nf = args.num_feat or (8 if tiny else 64)
    nb = args.num_block or (1 if tiny else 23)
    batch = args.batch or (2 if tiny else 16)
    timed = args.iters or (3 if tiny else 10)
    iters = args.warmup + timed
    layer = args.vgg_layer or ("conv2_2" if tiny else "conv5_4")
    d_feat = args.d_feat or (8 if tiny else 64)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = synthetic_data(max(4, batch), 2 * args.crop)
    common = dict(iters=iters, batch_size=batch, crop_size=args.crop, lr_step=10**9, val_every=iters,
                  ckpt_every=10**9, log_every=iters, seed=0, deterministic=args.deterministic, workers=0)
    # The paper profile's settings (precision, Adam betas, ...) with the benchmark's sizes.
    paper_psnr, paper_gan = load_config("pretrain_psnr", "paper"), load_config("train_gan", "paper")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def pretrain(name, keep, mixed_precision=False, channels_last="auto", note="", **extra):
            cfg = replace(paper_psnr, **{**common, **extra}, num_feat=nf, num_block=nb, num_grow_ch=nf // 2,
                          mixed_precision=mixed_precision, channels_last=channels_last)
            out = tmp / f"psnr-{name}" / "model.pt"
            rate, peak = measure(
                lambda hook: train_psnr(cfg, "spsagan" if keep else "esrgan", data, out,
                                        Path(tempfile.mkdtemp(dir=tmp)), None, keep=keep, device=device,
                                        progress=False, on_step=hook),
                device,
                args.warmup,
                iters,
            )
            label = (
                "bf16" if mixed_precision and device.type == "cuda" else "fp32",
                "NHWC"
                if (channels_last is True or (channels_last == "auto" and device.type == "cuda"))
                else "NCHW",
            )
            rows.append(("pretrain_psnr", name, *label, rate, peak, note))
            return out

        rrdb = pretrain("rrdb", None)
        rrsb = pretrain("rrsb", EXAMPLE_MASK)
        if args.variants and device.type == "cuda":
            pretrain("rrdb", None, mixed_precision=True)
            pretrain("rrdb", None, channels_last=False)
            pretrain("rrdb", None, note="deterministic", deterministic=True)
            pretrain("rrdb", None, note="4 workers", workers=4)

        for preset in [p for p in args.presets.split(",") if p]:
            cfg = replace(paper_gan, **common, perceptual_layer=layer, perceptual_weights="", d_num_feat=d_feat)
            init = rrsb if preset == "spsagan" else rrdb
            out = tmp / f"gan-{preset}" / "model.pt"
            rate, peak = measure(
                lambda hook: train_gan(cfg, preset, init, data, out, Path(tempfile.mkdtemp(dir=tmp)), None,
                                       device=device, progress=False, on_step=hook),
                device,
                args.warmup,
                iters,
            )
            rows.append(
                (
                    "train_gan",
                    preset,
                    "fp32",
                    "NHWC" if device.type == "cuda" else "NCHW",
                    rate,
                    peak,
                    "",
                )
            )

    print(
        f"device: {describe(device, False)}; torch {torch.__version__}; generator {nb} blocks x {nf} features, "
        f"batch {batch}, HR crop {args.crop}; VGG to {layer}, D width {d_feat}; {timed} timed iterations after {args.warmup} warm-up; "
        f"deterministic={args.deterministic}"
    )
    print(
        f"{'stage':<14} {'preset':<8} {'dtype':<5} {'layout':<6} {'it/s':>8} {'ms/it':>8} {'peak GiB':>9}  note"
    )
    for stage, preset, dtype, layout, rate, peak, note in rows:
        print(
            f"{stage:<14} {preset:<8} {dtype:<5} {layout:<6} {rate:>8.2f} {1000 / rate:>8.1f} {peak:>9.2f}  {note}"
        )


if __name__ == "__main__":
    main()
