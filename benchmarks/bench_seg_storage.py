"""Size and speed of the segmentation map format (spsagan.segmentation.storage), by hand:

    python benchmarks/bench_seg_storage.py

Two kinds of maps:
- `standin`: the offline stand-in's maps of scikit-image's colour photos (what the demo stores);
- `smooth-softmax`: a proxy for OutdoorSceneSeg's output (its real weights cannot be had offline):
  random logits on the network's stride-8 grid, smoothed, scaled to confident values, upsampled x8
  bilinearly and soft-maxed, at DIV2K size (2040 x 1356), at a 480 x 480 sub-image and at 512 x 384.
Columns: bytes per megapixel of this format, of the same planes deflated without the second-difference
coding, of raw uint8 and of float32 (SFTGAN's `.pth` maps); milliseconds to quantise + write, and to
load (decompress, decode, dequantise) one map. The last lines scale the sizes to the paper's data.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spsagan.segmentation import storage
from spsagan.segmentation.standin import StandInSegmenter

META = {"segmenter": "bench", "segmenter_label": "bench", "semantic": False}


def smooth_softmax(height: int, width: int, seed: int, confidence: float = 12.0) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 8, max(1, height // 64), max(1, width // 64), generator=gen) * confidence
    grid = torch.nn.functional.interpolate(coarse, size=(height // 8, width // 8), mode="bicubic", align_corners=False)
    full = torch.nn.functional.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)
    return torch.softmax(full, dim=1)[0].numpy()


def plain_deflate_size(q: np.ndarray) -> int:
    buf = io.BytesIO()
    np.savez_compressed(buf, q=q)
    return buf.getbuffer().nbytes


def measure(name: str, probs: np.ndarray, tmp: Path, repeats: int = 3) -> dict:
    path = tmp / f"{name}.npz"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        storage.save_seg(path, probs, META)
        times.append(time.perf_counter() - start)
    write_ms = 1e3 * min(times)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loaded = storage.load_seg(path)
        times.append(time.perf_counter() - start)
    load_ms = 1e3 * min(times)
    megapixels = probs.shape[1] * probs.shape[2] / 1e6
    error = float(np.abs(loaded - probs).max())
    return {
        "maps": name,
        "size": f"{probs.shape[2]}x{probs.shape[1]}",
        "B/MP": path.stat().st_size / megapixels,
        "plain deflate B/MP": plain_deflate_size(storage.quantize(probs)) / megapixels,
        "uint8 B/MP": 8e6,
        "float32 B/MP": 32e6,
        "write ms": write_ms,
        "load ms": load_ms,
        "max err x255": error * 255,
    }


def main() -> int:
    from skimage import data

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        standin = StandInSegmenter(seed=0)
        for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina"):
            rows.append(measure(f"standin {name}", standin.segment_one(getattr(data, name)()), tmp))
        for label, (h, w) in {"DIV2K": (1356, 2040), "sub-image": (480, 480), "OST-like": (384, 512)}.items():
            rows.append(measure(f"smooth-softmax {label}", smooth_softmax(h, w, seed=h), tmp))

    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(
            " | ".join(
                f"{v:,.0f}"
                if isinstance(v, float) and k != "max err x255"
                else (f"{v:.3f}" if isinstance(v, float) else str(v))
                for k, v in row.items()
            )
        )
    standin_mean = np.mean([r["B/MP"] for r in rows if r["maps"].startswith("standin")])
    proxy_mean = np.mean([r["B/MP"] for r in rows if r["maps"].startswith("smooth")])
    print(f"\nmean bytes per megapixel: stand-in {standin_mean:,.0f}, smooth-softmax proxy {proxy_mean:,.0f}")
    # Paper scale: SFTGAN's float32 maps of the training data are quoted at over 60 GB, i.e. at least
    # 60e9 / 32 = 1.9 gigapixels; 800 DIV2K images alone are about 2.2 gigapixels.
    for gigapixels in (1.9, 5.0):
        print(
            f"{gigapixels} gigapixels of maps: float32 {gigapixels * 32:.0f} GB, this format "
            f"{gigapixels * proxy_mean / 1e6:.1f} GB (proxy) / {gigapixels * standin_mean / 1e6:.1f} GB (stand-in)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
