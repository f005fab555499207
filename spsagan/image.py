"""Image protocol: reading, writing, MATLAB-exact bicubic resize, Y channel, tensor conversion.

Arrays are numpy `uint8` images, `(H, W)` for gray or `(H, W, 3)` for RGB, values 0..255.
Tensors are torch `float32` `(3, H, W)` with values in [0, 1].

Reading rules (`read_image`); pixels are taken as stored (no EXIF rotation, no colour management):

- 8-bit RGB is returned as it is, `(H, W, 3)` uint8.
- Gray images (PIL modes `L`, `1`, 16-bit `I;16`/`I`, and gray+alpha `LA`) stay 2-D `(H, W)` with
  `gray="keep"`, or are replicated to `(H, W, 3)` with `gray="rgb"`.
- An alpha channel (`RGBA`, `LA`, `PA`) is dropped; colour channels are kept as stored, not composited
  over a background (what OpenCV and BasicSR do).
- Palette images (`P`) are converted to RGB through their palette (always 3 channels).
- `CMYK` and `YCbCr` are converted to RGB by PIL.
- 16-bit samples are scaled to 8 bits by round(v / 257) (65535 -> 255, exact for 8-bit data stored as
  16-bit). 16-bit colour and gray+alpha PNGs are decoded with OpenCV, since PIL keeps only their
  high byte.
- Anything unreadable (missing, corrupt, truncated, unsupported mode) raises `ImageError` naming the
  file.

`imresize` follows MATLAB's `imresize(img, scale, 'bicubic')`: Keys cubic kernel with a = -0.5, the
kernel widened by 1/scale when shrinking (antialiasing), output pixel x (1-based) sampled at
u = x / scale + 0.5 * (1 - 1 / scale), weights normalised per output pixel, out-of-range indices folded
symmetrically (edge sample repeated), height resized first, then width; uint8 images are rounded half
away from zero and saturated after each 1-D pass, as MATLAB's uint8 path does. Output size is
ceil(in * scale). It reproduces MATLAB's LR test images bit for bit.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from spsagan.atomic import atomic_path
from spsagan.errors import ImageError

if TYPE_CHECKING:  # torch is imported only where tensors are made: reading and resizing need none
    import torch


# --------------------------------------------------------------------------------------------------
# MATLAB bicubic resize


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's `cubic`)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def _contributions(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based input indices `(out_length, taps)` of one 1-D resize (MATLAB `contributions`)."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width = kernel_width / scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    distance = u[:, None] - indices
    if antialias:
        weights = scale * _cubic(scale * distance)
    else:
        weights = _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Fold indices outside [1, in_length] back in: MATLAB's aux = [1:n, n:-1:1] with mod indexing.
    aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    folded = aux[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    # MATLAB drops tap columns whose weights are all zero.
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], folded[:, keep]


def _resize_axis(img: np.ndarray, axis: int, scale: float, out_length: int, to_uint8: bool) -> np.ndarray:
    """Resize float64 `img` along `axis`; accumulate taps in order, as MATLAB's resize loop does."""
    weights, indices = _contributions(img.shape[axis], out_length, scale)
    moved = np.moveaxis(img, axis, 0)
    extra = (1,) * (moved.ndim - 1)
    out = np.zeros((out_length,) + moved.shape[1:], dtype=np.float64)
    for k in range(weights.shape[1]):
        out += weights[:, k].reshape((-1,) + extra) * moved[indices[:, k]]
    if to_uint8:
        # Values are clipped to [0, 255] first, so round-half-away-from-zero is floor(v + 0.5).
        out = np.floor(np.clip(out, 0.0, 255.0) + 0.5)
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize(img, scale, 'bicubic')` (antialiased when shrinking).

    img: `(H, W)` or `(H, W, C)`, uint8 (0..255) or float (any range).
    Returns `(ceil(H * scale), ceil(W * scale)[, C])`: uint8 for uint8 input (rounded after each
    pass, as MATLAB does), float64 for float input (not rounded or clipped).
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects an (H, W) or (H, W, C) image, got shape {img.shape}")
    if img.dtype == np.uint8:
        to_uint8 = True
    elif np.issubdtype(img.dtype, np.floating):
        to_uint8 = False
    else:
        raise ValueError(f"imresize expects uint8 or float pixels, got {img.dtype}; convert the image first")
    if not (isinstance(scale, (int, float, np.floating, np.integer)) and scale > 0 and math.isfinite(scale)):
        raise ValueError(f"imresize scale must be a positive finite number, got {scale!r}")
    scale = float(scale)
    out_h = int(math.ceil(img.shape[0] * scale))
    out_w = int(math.ceil(img.shape[1] * scale))
    out = img.astype(np.float64)
    out = _resize_axis(out, 0, scale, out_h, to_uint8)
    out = _resize_axis(out, 1, scale, out_w, to_uint8)
    return out.astype(np.uint8) if to_uint8 else out


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Drop the last H % scale rows and W % scale columns of an `(H, W)` or `(H, W, C)` image."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"modcrop scale must be a positive integer, got {scale!r}")
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]


def make_lq(hr: np.ndarray, scale: int = 4) -> np.ndarray:
    """The LR image of an HR image, as the make_lr stage writes it: `imresize(modcrop(hr, scale), 1 / scale)`.

    hr: uint8 `(H, W[, C])` -> uint8 `(H // scale, W // scale[, C])` (MATLAB bicubic, rounded after each pass).
    """
    if min(np.shape(hr)[:2]) < scale:
        raise ValueError(f"an image of {np.shape(hr)[0]}x{np.shape(hr)[1]} pixels has no x1/{scale} LR image")
    return imresize(modcrop(hr, scale), 1.0 / scale)


# --------------------------------------------------------------------------------------------------
# Colour


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """MATLAB `rgb2ycbcr` luma (BT.601 studio swing), float64 in [16, 235], not rounded.

    img: `(H, W, 3)` RGB, uint8 or float, on the 0..255 scale.
    Y = 16 + (65.481 R + 128.553 G + 24.966 B) with R, G, B = img / 255.
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects an (H, W, 3) RGB image, got shape {img.shape}")
    rgb = img.astype(np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


# --------------------------------------------------------------------------------------------------
# Tensors


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 `(H, W, 3)` (or 2-D gray, replicated to 3 channels) -> float32 `(3, H, W)` in [0, 1]."""
    import torch  # imported here: resizing and reading images need no torch

    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"to_tensor expects a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"to_tensor expects an (H, W) or (H, W, 3) image, got shape {img.shape}")
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float `(3, H, W)` (or `(1, 3, H, W)`) in [0, 1] -> uint8 `(H, W, 3)`.

    Values are clipped to [0, 1] and rounded half up, as MATLAB's im2uint8 does.
    """
    import torch

    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"to_uint8 expects a (3, H, W) tensor, got shape {tuple(tensor.shape)}")
    arr = tensor.detach().to("cpu", torch.float64).clamp_(0.0, 1.0).numpy()
    return np.floor(arr * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0).copy()


# --------------------------------------------------------------------------------------------------
# Files

_FIX_HINT = "re-download or re-extract it (or delete it so the pipeline fetches it again)"


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR chunk, or None for other formats."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _from_16bit(values: np.ndarray) -> np.ndarray:
    """16-bit samples -> uint8 by round(v / 257) (no exact halves occur for integers)."""
    return np.floor(values.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)


def _read_png16_with_cv2(path: Path, gray: bool) -> np.ndarray:
    """16-bit RGB, RGBA or gray+alpha PNG (PIL keeps only the high byte of these)."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        raise ImageError(f"{path}: cannot decode this 16-bit PNG; {_FIX_HINT}")
    if gray:  # OpenCV expands gray+alpha to BGRA with B = G = R
        return _from_16bit(arr[:, :, 0])
    return _from_16bit(arr[:, :, 2::-1])  # BGR(A) -> RGB, alpha dropped


def read_image(path: str | os.PathLike, gray: str = "keep") -> np.ndarray:
    """Read an image file as uint8 `(H, W, 3)` RGB or `(H, W)` gray (see the module docstring rules).

    gray: "keep" returns gray images 2-D; "rgb" replicates them to 3 channels.
    Raises ImageError (a ValueError) naming the file when it cannot be read.
    """
    if gray not in ("keep", "rgb"):
        raise ValueError(f"read_image gray must be 'keep' or 'rgb', got {gray!r}")
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file; check the path or run the stage that creates it")
    try:
        header = _png_header(path)
        if header is not None and header[0] == 16 and header[1] in (2, 4, 6):
            arr = _read_png16_with_cv2(path, gray=header[1] == 4)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    im.load()
                    arr = _pil_to_array(im, path)
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: unreadable or corrupt image ({exc}); {_FIX_HINT}") from exc
    if arr.ndim == 2 and gray == "rgb":
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def _pil_to_array(im: Image.Image, path: Path) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8)
    if mode in ("RGBA", "RGBX"):
        return np.asarray(im, dtype=np.uint8)[:, :, :3]
    if mode == "L":
        return np.asarray(im, dtype=np.uint8)
    if mode == "LA":
        return np.asarray(im, dtype=np.uint8)[:, :, 0]
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if mode in ("P", "PA"):
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    if mode in ("CMYK", "YCbCr"):
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageError(
                f"{path}: integer image with values outside 0..65535 is not supported; convert it to 8-bit"
            )
        return _from_16bit(values)
    raise ImageError(f"{path}: unsupported image mode {mode!r}; convert it to 8-bit RGB or gray PNG")


def write_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Atomically write a uint8 `(H, W)` gray or `(H, W, 3)` RGB image as PNG to `path` (suffix .png)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: write_image writes PNG only; use a .png file name")
    img = np.asarray(img)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"{path}: write_image expects uint8 (H, W) or (H, W, 3), got {img.dtype} {img.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(img)).save(tmp, format="PNG")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_images(
    folder: str | os.PathLike, hint: str = "check the path or run the stage that creates it"
) -> dict[str, Path]:
    """Image files directly inside `folder` (hidden files skipped), keyed by file stem, sorted by stem.

    Raises FileNotFoundError when the folder is missing or holds no image (the message ends with
    `hint`), and ImageError when two files share a stem (outputs are named by stem).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of images; {hint}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES) or path.name.startswith("."):
            continue
        if path.stem in found:
            raise ImageError(
                f"{folder}: two images share the name {path.stem!r} "
                f"({found[path.stem].name}, {path.name}); keep one file per image name"
            )
        found[path.stem] = path
    if not found:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found; {hint}")
    return found
