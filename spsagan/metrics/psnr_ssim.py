"""PSNR and SSIM with the MATLAB super-resolution protocol.

Images are numpy `(H, W, 3)` RGB or `(H, W)` gray, uint8 or float on the 0..255 scale; both images
of a pair have the same shape. Anything else (a float image in [0, 1], values outside 0..255, other
dtypes) raises ValueError (`spsagan.metrics.scale`). Steps, in order:

1. crop `crop_border` pixels from every side;
2. with `test_y_channel=True`, RGB becomes MATLAB's BT.601 luma Y in [16, 235] (float64, not
   rounded); a 2-D gray image is used as it is, never expanded to RGB;
3. compute in float64 with peak value L = 255.

SSIM is Wang et al.'s `ssim_index`: 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
local statistics over the 'valid' region only (no padding), no downsampling; with
`test_y_channel=False` it is the mean of the per-channel SSIMs.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

from spsagan.image import rgb_to_y
from spsagan.metrics.scale import check_scale

PEAK = 255.0


def _prepare(
    metric: str, img: np.ndarray, ref: np.ndarray, crop_border: int, test_y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    img, ref = np.asarray(img), np.asarray(ref)
    if img.shape != ref.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs reference {ref.shape}; crop or resize them to match")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected (H, W) gray or (H, W, 3) RGB images, got shape {img.shape}")
    check_scale(metric, img, "image")
    check_scale(metric, ref, "reference")
    if int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    c = int(crop_border)
    if c:
        if img.shape[0] <= 2 * c or img.shape[1] <= 2 * c:
            raise ValueError(f"crop_border={c} leaves nothing of a {img.shape[0]}x{img.shape[1]} image")
        img, ref = img[c:-c, c:-c, ...], ref[c:-c, c:-c, ...]
    if test_y_channel and img.ndim == 3:
        return rgb_to_y(img), rgb_to_y(ref)
    return img.astype(np.float64), ref.astype(np.float64)


def psnr(img: np.ndarray, ref: np.ndarray, crop_border: int, test_y_channel: bool = True) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(255^2 / MSE); inf for identical images.

    img, ref: `(H, W, 3)` or `(H, W)`, uint8 or float on the 0..255 scale (a float image in [0, 1]
    is refused). Without Y conversion the MSE is over all channels.
    """
    a, b = _prepare("psnr", img, ref, crop_border, test_y_channel)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(PEAK**2 / mse))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """1-D normalised Gaussian of `size` taps (the SSIM window is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _valid_filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 2-D filter keeping only outputs whose window lies fully inside `x`."""
    r = len(g) // 2
    out = correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    return out[r:-r, r:-r]


def _ssim_single(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two float64 2-D images on the 0..255 scale."""
    g = gaussian_window(11, 1.5)
    if min(a.shape) < len(g):
        raise ValueError(f"SSIM needs images of at least 11x11 after cropping, got {a.shape[0]}x{a.shape[1]}")
    c1 = (0.01 * PEAK) ** 2
    c2 = (0.03 * PEAK) ** 2
    mu_a = _valid_filter(a, g)
    mu_b = _valid_filter(b, g)
    var_a = _valid_filter(a * a, g) - mu_a**2
    var_b = _valid_filter(b * b, g) - mu_b**2
    cov = _valid_filter(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(img: np.ndarray, ref: np.ndarray, crop_border: int, test_y_channel: bool = True) -> float:
    """Structural similarity (Wang et al. 2004, MATLAB `ssim_index` settings), in (-1, 1].

    img, ref: `(H, W, 3)` or `(H, W)`, uint8 or float on the 0..255 scale (a float image in [0, 1]
    is refused). Without Y conversion: mean over channels.
    """
    a, b = _prepare("ssim", img, ref, crop_border, test_y_channel)
    if a.ndim == 2:
        return _ssim_single(a, b)
    return float(np.mean([_ssim_single(a[:, :, k], b[:, :, k]) for k in range(a.shape[2])]))
