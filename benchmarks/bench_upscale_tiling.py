"""spsagan-upscale's tiled inference: peak memory and time versus input size, and the tiling error.

Part 1 (memory): each (network, LR size, tile) runs `sr_with_model` once in a fresh subprocess, on the
CPU, after a warm-up call on an 8x8 image. Peak = the process's resident-memory high-water mark during
the call minus its resident memory just before it (Linux /proc); the uint8 output is included, the input
image and the network are not.
Tile 0 means untiled. Untiled cases whose estimated need exceeds --max-untiled-gb are skipped.

Part 2 (error): max |tiled - untiled| of the float output ([0, 1] units) and of the uint8 output
(grey levels) versus the overlap, on a real photo's LR (scikit-image `astronaut`), for a random
network and for the same network briefly trained (L1, batch 8 of 64x64 crops of scikit-image photos,
--train-steps steps), whose effective receptive field is wider than a random one's.

    python benchmarks/bench_upscale_tiling.py [--sizes 400x300 2000x1500] [--nets tiny demo] [--parts memory error]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

NETS = {  # RRDBNet sizes: tiny (tests), demo profile, paper profile
    "tiny": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "demo": {"num_feat": 32, "num_block": 2, "num_grow_ch": 16},
    "paper": {"num_feat": 64, "num_block": 23, "num_grow_ch": 32},
}

CHILD = r"""
import json, sys, time
import numpy as np
import torch
from spsagan.evaluation import sr_with_model
from spsagan.models.presets import build_generator, preset_arch

net, height, width, tile, overlap = json.loads(sys.argv[1]), *map(int, sys.argv[2:6])
torch.set_num_threads(int(sys.argv[6]))
torch.manual_seed(0)
model = build_generator(preset_arch("esrgan", **net)).eval()
lq = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def rss_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])


sr_with_model(model, lq[:8, :8])  # warm-up: one-off allocations of the conv backend are not counted
open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark
before = rss_kb("VmRSS") * 1024
start = time.perf_counter()
sr = sr_with_model(model, lq, tile=tile or None, tile_overlap=overlap)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_bytes": rss_kb("VmHWM") * 1024 - before, "shape": sr.shape}))
"""


def run_case(net: str, height: int, width: int, tile: int, overlap: int, threads: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            json.dumps(NETS[net]),
            str(height),
            str(width),
            str(tile),
            str(overlap),
            str(threads),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def untiled_gb(net: str, height: int, width: int) -> float:
    """Rough untiled need: about four float32 feature maps alive at the x4 output size."""
    return 4 * NETS[net]["num_feat"] * 16 * height * width * 4 / 1e9


def memory_table(args) -> None:
    print(
        f"Part 1: sr_with_model on the CPU, {args.threads} thread(s), float32, random RRDBNet; "
        "peak = resident memory above what was in use before the call"
    )
    print(f"{'net':>5} {'LR size':>10} {'tile':>5} {'overlap':>7} | {'peak GB':>8} {'seconds':>8}")
    for net in args.nets:
        for size in args.sizes:
            width, height = map(int, size.split("x"))
            for tile in (0, *args.tiles):
                if tile == 0 and untiled_gb(net, height, width) > args.max_untiled_gb:
                    print(
                        f"{net:>5} {size:>10} {'none':>5} {'-':>7} | {'skip':>8} {'-':>8}  "
                        f"(about {untiled_gb(net, height, width):.0f} GB)"
                    )
                    continue
                r = run_case(net, height, width, tile, args.overlap, args.threads)
                cells = f"{r['error'][:40]}" if "error" in r else f"{r['peak_bytes'] / 1e9:>8.3f} {r['seconds']:>8.1f}"
                print(f"{net:>5} {size:>10} {tile or 'none':>5} {args.overlap if tile else '-':>7} | {cells}")


def _train_briefly(model, steps: int, seed: int = 0):
    """L1 on random 64x64 crops of scikit-image photos and their MATLAB-bicubic LR (Adam, lr 1e-3)."""
    import numpy as np
    import torch
    from skimage import data

    from spsagan.image import make_lq, to_tensor

    rng = np.random.default_rng(seed)
    photos = [data.chelsea(), data.coffee(), data.rocket()]
    pairs = [(p, make_lq(p)) for p in photos]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        gts, lqs = [], []
        for _ in range(8):
            gt, lq = pairs[rng.integers(len(pairs))]
            top, left = (int(rng.integers(0, (s - 64) // 4 + 1)) * 4 for s in gt.shape[:2])
            gts.append(to_tensor(gt[top : top + 64, left : left + 64]))
            lqs.append(to_tensor(lq[top // 4 : top // 4 + 16, left // 4 : left // 4 + 16]))
        loss = torch.nn.functional.l1_loss(model(torch.stack(lqs)), torch.stack(gts))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def error_table(args) -> None:
    import numpy as np
    import torch
    from skimage import data

    from spsagan.evaluation import sr_with_model
    from spsagan.image import make_lq, to_tensor
    from spsagan.models import tiling
    from spsagan.models.presets import build_generator, preset_arch

    torch.set_num_threads(args.threads)
    lq = make_lq(data.astronaut())[:96, :128]  # 96 x 128 LR
    x = to_tensor(lq)[None]
    print(
        f"\nPart 2: tiling error on astronaut's LR ({lq.shape[0]}x{lq.shape[1]}), tile {args.error_tile}, "
        "demo-size RRDBNet (2 blocks, 32 features; receptive radius 34 LR pixels)"
    )
    print(
        f"{'network':>28} {'overlap':>7} | {'max |float|':>11} {'mean |float|':>12} | "
        f"{'max grey':>8} {'pixels moved':>12}"
    )
    torch.manual_seed(0)
    model = build_generator(preset_arch("esrgan", **NETS["demo"])).eval()
    for label, steps in (("random", 0), (f"trained {args.train_steps} steps", args.train_steps)):
        if steps:
            started = time.perf_counter()
            _train_briefly(model, steps)
            label += f" ({time.perf_counter() - started:.0f} s)"
        with torch.no_grad():
            full = model(x)
        full8 = sr_with_model(model, lq)
        for overlap in args.error_overlaps:
            with torch.no_grad():
                tiled = tiling.tiled_forward(model, x, None, args.error_tile, overlap)
            diff = (tiled - full).abs()
            grey = np.abs(
                sr_with_model(model, lq, tile=args.error_tile, tile_overlap=overlap).astype(int) - full8.astype(int)
            )
            print(
                f"{label:>28} {overlap:>7} | {float(diff.max()):>11.2e} {float(diff.mean()):>12.2e} | "
                f"{grey.max():>8} {100 * (grey > 0).mean():>11.3f}%"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["tiny", "demo"], choices=sorted(NETS))
    parser.add_argument("--sizes", nargs="+", default=["400x300", "1000x750", "2000x1500"], help="LR WxH")
    parser.add_argument("--tiles", type=int, nargs="+", default=[128], help="tile sides to run besides untiled")
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-untiled-gb", type=float, default=6.0)
    parser.add_argument("--parts", nargs="+", default=["memory", "error"], choices=["memory", "error"])
    parser.add_argument("--error-tile", type=int, default=32)
    parser.add_argument("--error-overlaps", type=int, nargs="+", default=[0, 2, 4, 8, 16, 34])
    parser.add_argument("--train-steps", type=int, default=1500, help="about 7 min on one shared CPU core")
    args = parser.parse_args()
    if "memory" in args.parts:
        memory_table(args)
    if "error" in args.parts:
        error_table(args)


if __name__ == "__main__":
    main()
