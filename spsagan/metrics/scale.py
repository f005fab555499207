"""The one input contract of every metric: images on the 0..255 scale, uint8 or float.

A float image in [0, 1] (a network output not yet multiplied by 255) is the common mistake; the
metrics would score it silently and wrongly (PSNR near 77 dB, SSIM 1.0), so it is refused instead.
An all-zero image is allowed: it reads the same on either scale. Integer images must lie in 0..255
(uint16 data needs converting first), floats in [0, 255] and finite.
"""

from __future__ import annotations

import numpy as np


def check_scale(metric: str, img: np.ndarray, role: str = "image") -> None:
    """Raise ValueError, in one line naming `metric` and what to do, unless `img` is on the 0..255 scale.

    img: a numpy array of any shape; role: which argument it is ("image", "reference") for the message.
    """
    kind = img.dtype.kind
    if kind not in "uif":
        raise ValueError(f"{metric}: expects a uint8 or float {role} on the 0..255 scale, got dtype {img.dtype}")
    if img.size == 0:
        return
    if kind == "f" and not np.isfinite(img).all():
        raise ValueError(f"{metric}: the {role} has NaN or infinite values; expects finite values in 0..255")
    low, high = float(img.min()), float(img.max())
    if low < 0 or high > 255:
        raise ValueError(
            f"{metric}: expects {role} values in 0..255, got {low:g}..{high:g}; clip and convert to uint8 first"
        )
    if kind == "f" and 0 < high <= 1.0:
        raise ValueError(
            f"{metric}: expects images on the 0..255 scale (uint8 or float); got float values in [0, 1] "
            f"in the {role}: multiply by 255"
        )
