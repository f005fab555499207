"""SPSAGAN: segmentation-prior self-attention GAN for x4 super-resolution.

The library behind the reproduction pipeline. Import what you need from its modules:
`spsagan.image` (MATLAB-exact resize), `spsagan.metrics` (PSNR/SSIM/NIQE),
`spsagan.models` (RRDB/RRSB generators, the SPSA layer), `spsagan.pruning`,
`spsagan.segmentation`.
"""

__version__ = "0.1.0"
