"""Image quality metrics with the MATLAB super-resolution protocol (see docs/metrics.md).

`psnr` and `ssim` are full-reference, on the BT.601 Y channel by default; `niqe` is no-reference.
All take numpy images on the 0..255 scale.
"""

from spsagan._lazy import lazy_exports

# Public names and their modules, imported on first use (see spsagan/_lazy.py).
_LAZY = {
    "psnr": "spsagan.metrics.psnr_ssim",
    "ssim": "spsagan.metrics.psnr_ssim",
    "niqe": "spsagan.metrics.niqe",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
