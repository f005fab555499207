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
    python benchmarks/gpu_train_step.py --compile       # eager and torch.compile'd, side by side
    python benchmarks/gpu_train_step.py --precisions fp32,tf32,bf16  # float32 (TF32 off), TF32, bf16 autocast
    python benchmarks/gpu_train_step.py --gpus 4        # data-parallel scaling on 1, 2 and 4 GPUs (torchrun)
    python benchmarks/gpu_train_step.py --tiny --gpus 2 --presets +spsa  # the same with CPU processes (gloo)

With --gpus N the script launches itself under torchrun once per world size W in 1, 2, 4, 8 up to N
(W GPUs of this node), with the same global batch (batch / W per process), and prints it/s and the
speed-up over one process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from spsagan.pipeline.params import load_config
from spsagan.runtime import compile_mode, compiler_missing, describe, resolve_device, tf32
from spsagan.training import SubImageSet, TrainData, train_gan, train_psnr

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
    lqs = [g.reshape(size // 4, 4, size // 4, 4, 3).mean((1, 3)).round().astype(np.uint8) for g in gts]
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
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return timer.rate(), peak


class Interrupt(Exception):
    pass


def check_resume(device: torch.device) -> None:
    """Deterministic mode on `device`: a run interrupted mid-way and resumed ends with the same
    weights (torch.equal) as an uninterrupted one, for PSNR pretraining and +spsa GAN training."""
    data = synthetic_data(4, 192)
    common = dict(
        iters=6,
        batch_size=2,
        crop_size=96,
        lr_step=3,
        val_every=6,
        ckpt_every=2,
        log_every=1,
        seed=3,
        deterministic=True,
    )
    psnr_cfg = replace(
        load_config("pretrain_psnr", "paper"), **common, num_feat=16, num_block=2, num_grow_ch=8, lr=1.0e-3
    )
    gan_cfg = replace(
        load_config("train_gan", "paper"), **common, perceptual_layer="conv3_4", perceptual_weights="", d_num_feat=8
    )

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
                    fn = lambda root=root, **kw: train_psnr(
                        psnr_cfg,
                        "esrgan",
                        data,
                        root / "model.pt",
                        root / "ckpt",
                        None,
                        device=device,
                        progress=False,
                        **kw,
                    )
                else:
                    fn = lambda root=root, **kw: train_gan(
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
            worst = max(float((outs[0][k].float() - outs[1][k].float()).abs().max()) for k in outs[0])
            print(
                f"resume check {stage:<14} on {describe(device, False)}: resumed from step "
                f"{summary['resumed_from']}, weights equal: {equal} (max |diff| {worst:.3g})"
            )


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny networks on CPU (smoke test)")
    ap.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    ap.add_argument("--num-feat", type=int, default=None)
    ap.add_argument("--num-block", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None, help="global batch (split over the processes with --gpus)")
    ap.add_argument("--crop", type=int, default=96, help="HR crop (96 or 128: the discriminator's sizes)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations (after warm-up)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--presets", default="esrgan,+fa,+spsa,spsagan", help="GAN presets, comma-separated")
    ap.add_argument("--variants", action="store_true", help="also time NCHW, deterministic and 4-worker pretraining")
    ap.add_argument(
        "--precisions",
        default="fp32",
        help="comma-separated: fp32 (TF32 off), tf32 (float32 convolutions and matmuls in TF32), bf16 (autocast)",
    )
    ap.add_argument("--vgg-layer", default=None, help="perceptual VGG19 layer (default conv5_4; conv2_2 with --tiny)")
    ap.add_argument("--d-feat", type=int, default=None, help="discriminator width (default 64; 8 with --tiny)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--deterministic", action="store_true")
    ap.add_argument("--check-resume", action="store_true", help="only run the deterministic resume check")
    ap.add_argument(
        "--compile", action="store_true", help="time every configuration eager and with torch.compile (compile: true)"
    )
    ap.add_argument(
        "--gpus",
        type=int,
        default=None,
        help="data-parallel scaling: world sizes 1, 2, 4, 8 up to this, each under torchrun",
    )
    ap.add_argument("--scaling-worker", type=Path, default=None, help=argparse.SUPPRESS)  # set by --gpus
    return ap.parse_args(argv)


def sizes(args) -> dict:
    """The benchmark's sizes and device (paper size by default, tiny on CPU with --tiny)."""
    tiny = args.tiny
    timed = args.iters or (3 if tiny else 10)
    return dict(
        device=resolve_device("cpu" if tiny and args.device is None else (args.device or "auto")),
        nf=args.num_feat or (8 if tiny else 64),
        nb=args.num_block or (1 if tiny else 23),
        batch=args.batch or (2 if tiny else 16),
        timed=timed,
        iters=args.warmup + timed,
        layer=args.vgg_layer or ("conv2_2" if tiny else "conv5_4"),
        d_feat=args.d_feat or (8 if tiny else 64),
    )


def precisions(args) -> list[str]:
    """The precisions to time (--precisions); bf16 and TF32 only differ from fp32 on CUDA."""
    chosen = [p for p in args.precisions.split(",") if p]
    unknown = sorted(set(chosen) - {"fp32", "tf32", "bf16"})
    if unknown:
        raise SystemExit(f"--precisions: unknown {unknown}; choose from fp32, tf32, bf16")
    return chosen


def compile_choices(args, device: torch.device) -> list[bool]:
    """[False], or [False, True] with --compile when torch.compile can generate code here."""
    if not args.compile:
        return [False]
    missing = compiler_missing(device)
    if missing:
        print(f"--compile: skipped, torch.compile cannot run on {device} here: {missing}")
        return [False]
    return [False, True]


def time_rows(args, z: dict, workdir: Path, gpus: int = 1) -> list[tuple]:
    """Time each configuration; rows (stage, name, dtype, layout, compiled, it/s, peak GiB, note).

    workdir: models and checkpoints (the same folder for every rank: the GAN's ranks all read the
    pretrained model); gpus: the world size of a torchrun launch (this process is one of its ranks)."""
    device, iters = z["device"], z["iters"]
    data = synthetic_data(max(4, z["batch"]), 2 * args.crop)
    common = dict(
        iters=iters,
        batch_size=z["batch"],
        crop_size=args.crop,
        lr_step=10**9,
        val_every=iters,
        ckpt_every=10**9,
        log_every=iters,
        seed=0,
        deterministic=args.deterministic,
        workers=0,
        gpus=gpus,
    )
    # The paper profile's settings (precision, Adam betas, ...) with the benchmark's sizes.
    paper_psnr, paper_gan = load_config("pretrain_psnr", "paper"), load_config("train_gan", "paper")
    rank_device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if device.type == "cuda" else device
    rows = []
    runs = iter(range(10**6))  # a fresh output and checkpoint folder for every timed run

    def timed_run(train, *head, **kw):
        folder = workdir / f"run{next(runs)}"
        out, ckpt_root = folder / "model.pt", folder / "ckpt"
        rate, peak = measure(
            lambda hook: train(*head, data, out, ckpt_root, None, device=device, progress=False, on_step=hook, **kw),
            rank_device,
            args.warmup,
            iters,
        )
        return rate, peak, out

    def pretrain(name, keep, compiled, precision="fp32", channels_last="auto", note="", **extra):
        mixed_precision = precision == "bf16"
        cfg = replace(
            paper_psnr,
            **{**common, **extra},
            num_feat=z["nf"],
            num_block=z["nb"],
            num_grow_ch=z["nf"] // 2,
            mixed_precision=mixed_precision,
            channels_last=channels_last,
            compile=compiled,
        )
        with tf32(precision == "tf32"):
            rate, peak, out = timed_run(train_psnr, cfg, "spsagan" if keep else "esrgan", keep=keep)
        dtype = precision if device.type == "cuda" else "fp32"
        layout = "NHWC" if channels_last is True or (channels_last == "auto" and device.type == "cuda") else "NCHW"
        rows.append(("pretrain_psnr", name, dtype, layout, compiled, rate, peak, note))
        return out

    for compiled, precision in [(c, p) for c in compile_choices(args, device) for p in precisions(args)]:
        rrdb = pretrain("rrdb", None, compiled, precision)
        rrsb = pretrain("rrsb", EXAMPLE_MASK, compiled, precision)
        if args.variants and device.type == "cuda":
            pretrain("rrdb", None, compiled, channels_last=False)
            pretrain("rrdb", None, compiled, note="deterministic", deterministic=True)
            pretrain("rrdb", None, compiled, note="4 workers", workers=4)

        for preset in [p for p in args.presets.split(",") if p]:
            cfg = replace(
                paper_gan,
                **common,
                perceptual_layer=z["layer"],
                perceptual_weights="",
                d_num_feat=z["d_feat"],
                compile=compiled,
                mixed_precision=precision == "bf16",
            )
            with tf32(precision == "tf32"):
                rate, peak, _ = timed_run(train_gan, cfg, preset, rrsb if preset == "spsagan" else rrdb)
            dtype = precision if device.type == "cuda" else "fp32"
            rows.append(
                ("train_gan", preset, dtype, "NHWC" if device.type == "cuda" else "NCHW", compiled, rate, peak, "")
            )
    return rows


def header(args, z: dict) -> str:
    return (
        f"device: {describe(z['device'], False)}; torch {torch.__version__}; generator {z['nb']} blocks x "
        f"{z['nf']} features, batch {z['batch']}, HR crop {args.crop}; VGG to {z['layer']}, D width "
        f"{z['d_feat']}; {z['timed']} timed iterations after {args.warmup} warm-up; "
        f"deterministic={args.deterministic}"
    )


def print_rows(rows: list[tuple], device: torch.device) -> None:
    mode = compile_mode(device)
    print(
        f"{'stage':<14} {'preset':<8} {'dtype':<5} {'layout':<6} {'compiled':<27} {'it/s':>8} {'ms/it':>8} "
        f"{'peak GiB':>9}  note"
    )
    for stage, preset, dtype, layout, compiled, rate, peak, note in rows:
        label = mode if compiled else "eager"
        print(
            f"{stage:<14} {preset:<8} {dtype:<5} {layout:<6} {label:<27} {rate:>8.2f} {1000 / rate:>8.1f} "
            f"{peak:>9.2f}  {note}"
        )


# --------------------------------------------------------------------------------------------------
# Data-parallel scaling


def without_option(argv: list[str], name: str) -> list[str]:
    """argv without `name VALUE` / `name=VALUE`."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


def scaling(args, z: dict, argv: list[str]) -> None:
    """Launch this script under torchrun for each world size up to --gpus; print it/s and speed-ups."""
    device = z["device"]
    if device.type == "cuda" and torch.cuda.device_count() < args.gpus:
        sys.exit(f"--gpus {args.gpus}: torch sees {torch.cuda.device_count()} CUDA device(s) on this node")
    worlds = [w for w in (1, 2, 4, 8) if w <= args.gpus]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for w in worlds:
            if z["batch"] % w:
                print(f"world size {w}: skipped, the batch {z['batch']} does not split into {w} equal shares")
                continue
            out = Path(tmp) / f"world{w}"
            out.mkdir()
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node",
                str(w),
                str(Path(__file__).resolve()),
                *without_option(argv, "--gpus"),
                "--scaling-worker",
                str(out),
            ]
            print(f"world size {w}: {' '.join(cmd)}", flush=True)
            subprocess.run(cmd, check=True)
            results[w] = [tuple(r) for r in json.loads((out / "rows.json").read_text())]
    print(header(args, z) + "; global batch fixed, split over the processes")
    print(
        f"{'stage':<14} {'preset':<8} {'compiled':<8} {'world size':>10} {'batch/process':>13} {'it/s':>8} "
        f"{'speed-up':>8}"
    )
    base = {r[:2] + (r[4],): r[5] for r in results.get(1, [])}
    for w, rows in results.items():
        for stage, preset, _, _, compiled, rate, _, _ in rows:
            one = base.get((stage, preset, compiled))
            speedup = f"{rate / one:>8.2f}" if one else f"{'-':>8}"
            print(f"{stage:<14} {preset:<8} {str(compiled):<8} {w:>10} {z['batch'] // w:>13} {rate:>8.2f} {speedup}")


def scaling_worker(args, z: dict) -> None:
    """One rank of a --gpus launch: time the configurations in the given folder; rank 0 writes rows.json."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rows = time_rows(args, z, args.scaling_worker, gpus=world)
    if int(os.environ.get("RANK", "0")) == 0:
        (args.scaling_worker / "rows.json").write_text(json.dumps(rows))


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.check_resume:
        check_resume(resolve_device(args.device or "auto"))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    z = sizes(args)
    if args.scaling_worker is not None:
        scaling_worker(args, z)
    elif args.gpus:
        scaling(args, z, argv)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            rows = time_rows(args, z, Path(tmp))
        print(header(args, z))
        print_rows(rows, z["device"])


if __name__ == "__main__":
    main()
