"""A synthetic finished run for the study tests: HR images and SR images in evaluate's layout.

`fake_run(root)` writes `results/make_lr/<set>/HR/<image>.png` and
`results/evaluate/sr/<method>/<set>/<image>.png` (each method: HR plus noise of its own strength),
and `make_study` builds a small study from it with the paper's method names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from spsagan.image import write_image
from spsagan.study.design import StudySpec, create_study

METHODS = ["bicubic", "SRResNet", "SAN", "spsagan", "SFTGAN", "ESRGAN", "NatSR"]
SETS = {"OSTx": 4, "SetY": 2}


PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]


def _photo(i: int, size: tuple[int, int]) -> np.ndarray:
    """A centre crop of one of scikit-image's bundled photos (offline), RGB uint8."""
    from skimage import data

    img = getattr(data, PHOTOS[i % len(PHOTOS)])()
    top, left = (img.shape[0] - size[0]) // 2, (img.shape[1] - size[1]) // 2
    return np.ascontiguousarray(img[top : top + size[0], left : left + size[1], :3])


def _gradient(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Colour ramps with a noisy (textured) top-left quarter, RGB uint8."""
    y, x = np.mgrid[: size[0], : size[1]]
    hr = np.stack([(x * 2 + y + 40 * c) % 256 for c in range(3)], axis=-1).astype(np.float64)
    h, w = size[0] // 2, size[1] // 2
    hr[:h, :w] += rng.normal(0, 40, (h, w, 3))
    return np.clip(hr, 0, 255).astype(np.uint8)


def fake_run(root: Path, size: tuple[int, int] = (64, 96), photos: bool = False, methods=METHODS) -> Path:
    """Method k (0-based) is HR plus noise of sd 3(k + 1), or, with `photos` (scikit-image's photos
    instead of ramps), HR blurred with sigma 0.4(k + 1)."""
    rng = np.random.default_rng(0)
    count = 0
    for dataset, n in SETS.items():
        for i in range(n):
            hr = _photo(count, size) if photos else _gradient(size, rng)
            count += 1
            write_image(root / "results/make_lr" / dataset / "HR" / f"img{i}.png", hr)
            for k, method in enumerate(methods):
                if photos:
                    sr = gaussian_filter(hr.astype(np.float64), sigma=(0.4 * (k + 1), 0.4 * (k + 1), 0))
                else:
                    sr = hr.astype(np.float64) + rng.normal(0, 3 * (k + 1), hr.shape)
                path = root / "results/evaluate/sr" / method / dataset / f"img{i}.png"
                write_image(path, np.clip(sr, 0, 255).astype(np.uint8))
    return root


def spec(**overrides) -> StudySpec:
    base = dict(
        category_sets=["OSTx"],
        category_n=2,
        other_sets=["SetY"],
        other_n=1,
        participants=3,
        patch=32,
        zoom=2,
        seed=0,
    )
    return StudySpec(**{**base, **overrides})


def make_study(root: Path, **overrides) -> tuple[Path, dict]:
    """(study folder, design) of a study over fake_run(root): 3 slots of 3 images x (1 + 3) trials."""
    if not (root / "results").exists():
        fake_run(root)
    out = root / "study"
    design = create_study(root / "results/evaluate/sr", root / "results/make_lr", out, spec(**overrides))
    return out, design
