"""How long a generator's attention will take on this device, measured before a long run starts.

Exact attention compares every LR pixel with every other, so its time grows with N^2 (N = h * w LR
pixels): a 2000x1500 photo to upscale (N = 3,000,000) costs about 540,000 times a 64x64 one.
`estimate_seconds` times one attention call of the model itself on this device, on random features of
`reference_pixels(device)` (or fewer, when every image is smaller), and scales it by (N / measured)^2
per image; approximate tiled attention (`spsagan.models.tiling.tiled_attention`) is scaled per tile.
The trunk and the tail, linear in N, are not counted: for large images the attention dominates.
A GPU gets a larger reference, so that kernel launches do not dominate the timed call; the GPU
estimate has not been compared with a full run.
"""

from __future__ import annotations

import math
import time

import torch

# Large enough that the N^2 work, not the call overhead, dominates; small enough to time in a second.
REFERENCE_PIXELS = {"cpu": 64 * 64, "cuda": 256 * 256}


def reference_pixels(device: torch.device) -> int:
    """LR pixels of the timed attention call on this kind of device."""
    return REFERENCE_PIXELS.get(device.type, REFERENCE_PIXELS["cpu"])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_attention(model: torch.nn.Module, pixels: int) -> tuple[int, float]:
    """(pixels measured, seconds) of one exact `model.apply_attention` call over about `pixels` LR pixels.

    The features (1, C, h, w) are random with h * w close to `pixels`; SPSA gets a uniform prior
    (1, 8, 4h, 4w). A warm-up call comes first (on a GPU of the same size, elsewhere a small one), so
    allocation and kernel selection are not timed.
    """
    device = next(model.parameters()).device
    channels = model.conv_first.out_channels
    height = max(1, math.isqrt(max(1, pixels)))
    width = max(1, round(pixels / height))

    def call(h: int, w: int) -> None:
        feat = torch.randn(1, channels, h, w, generator=torch.Generator().manual_seed(0)).to(device)
        seg = torch.full((1, 8, 4 * h, 4 * w), 1 / 8, device=device)
        model.apply_attention(feat, seg if model.arch.get("attention") == "spsa" else None)

    was_training = model.training
    model.eval()
    try:
        call(height, width) if device.type == "cuda" else call(min(8, height), min(8, width))
        _sync(device)
        start = time.perf_counter()
        call(height, width)
        _sync(device)
        seconds = time.perf_counter() - start
    finally:
        model.train(was_training)
    return height * width, seconds


def estimate_seconds(
    model: torch.nn.Module, shapes: list[tuple[int, int]], attention_tile: int | None = None
) -> tuple[float, int, float]:
    """(estimated seconds for all images, pixels measured, seconds measured) of the attention.

    shapes: (h, w) of each LR image. attention_tile: None for exact attention over each whole image,
    else the side of the tiles that `tiled_attention` computes it in.
    """
    pieces = []  # pixel counts of the separate attention calls
    for h, w in shapes:
        if attention_tile is None:
            pieces.append(h * w)
        else:
            t = attention_tile
            pieces += [min(t, h - r) * min(t, w - c) for r in range(0, h, t) for c in range(0, w, t)]
    device = next(model.parameters()).device
    measured, seconds = time_attention(model, min(max(pieces), reference_pixels(device)))
    return sum(seconds * (n / measured) ** 2 for n in pieces), measured, seconds
