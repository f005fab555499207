"""Image quality metrics with the MATLAB super-resolution protocol (see docs/metrics.md).

`psnr` and `ssim` (module `psnr_ssim`) are full-reference, on the BT.601 Y channel by default;
`niqe` (module `no_reference`) is no-reference. All take numpy images on the 0..255 scale.

The re-exports are lazy (`spsagan._lazy`), so importing `psnr` does not import NIQE: a training
stage then does not depend on the NIQE code. NIQE's module is not called `niqe` on purpose: importing
a submodule sets the package attribute of its name, which would shadow the function.
"""

from spsagan._lazy import lazy_exports

_LAZY = {
    "psnr": "spsagan.metrics.psnr_ssim",
    "ssim": "spsagan.metrics.psnr_ssim",
    "niqe": "spsagan.metrics.no_reference",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
