"""Evaluate super-resolved images: PSNR, SSIM, NIQE, Ma and PI per image, and set means.

Protocol (SPEC section 4): PSNR/SSIM on the MATLAB Y channel after cropping `crop_border` pixels on
each side; a single-channel (gray) test image is compared as it is, never expanded to RGB. NIQE on Y
rounded to uint8 after the same crop (`spsagan.metrics.niqe`, module `no_reference`); an image too
small for NIQE (fewer than two 96x96 blocks) gets NaN and the `niqe_reason` column says why.

PI follows the PIRM convention, PI = 0.5 * ((10 - Ma) + NIQE), with the same crop and Y channel for
both scores. Ma (NRQM) needs its trained random forests (`NRQM_model.mat`), which only pyiqa can
load and which no package ships. Ma is computed with pyiqa's NRQM built with explicit PIRM options
(`color_space="ycbcr"`, `crop_border`) and a local weights file, so nothing is downloaded; PI then
combines it with this library's NIQE (the LIVE pristine model that MATLAB uses). Where pyiqa or the
weights are missing, `ma` and `pi` are NaN and the `pi_reason` column says why.

Images are numpy uint8, `(H, W, 3)` RGB or `(H, W)` gray, values 0..255.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spsagan import errors, image
from spsagan.errors import ConfigError
from spsagan.image import imresize, read_image, to_tensor
from spsagan.metrics.no_reference import niqe as compute_niqe
from spsagan.metrics.no_reference import too_small as niqe_too_small
from spsagan.metrics.psnr_ssim import psnr, ssim
from spsagan.models import tiling

RESULT_COLUMNS = ["name", "psnr", "ssim", "niqe", "niqe_reason", "ma", "pi", "pi_reason"]
NRQM_FILE = "NRQM_model.mat"
REASON_NO_PYIQA = "pyiqa not installed"
REASON_NO_WEIGHTS = "NRQM weights not available offline"


# --------------------------------------------------------------------------------------------------
# Files


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """`spsagan.image.list_images`, its errors raised as ConfigError."""
    try:
        return image.list_images(folder)
    except (FileNotFoundError, errors.ImageError) as exc:
        raise ConfigError(str(exc)) from exc


def match_names(sr_names: list[str], hr_names: list[str]) -> dict[str, str]:
    """Map each SR image name to its HR name, tolerating suffixes such as `_x4`, `_SR`, `-ESRGAN`.

    An SR name matches an HR name when it equals it, or starts with it followed by `_`, `-` or `.`
    (case-insensitive); the longest such HR name wins, so `img_2_x4` goes to `img_2`, not `img`.
    Raises ConfigError naming every SR image without an HR partner, every HR image without an
    SR image, and every HR image claimed by two SR images.
    """
    lowered = {h.lower(): h for h in hr_names}
    mapping: dict[str, str] = {}
    unmatched = []
    for sr in sr_names:
        key = sr.lower()
        candidates = [h for h in lowered if key == h or (key.startswith(h) and key[len(h)] in "_-.")]
        if candidates:
            mapping[sr] = lowered[max(candidates, key=len)]
        else:
            unmatched.append(sr)
    claimed: dict[str, list[str]] = {}
    for sr, hr in mapping.items():
        claimed.setdefault(hr, []).append(sr)
    problems = []
    if unmatched:
        problems.append(f"SR images with no HR image of the same name: {', '.join(unmatched)}")
    twice = {hr: srs for hr, srs in claimed.items() if len(srs) > 1}
    if twice:
        problems.append(
            "HR images matched by several SR images: "
            + "; ".join(f"{hr} <- {', '.join(srs)}" for hr, srs in twice.items())
        )
    missing = [h for h in hr_names if h not in claimed]
    if missing:
        problems.append(f"HR images with no SR image: {', '.join(missing)}")
    if problems:
        raise ConfigError(
            "cannot pair SR and HR images by name ("
            + "; ".join(problems)
            + "); name each SR image after its HR image, optionally with a suffix like _x4"
        )
    return mapping


# --------------------------------------------------------------------------------------------------
# Super-resolving


def bicubic_sr(lq: np.ndarray) -> np.ndarray:
    """The bicubic baseline: MATLAB `imresize(lq, 4)`; uint8 `(h, w[, 3])` -> uint8 `(4h, 4w[, 3])`."""
    return imresize(lq, 4)


def sr_with_model(
    model: torch.nn.Module,
    lq: np.ndarray,
    seg=None,
    device=None,
    tile: int | None = None,
    tile_overlap: int = tiling.DEFAULT_OVERLAP,
    attention_tile: int | None = None,
) -> np.ndarray:
    """Super-resolve one uint8 image with a generator; returns uint8 `(4h, 4w, 3)` or `(4h, 4w)`.

    lq: uint8 `(h, w, 3)` RGB, or `(h, w)` gray. A gray image is replicated to RGB for the network
        and the output's channel mean (taken in float, then rounded half up) is returned, so a gray
        test image stays gray and is scored as the protocol requires.
    seg: None, or `(8, 4h, 4w)` float probabilities (numpy or tensor), required by SPSA generators.
    device: where to run; None keeps the model where it is, otherwise the model is moved there.
    tile, tile_overlap: None runs the image in one piece; otherwise LR tiles of `tile` pixels with
        `tile_overlap` pixels of context (`spsagan.models.tiling`), each converted to uint8 at once,
        so memory follows the tile rather than the image.
    attention_tile: None computes attention over the whole image (exact); otherwise within separate
        tiles of that many LR pixels a side (`tiling.tiled_attention`, an approximation).
    """
    lq = np.asarray(lq)
    if lq.dtype != np.uint8 or not (lq.ndim == 2 or (lq.ndim == 3 and lq.shape[2] == 3)):
        raise ValueError(f"sr_with_model expects uint8 (h, w) or (h, w, 3), got {lq.dtype} {lq.shape}")
    if tile is not None:
        tiling.check_tiling(tile, tile_overlap)
    if device is not None:
        model = model.to(device)
    device = next(model.parameters()).device
    x = to_tensor(lq)[None].to(device)
    seg_t = None
    if seg is not None:
        seg_t = torch.as_tensor(np.asarray(seg) if not torch.is_tensor(seg) else seg, dtype=torch.float32)
        expected = (8, 4 * lq.shape[0], 4 * lq.shape[1])
        if tuple(seg_t.shape) != expected:
            raise ValueError(
                f"segmentation prior has shape {tuple(seg_t.shape)}, expected {expected} "
                f"(8 classes at 4x the input size)"
            )
        seg_t = seg_t[None].to(device)
    sr = np.empty((4 * lq.shape[0], 4 * lq.shape[1], *lq.shape[2:]), np.uint8)

    def write(top: int, left: int, core: torch.Tensor) -> None:
        block = _to_uint8(core[0], gray=lq.ndim == 2)
        sr[top : top + block.shape[0], left : left + block.shape[1]] = block

    model.eval()
    with torch.no_grad():
        if tile is None and attention_tile is not None and getattr(model, "attention", None) is not None:
            write(0, 0, model.tail(tiling.tiled_attention(model, model.trunk_features(x), seg_t, attention_tile)))
        elif tile is None:
            write(0, 0, model(x, seg_t) if seg_t is not None else model(x))
        else:
            tiling.tiled_forward(model, x, seg_t, tile, tile_overlap, emit=write, attention_tile=attention_tile)
    return sr


def _to_uint8(out: torch.Tensor, gray: bool) -> np.ndarray:
    """Network output (3, H, W), any range -> uint8 (H, W, 3), or (H, W) channel mean when gray.

    Clamped to [0, 1] in float64, then rounded half up; pixel by pixel, so tiles convert alike.
    """
    out = out.detach().to("cpu", torch.float64).clamp_(0.0, 1.0)
    if gray:
        out = out.mean(dim=0, keepdim=True)
    arr = np.floor(out.numpy() * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    return arr[:, :, 0] if gray else arr


# --------------------------------------------------------------------------------------------------
# Ma / PI through pyiqa


def default_nrqm_path() -> Path:
    """Where pyiqa caches `NRQM_model.mat`: `<torch hub dir>/pyiqa/`."""
    return Path(torch.hub.get_dir()) / "pyiqa" / NRQM_FILE


def ma_scorer(crop_border: int = 4, weights: str | os.PathLike | None = None) -> tuple[Callable | None, str]:
    """A function uint8 image -> Ma score, or (None, reason) when it cannot be computed offline.

    weights: a local `NRQM_model.mat`; None looks in pyiqa's cache (`default_nrqm_path()`).
    Never downloads: the path is handed to pyiqa explicitly.
    """
    try:
        from pyiqa.archs.nrqm_arch import NRQM
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "pyiqa":
            return None, REASON_NO_PYIQA
        return None, f"pyiqa not importable ({exc})"
    except ImportError as exc:
        return None, f"pyiqa not importable ({exc})"
    path = Path(weights) if weights is not None else default_nrqm_path()
    if not path.is_file():
        return None, f"{REASON_NO_WEIGHTS} ({NRQM_FILE} not found; place it in pyiqa's cache or pass its path)"
    net = NRQM(test_y_channel=True, color_space="ycbcr", crop_border=crop_border, pretrained_model_path=str(path))

    def score(img: np.ndarray) -> float:
        if img.ndim == 2:
            # pyiqa scores a 1-channel input as it is, on the 0..255 scale (as its Y channel)
            x = torch.from_numpy(img.astype(np.float32))[None, None]
        else:
            x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        with torch.no_grad():
            return float(net(x))

    return score, ""


# --------------------------------------------------------------------------------------------------
# Evaluation


def _as_reference_layout(sr: np.ndarray, gt: np.ndarray, name: str) -> np.ndarray:
    """Bring an RGB SR image of a gray HR image to gray (channel mean, rounded); check sizes."""
    sr = np.asarray(sr)
    if sr.dtype != np.uint8:
        raise ConfigError(f"{name}: SR image must be uint8, got {sr.dtype}")
    if sr.ndim == 3 and gt.ndim == 2:
        sr = np.floor(sr.astype(np.float64).mean(axis=2) + 0.5).astype(np.uint8)
    if sr.ndim == 2 and gt.ndim == 3:
        raise ConfigError(f"{name}: SR image is gray but the HR image is RGB; super-resolve all 3 channels")
    if sr.shape != gt.shape:
        raise ConfigError(
            f"{name}: SR image is {sr.shape[:2]} but the HR image is {gt.shape[:2]}; "
            "SR must be 4x the LR made from the mod-cropped HR"
        )
    return sr


def _niqe(sr: np.ndarray, crop_border: int) -> tuple[float, str]:
    """(NIQE, "") or (NaN, why it is undefined); undefined scores leave the set mean "n/a"."""
    if problem := niqe_too_small(sr.shape, crop_border):
        # A small test image (e.g. 80x60) is valid data; NIQE just has too few 96x96 blocks for it.
        return math.nan, f"NIQE {problem}"
    try:
        return float(compute_niqe(sr, crop_border=crop_border)), ""
    except np.linalg.LinAlgError:
        # Degenerate statistics (e.g. a flat output of an untrained network): NIQE is undefined,
        # as in MATLAB, which returns NaN.
        return math.nan, "NIQE undefined (degenerate block statistics)"


def evaluate_pairs(
    sr_images: dict[str, np.ndarray],
    hr_dir: str | os.PathLike,
    crop_border: int = 4,
    test_y_channel: bool = True,
    niqe: bool = True,
    pi: bool = True,
    nrqm_weights: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Score SR images against the HR images of the same name in `hr_dir`.

    sr_images: name -> uint8 `(H, W, 3)` or `(H, W)`, each the size of `hr_dir/<name>.<ext>`.
    Returns one row per image, sorted by name, columns `RESULT_COLUMNS`
    (`name, psnr, ssim, niqe, niqe_reason, ma, pi, pi_reason`). `niqe=False` skips NIQE (and so PI);
    `pi=False` skips Ma/PI. Unavailable scores are NaN and `niqe_reason` / `pi_reason` say why ("" when
    the score was computed). NIQE is undefined for an image with fewer than two 96x96 blocks after
    the crop (e.g. an 80x60 test image): NaN, and the set mean reads n/a.
    """
    hr_files = list_images(hr_dir)
    missing = sorted(set(sr_images) - set(hr_files))
    if missing:
        raise ConfigError(
            f"{hr_dir}: no HR image for {', '.join(missing)}; HR images there: {', '.join(hr_files) or 'none'}"
        )
    if not sr_images:
        raise ConfigError("no SR images to evaluate")
    score_ma, reason = (None, "PI not requested") if not pi else ma_scorer(crop_border, nrqm_weights)
    if not niqe and score_ma is not None:
        score_ma, reason = None, "NIQE disabled (PI needs it)"
    rows = []
    for name in sorted(sr_images):
        gt = read_image(hr_files[name], gray="keep")
        sr = _as_reference_layout(sr_images[name], gt, name)
        niqe_score, niqe_reason = _niqe(sr, crop_border) if niqe else (math.nan, "NIQE not requested")
        row = {
            "name": name,
            "psnr": float(psnr(sr, gt, crop_border, test_y_channel=test_y_channel)),
            "ssim": float(ssim(sr, gt, crop_border, test_y_channel=test_y_channel)),
            "niqe": niqe_score,
            "niqe_reason": niqe_reason,
            "ma": math.nan,
            "pi": math.nan,
            "pi_reason": reason,
        }
        if score_ma is not None:
            row["ma"] = score_ma(sr)
            row["pi"] = 0.5 * ((10.0 - row["ma"]) + row["niqe"])
            row["pi_reason"] = niqe_reason  # "" when NIQE, and so PI, is defined
        rows.append(row)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def read_sr_folder(sr_dir: str | os.PathLike, hr_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every image in `sr_dir`, keyed by the name of its HR image in `hr_dir` (see match_names)."""
    sr_files = list_images(sr_dir)
    hr_files = list_images(hr_dir)
    mapping = match_names(list(sr_files), list(hr_files))
    return {mapping[sr]: read_image(path, gray="keep") for sr, path in sr_files.items()}


def summarise(df: pd.DataFrame) -> dict:
    """Set means of a per-image frame: {num_images, psnr, ssim, niqe, ma, pi, pi_reason}.

    A mean is None (JSON null) when any image lacks the score or it is not finite (PSNR of
    identical images), so a partial mean never stands in for the set's.
    """
    out: dict = {"num_images": int(len(df))}
    for col in ("psnr", "ssim", "niqe", "ma", "pi"):
        values = df[col].to_numpy(dtype=np.float64) if col in df and len(df) else np.array([math.nan])
        mean = float(values.mean())
        out[col] = mean if math.isfinite(mean) else None
    reasons = sorted({r for r in df.get("pi_reason", pd.Series(dtype=str)).fillna("") if r})
    out["pi_reason"] = "; ".join(reasons)
    return out


def compared_metrics(summary: dict, names: list[str]) -> dict:
    """What experiments compare (evaluate's `--metrics`): {method: {psnr, pi}} of `names`, each the
    mean of the method's set means over the profile's test sets (every set weighs the same), rounded
    to 4 decimals. summary: {"methods": {method: {test set: `summarise` output}}}.

    The perceptual score is PI (the paper's) where it was computed, NIQE otherwise (PI needs pyiqa),
    under its own name; a method whose perceptual score is missing on some set gets none. Two scores:
    after a GAN experiment the four GAN methods' numbers then fit one `dvc exp show --only-changed`
    screen. Per set, SSIM and the rest are in Table 1 and evaluate's summary (docs/pipeline.md).
    """
    out = {}
    for name in names:
        per_set = list(summary["methods"].get(name, {}).values())
        if not per_set:
            continue
        scores = {}
        for key in ("psnr", "pi" if all(m.get("pi") is not None for m in per_set) else "niqe"):
            values = [m.get(key) for m in per_set]
            if all(v is not None and math.isfinite(v) for v in values):
                scores[key] = round(float(np.mean(values)), 4)
        out[name] = scores
    return out
