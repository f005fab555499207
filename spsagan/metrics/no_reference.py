"""NIQE (Mittal, Soundararajan and Bovik 2013), matching the LIVE MATLAB release `computequality`.

Protocol (the PIRM 2018 convention when `crop_border=4`):

1. RGB images become MATLAB's BT.601 luma Y (0..255 scale); a 2-D gray image is used as it is.
2. `crop_border` pixels are cut from every side, then the values are rounded to integers (MATLAB's
   `rgb2ycbcr` on uint8 returns uint8).
3. The image is cut to a whole number of 96x96 blocks (remainder rows/columns at the end dropped).
4. At each of two scales (the image, then `imresize(image, 0.5)` of the float image, MATLAB style):
   MSCN coefficients (I - mu) / (sigma + 1) with a 7x7 Gaussian window (sigma 7/6) and replicated
   borders (the two local means kept at single precision, which is what reproduces MATLAB); per
   block (96x96, then 48x48) 18 features: the AGGD fit (alpha, mean of the left/right scales) of the
   coefficients, and for the 4 neighbour products (right, down, down-right, up-right, with
   wrap-around inside the block) the AGGD (alpha, mean, left scale, right scale).
5. The 36-feature block vectors give a mean (NaNs ignored) and covariance (rows with NaN dropped);
   NIQE = sqrt((mu_p - mu)^T pinv((S_p + S) / 2) (mu_p - mu)) against the pristine model
   (`niqe_pris_params.npz`, LIVE's `modelparameters.mat`; see NIQE_PARAMS.md).

Lower is better; natural photographs score about 3 to 6.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma as gamma_fn

from spsagan.image import imresize, rgb_to_y
from spsagan.metrics.scale import check_scale

BLOCK = 96
PARAMS_FILE = Path(__file__).with_name("niqe_pris_params.npz")

# AGGD shape search grid of the MATLAB code, 0.2:0.001:10, and its moment ratio r(alpha).
_ALPHAS = np.arange(200, 10001, dtype=np.float64) / 1000.0
_R_ALPHA = gamma_fn(2.0 / _ALPHAS) ** 2 / (gamma_fn(1.0 / _ALPHAS) * gamma_fn(3.0 / _ALPHAS))


@lru_cache(maxsize=1)
def pristine_params() -> tuple[np.ndarray, np.ndarray]:
    """(mu (36,), cov (36, 36)) of the pristine natural-image model, float64."""
    try:
        with np.load(PARAMS_FILE, allow_pickle=False) as data:
            mu = np.asarray(data["mu_pris_param"], dtype=np.float64).reshape(-1)
            cov = np.asarray(data["cov_pris_param"], dtype=np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise RuntimeError(
            f"{PARAMS_FILE}: cannot load the NIQE pristine parameters ({exc}); reinstall spsagan"
        ) from exc
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise RuntimeError(f"{PARAMS_FILE}: expected a 36-vector and a 36x36 matrix, got {mu.shape}, {cov.shape}")
    return mu, cov


def gaussian_window_2d(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """MATLAB `fspecial('gaussian', size, sigma)`: normalised 2-D Gaussian."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def aggd_fit(values: np.ndarray) -> tuple[float, float, float]:
    """Moment-matching asymmetric generalised Gaussian fit -> (alpha, beta_left, beta_right).

    alpha is picked from the MATLAB grid 0.2:0.001:10 (first minimum of the squared ratio error).
    Empty sides give NaN, as in MATLAB.
    """
    v = values.reshape(-1)
    neg, pos = v[v < 0], v[v > 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.mean(neg**2)) if neg.size else np.nan
        right_std = np.sqrt(np.mean(pos**2)) if pos.size else np.nan
        gamma_hat = left_std / right_std
        r_hat = np.mean(np.abs(v)) ** 2 / np.mean(v**2)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
        err = (_R_ALPHA - r_hat_norm) ** 2
    # MATLAB's min skips NaN and returns index 1 when everything is NaN.
    idx = 0 if np.all(np.isnan(err)) else int(np.nanargmin(err))
    alpha = _ALPHAS[idx]
    spread = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
    return float(alpha), float(left_std * spread), float(right_std * spread)


# (rows, cols) shifts of MATLAB's circshift: right, down, down-right, up-right neighbours.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


def block_features(mscn: np.ndarray) -> np.ndarray:
    """18 NIQE features of one block of MSCN coefficients `(b, b)` float64."""
    alpha, bl, br = aggd_fit(mscn)
    feats = [alpha, (bl + br) / 2]
    for shift in _SHIFTS:
        pair = mscn * np.roll(mscn, shift, axis=(0, 1))
        alpha, bl, br = aggd_fit(pair)
        mean = (br - bl) * gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha)
        feats += [alpha, mean, bl, br]
    return np.array(feats, dtype=np.float64)


def _local_mean_single(x: np.ndarray) -> np.ndarray:
    """7x7 Gaussian local mean (replicated borders), its result rounded to float32.

    NIQE is numerically fragile: in flat areas the sign of I - mu is round-off, and the final
    distance goes through a badly conditioned pseudo-inverse. MATLAB's results are reproduced when
    these two filter outputs carry single precision (baboon: 1e-5 off instead of 4e-4 in float64;
    TID2013 I19: 0.03 instead of 0.49; see docs/metrics.md), so that is what we compute.
    """
    return correlate(x.astype(np.float32), gaussian_window_2d(), mode="nearest").astype(np.float64)


def mscn(img: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (I - mu) / (sigma + 1) of a 2-D image, float64."""
    mu = _local_mean_single(img)
    sigma = np.sqrt(np.abs(_local_mean_single(img * img) - mu * mu))
    return (img - mu) / (sigma + 1.0)


def niqe_features(gray: np.ndarray) -> np.ndarray:
    """Block features `(num_blocks, 36)` of a float64 2-D image already cut to whole 96x96 blocks."""
    rows, cols = gray.shape[0] // BLOCK, gray.shape[1] // BLOCK
    per_scale = []
    img = gray
    for scale in (1, 2):
        coeffs = mscn(img)
        b = BLOCK // scale
        feats = [
            block_features(coeffs[i * b : (i + 1) * b, j * b : (j + 1) * b]) for j in range(cols) for i in range(rows)
        ]
        per_scale.append(np.stack(feats))
        img = imresize(img, 0.5)
    return np.concatenate(per_scale, axis=1)


def too_small(shape: tuple[int, ...], crop_border: int = 0) -> str:
    """Why NIQE is undefined for an image of this shape, or "" when it is defined.

    NIQE needs at least two 96x96 blocks after the crop: the block covariance needs two samples.
    """
    height, width = (max(0, side - 2 * int(crop_border)) for side in shape[:2])
    if (height // BLOCK) * (width // BLOCK) >= 2:
        return ""
    return (
        f"needs at least two {BLOCK}x{BLOCK} blocks after cropping {crop_border} pixels a side, "
        f"got a {height}x{width} image"
    )


def niqe(img: np.ndarray, crop_border: int = 0) -> float:
    """NIQE score (lower is better) of an `(H, W, 3)` RGB or `(H, W)` gray image, uint8 or float on
    the 0..255 scale (a float image in [0, 1] is refused: see `spsagan.metrics.scale`).

    At least two 96x96 blocks must remain after cropping (the covariance needs them).
    """
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        y = rgb_to_y(img)
    elif img.ndim == 2:
        y = img.astype(np.float64)
    else:
        raise ValueError(f"niqe expects an (H, W) gray or (H, W, 3) RGB image, got shape {img.shape}")
    check_scale("niqe", img)
    if int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    c = int(crop_border)
    if c:
        y = y[c:-c, c:-c]
    y = np.floor(y + 0.5)  # round half away from zero (values are non-negative), as MATLAB's uint8
    if problem := too_small(img.shape, c):
        raise ValueError(f"niqe: {problem}")
    rows, cols = y.shape[0] // BLOCK, y.shape[1] // BLOCK
    feats = niqe_features(y[: rows * BLOCK, : cols * BLOCK])
    mu_p, cov_p = pristine_params()
    mu_d = np.nanmean(feats, axis=0)
    complete = feats[~np.isnan(feats).any(axis=1)]
    cov_d = np.cov(complete, rowvar=False)
    diff = mu_p - mu_d
    return float(np.sqrt(diff @ np.linalg.pinv((cov_p + cov_d) / 2) @ diff))
