"""spsagan.metrics: PSNR/SSIM (MATLAB protocol) and NIQE, against literal formulas and published numbers."""

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spsagan.image import imresize, modcrop, read_image
from spsagan.metrics import niqe, psnr, ssim
from spsagan.metrics.no_reference import PARAMS_FILE, aggd_fit, gaussian_window_2d, pristine_params

torch.set_num_threads(1)
BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason="../shared/benchmarks not available")


def literal_y(img):
    """Per-pixel MATLAB BT.601 luma, float64."""
    h, w, _ = img.shape
    y = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            r, g, b = (float(v) / 255 for v in img[i, j])
            y[i, j] = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    return y


def literal_psnr(a, b):
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    mse = sum((x - y) ** 2 for x, y in zip(a, b)) / len(a)
    return 10 * math.log10(255**2 / mse)


def literal_ssim(a, b):
    """Wang et al.: Gaussian-weighted statistics for every 11x11 window fully inside the image."""
    k = [math.exp(-((i - 5) ** 2) / (2 * 1.5**2)) for i in range(11)]
    s = sum(k)
    w = [[k[i] * k[j] / s**2 for j in range(11)] for i in range(11)]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for top in range(a.shape[0] - 10):
        for left in range(a.shape[1] - 10):
            ma = mb = saa = sbb = sab = 0.0
            for i in range(11):
                for j in range(11):
                    x, y, wt = float(a[top + i, left + j]), float(b[top + i, left + j]), w[i][j]
                    ma += wt * x
                    mb += wt * y
                    saa += wt * x * x
                    sbb += wt * y * y
                    sab += wt * x * y
            va, vb, cov = saa - ma * ma, sbb - mb * mb, sab - ma * mb
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2)))
    return sum(vals) / len(vals)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, size=(22, 19, 3), dtype=np.uint8)
    noise = rng.integers(-20, 21, size=ref.shape)
    img = np.clip(ref.astype(int) + noise, 0, 255).astype(np.uint8)
    return img, ref


def test_psnr_literal(pair):
    img, ref = pair
    c = 3
    ic, rc = img[c:-c, c:-c], ref[c:-c, c:-c]
    assert psnr(img, ref, crop_border=c) == pytest.approx(literal_psnr(literal_y(ic), literal_y(rc)), rel=1e-12)
    assert psnr(img, ref, c, test_y_channel=False) == pytest.approx(literal_psnr(ic, rc), rel=1e-12)
    assert psnr(img[:, :, 0], ref[:, :, 0], 0) == pytest.approx(literal_psnr(img[:, :, 0], ref[:, :, 0]), rel=1e-12)
    assert psnr(ref, ref, 0) == math.inf


def test_ssim_literal(pair):
    img, ref = pair
    c = 2
    ic, rc = img[c:-c, c:-c], ref[c:-c, c:-c]
    assert ssim(img, ref, crop_border=c) == pytest.approx(literal_ssim(literal_y(ic), literal_y(rc)), abs=1e-12)
    per_channel = [literal_ssim(ic[:, :, k], rc[:, :, k]) for k in range(3)]
    assert ssim(img, ref, c, test_y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-12)
    gray = ssim(img[:, :, 1], ref[:, :, 1], 0)
    assert gray == pytest.approx(literal_ssim(img[:, :, 1], ref[:, :, 1]), abs=1e-12)
    assert ssim(ref, ref, 0) == pytest.approx(1.0, abs=1e-12)


def test_float_input_same_as_uint8(pair):
    img, ref = pair
    assert psnr(img.astype(np.float32), ref, 4) == pytest.approx(psnr(img, ref, 4), rel=1e-12)
    assert ssim(img.astype(np.float64), ref, 4) == pytest.approx(ssim(img, ref, 4), rel=1e-12)


def test_images_off_the_0_255_scale_are_refused(pair):
    img, ref = pair
    unit = img.astype(np.float64) / 255.0  # a network output not yet multiplied by 255
    for call in (lambda: psnr(unit, ref / 255.0, 4), lambda: ssim(unit, ref / 255.0, 4)):
        with pytest.raises(ValueError, match=r"0\.\.255 scale .*\[0, 1\].*multiply by 255"):
            call()
    big = np.tile(unit, (5, 5, 1))  # large enough for NIQE's two 96x96 blocks
    with pytest.raises(ValueError, match=r"^niqe: .*multiply by 255"):
        niqe(big)
    with pytest.raises(ValueError, match=r"^psnr: .*reference"):
        psnr(img, ref / 255.0, 4)
    with pytest.raises(ValueError, match=r"^ssim: expects image values in 0\.\.255, got -1\.\.25"):
        ssim(img.astype(np.int16) - 1, ref, 4)  # neither uint16 data nor out-of-range values pass
    with pytest.raises(ValueError, match=r"dtype bool"):
        psnr(img > 128, ref > 128, 0)
    black = np.zeros_like(unit)  # all-zero reads the same on either scale
    assert psnr(black, black + 2.0, 0, test_y_channel=False) == pytest.approx(10 * math.log10(255.0**2 / 4))


def test_bad_input(pair):
    img, ref = pair
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(img[:-1], ref, 0)
    with pytest.raises(ValueError, match="crop_border"):
        ssim(img, ref, 11)
    with pytest.raises(ValueError, match="11x11"):
        ssim(img[:12, :12], ref[:12, :12], 1)
    with pytest.raises(ValueError, match="crop_border"):
        psnr(img, ref, -1)


@needs_bench
@pytest.mark.parametrize(
    "dataset, count, want_psnr, want_ssim",
    [("Set5", 5, 28.429, 0.8111), ("Set14", 14, 25.994, 0.7029)],
)
def test_bicubic_baseline_published(dataset, count, want_psnr, want_ssim):
    """Table-1 'bicubic': imresize(LR, 4) of the MATLAB LR against the mod-4 HR, Y channel, crop 4."""
    scores = []
    for hr_path in sorted((BENCH / dataset / "HR").glob("*.png")):
        hr = modcrop(read_image(hr_path), 4)
        lq = read_image(BENCH / dataset / "LR_bicubic_x4" / f"{hr_path.stem}x4.png")
        sr = imresize(lq, 4)
        assert sr.shape == hr.shape
        scores.append((psnr(sr, hr, 4), ssim(sr, hr, 4)))
    assert len(scores) == count
    mean_psnr, mean_ssim = np.mean(scores, axis=0)
    assert abs(mean_psnr - want_psnr) < 0.01
    assert abs(mean_ssim - want_ssim) < 0.001


# ---------------------------------------------------------------- NIQE


def test_niqe_params_file_matches_provenance():
    digest = hashlib.sha256(PARAMS_FILE.read_bytes()).hexdigest()
    notes = (PARAMS_FILE.parent / "NIQE_PARAMS.md").read_text()
    assert digest in notes and "Apache" in notes
    mu, cov = pristine_params()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_allclose(cov, cov.T, atol=1e-12)
    with np.load(PARAMS_FILE) as data:  # MATLAB fspecial('gaussian', 7, 7/6) as stored alongside
        np.testing.assert_allclose(data["gaussian_window"], gaussian_window_2d(), atol=1e-15)


@pytest.mark.parametrize("alpha_true, beta_scale", [(2.0, math.sqrt(2.0)), (1.0, 1.0)])
def test_aggd_fit_recovers_known_shapes(alpha_true, beta_scale):
    """Gaussian N(0, s^2) is alpha 2, beta s*sqrt(2); Laplace(0, b) is alpha 1, beta b."""
    rng = np.random.default_rng(1)
    s = 3.0
    x = rng.normal(0, s, 400_000) if alpha_true == 2 else rng.laplace(0, s, 400_000)
    alpha, bl, br = aggd_fit(x)
    assert alpha == pytest.approx(alpha_true, abs=0.03)
    assert bl == pytest.approx(s * beta_scale, rel=0.02)
    assert br == pytest.approx(s * beta_scale, rel=0.02)
    # Asymmetric: halves with different spreads give different left/right scales.
    alpha, bl, br = aggd_fit(np.where(x < 0, 0.5 * x, 2.0 * x))
    assert br / bl == pytest.approx(4.0, rel=0.03)


def test_niqe_rgb_is_rounded_y_and_crop():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(200, 210, 3), dtype=np.uint8)
    y = np.floor(16 + img.astype(float) / 255 @ np.array([65.481, 128.553, 24.966]) + 0.5)
    assert niqe(img) == pytest.approx(niqe(y), rel=1e-12)
    assert niqe(img, crop_border=4) == pytest.approx(niqe(y[4:-4, 4:-4]), rel=1e-12)
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        niqe(img[:100, :100])


def test_niqe_orders_degradation():
    """A blurred copy of a natural image must score worse (higher) than the image itself."""
    if not BENCH.is_dir():
        pytest.skip("../shared/benchmarks not available")
    img = read_image(BENCH / "Set14" / "HR" / "lenna.png")
    blurred = imresize(imresize(img, 0.25), 4)
    assert niqe(blurred) > niqe(img) + 1.0


@needs_bench
def test_niqe_baboon_matches_matlab():
    """MATLAB R2021a value quoted by BasicSR 1.4.2 (calculate_niqe docstring): 5.72957338."""
    img = read_image(BENCH / "Set14" / "HR" / "baboon.png")[:, :492]
    assert niqe(img, crop_border=0) == pytest.approx(5.72957338, abs=1e-3)
