"""RRDB versus RRSB: parameters, multiply-accumulates and time per image at a fixed mask.

The mask is the SPEC's example, pruning 3 of the 6 candidate connections in every dense block
(x1 -> conv4, x1 -> conv5, x2 -> conv5). Paper-size networks (23 blocks, 64 features), random
weights (speed does not depend on them), batch 1, float32. Runs alternate between the two networks
after a warm-up; the median is reported. The paper's 1080Ti numbers: 0.368 s -> 0.296 s (1.24x).

    python benchmarks/bench_rrsb_speed.py [--device cpu|cuda] [--lq-size 64 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spsagan.models.flops import count_flops
from spsagan.models.rrdb import RRDBNet
from spsagan.pruning import pruned_connections

MASK = [
    [True],
    [True, True],
    [True, True, True],
    [True, False, True, True],
    [True, False, False, True, True],
]


def time_forward(model, lq, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        model(lq)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--lq-size", type=int, nargs=2, default=[64, 64], metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-block", type=int, default=23)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    models = {
        "RRDB": RRDBNet(num_block=args.num_block).to(device).eval(),
        "RRSB": RRDBNet(num_block=args.num_block, keep=MASK).to(device).eval(),
    }
    h, w = args.lq_size
    lq = torch.rand(1, 3, h, w, device=device)
    times = {name: [] for name in models}
    for model in models.values():  # warm-up
        time_forward(model, lq, device)
    for _ in range(args.repeats):
        for name, model in models.items():
            times[name].append(time_forward(model, lq, device))

    where = "CUDA " + torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(
        f"{where}, {args.threads if device.type == 'cpu' else '-'} threads, float32, batch 1, "
        f"LR {h}x{w}, {args.num_block} blocks, median of {args.repeats}"
    )
    print(f"RRSB mask prunes: {', '.join(pruned_connections(MASK))} (every dense block)")
    print(f"{'model':<6} {'params':>12} {'GMACs':>9} {'s / image':>10}")
    stats = {}
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters())
        macs = count_flops(model, tuple(lq.shape))
        stats[name] = (params, macs, statistics.median(times[name]))
        print(f"{name:<6} {params:>12,} {macs / 1e9:>9.2f} {stats[name][2]:>10.4f}")
    flop_ratio = stats["RRDB"][1] / stats["RRSB"][1]
    speedup = stats["RRDB"][2] / stats["RRSB"][2]
    print(
        f"FLOP ratio RRDB/RRSB {flop_ratio:.3f}; measured speed-up {speedup:.3f} "
        f"({100 * (speedup / flop_ratio - 1):+.1f}% from the FLOP ratio)"
    )


if __name__ == "__main__":
    main()
