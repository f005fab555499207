"""Image quality metrics with the MATLAB super-resolution protocol (see docs/metrics.md).

`psnr` and `ssim` are full-reference, on the BT.601 Y channel by default; `niqe` is no-reference.
All take numpy images on the 0..255 scale. The re-exports are eager: `niqe` is both a function and
its module's name, and a lazy export would hand out the module once the submodule was imported.
"""

from spsagan.metrics.niqe import niqe
from spsagan.metrics.psnr_ssim import psnr, ssim

__all__ = ["psnr", "ssim", "niqe"]
