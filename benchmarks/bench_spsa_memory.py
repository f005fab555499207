"""SPSA inference: peak memory and time versus N (LR pixels), direct form versus row chunks.

Each (mode, N) runs in a fresh subprocess. CPU: peak = the process's resident-memory high-water
mark during the forward pass minus its resident memory just before it (Linux /proc). CUDA: peak =
torch.cuda.max_memory_allocated during the forward minus the memory allocated before it.
Direct forms whose estimated need exceeds --max-direct-gb are skipped (shown as "skip").

    python benchmarks/bench_spsa_memory.py [--device cpu|cuda] [--sides 24 48 64 96 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, statistics, sys, time
import torch
from spsagan.models.spsa import SPSA

side, mode, device = int(sys.argv[1]), sys.argv[2], sys.argv[3]
threads, repeats = int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
module = SPSA(64).to(device).eval()
with torch.no_grad():
    module.gamma.fill_(0.1)
x = torch.randn(1, 64, side, side, device=device)
seg = torch.softmax(torch.randn(1, 8, 4 * side, 4 * side, device=device), dim=1)
n = side * side
rows = n if mode == "direct" else module.rows_per_chunk(1, n)


def rss_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])


def sync():
    if device == "cuda":
        torch.cuda.synchronize()


times, peak = [], 0
for run in range(repeats + 1):  # run 0 is a warm-up: counted for memory, not timed
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark
        before = rss_kb("VmRSS") * 1024
    start = time.perf_counter()
    with torch.no_grad():
        y = module(x, seg, chunk_rows=rows)
    sync()
    if run > 0:
        times.append(time.perf_counter() - start)
    after = torch.cuda.max_memory_allocated() if device == "cuda" else rss_kb("VmHWM") * 1024
    peak = max(peak, after - before)
    del y
print(json.dumps({"seconds": statistics.median(times), "peak_bytes": peak, "rows": rows}))
"""


def run_case(side: int, mode: str, device: str, threads: int, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(side), mode, device, str(threads), str(repeats)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--sides",
        type=int,
        nargs="+",
        default=[24, 48, 64, 96, 128],
        help="LR side lengths; N = side^2",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    parser.add_argument(
        "--max-direct-gb",
        type=float,
        default=12.0,
        help="skip the direct form above this estimated need (10 N^2 float32 maps)",
    )
    args = parser.parse_args()

    threads = f", {args.threads} CPU threads" if args.device == "cpu" else ""
    print(
        f"SPSA(C=64) inference, batch 1, device {args.device}, float32{threads}, "
        f"median of {args.repeats}; peak = memory above what was in use before the forward"
    )
    print(
        f"{'LR side':>7} {'N':>7} | {'direct GB':>9} {'direct s':>8} | "
        f"{'chunked GB':>10} {'chunked s':>9} {'rows/chunk':>10} | {'direct/chunked mem':>18}"
    )
    for side in args.sides:
        n = side * side
        chunked = run_case(side, "chunked", args.device, args.threads, args.repeats)
        if 10 * 4 * n * n / 1e9 > args.max_direct_gb:
            direct = {"error": "skip"}
        else:
            direct = run_case(side, "direct", args.device, args.threads, args.repeats)

        def cells(r, width_gb, width_s):
            if "error" in r:
                return f"{r['error'][:width_gb]:>{width_gb}} {'-':>{width_s}}"
            return f"{r['peak_bytes'] / 1e9:>{width_gb}.3f} {r['seconds']:>{width_s}.3f}"

        ratio = (
            "-"
            if "error" in direct or "error" in chunked
            else f"{direct['peak_bytes'] / max(chunked['peak_bytes'], 1):.1f}x"
        )
        rows = chunked.get("rows", "-")
        row = f"{side:>7} {n:>7} | {cells(direct, 9, 8)} | {cells(chunked, 10, 9)} {rows:>10}"
        print(f"{row} | {ratio:>18}")


if __name__ == "__main__":
    main()
