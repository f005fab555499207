"""Evaluation's per-image time with exact attention: the four presets on one large test image.

Run by hand:  python benchmarks/bench_eval_attention.py [--hr 1000] [--device cuda] [--budget-mb 512]
              python benchmarks/bench_eval_attention.py --tiny     # CPU smoke run: 2 blocks, a 256-pixel image

Builds each preset's generator at paper size (23 blocks, 64 features; random weights: the same cost),
an HR side of `--hr` pixels (LR side hr/4, so N = (hr/4)^2 attention positions) with a random prior,
and times one forward pass as evaluate does (`spsagan.timing.time_generator`: warm-up, synchronised,
median of repeats) with the attention maps bounded by `--budget-mb` (evaluate.max_attention_mb).
Attention is exact at every budget; only memory and time change. Prints time, N and peak memory.
"""

from __future__ import annotations

import argparse

import torch

from spsagan.models.attention import set_attention_budget
from spsagan.models.presets import build_generator, preset_arch
from spsagan.runtime import describe, resolve_device
from spsagan.timing import time_generator

# The SPEC's example RRSB mask (prunes x1->conv4, x1->conv5, x2->conv5), as gpu_train_step.py.
EXAMPLE_MASK = [[True], [True, True], [True, True, True], [True, False, True, True], [True, False, False, True, True]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hr", type=int, default=None, help="HR side in pixels (default 1000; 256 with --tiny)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--budget-mb", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presets", default="esrgan,+fa,+spsa,spsagan")
    parser.add_argument("--tiny", action="store_true", help="2 blocks x 16 features on the CPU")
    args = parser.parse_args()
    device = resolve_device("cpu" if args.tiny and args.device is None else (args.device or "auto"))
    hr = args.hr or (256 if args.tiny else 1000)
    lr = hr // 4
    nf, nb = (16, 2) if args.tiny else (64, 23)
    lq = torch.rand(1, 3, lr, lr, generator=torch.Generator().manual_seed(0))
    seg = torch.softmax(torch.randn(1, 8, 4 * lr, 4 * lr, generator=torch.Generator().manual_seed(1)), dim=1)
    print(
        f"device: {describe(device, False)}; torch {torch.__version__}; {nb} blocks x {nf} features; "
        f"HR {4 * lr}x{4 * lr}, LR {lr}x{lr} (N = {lr * lr:,}); attention budget {args.budget_mb} MiB; "
        f"median of {args.repeats} after 1 warm-up"
    )
    print(f"{'preset':<8} {'time (s)':>9} {'peak GiB':>9}")
    for preset in args.presets.split(","):
        keep = EXAMPLE_MASK if preset == "spsagan" else None
        model = build_generator(preset_arch(preset, nf, nb, nf // 2, keep=keep)).to(device)
        set_attention_budget(model, args.budget_mb << 20)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        prior = seg if model.arch.get("attention") == "spsa" else None
        t = time_generator(model, lq, prior, warmup=1, repeats=args.repeats)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        print(f"{preset:<8} {t['median_s']:>9.3f} {peak:>9.2f}")
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
