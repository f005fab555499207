"""A synthetic finished run for the study tests: HR images and SR images in evaluate's layout.

`fake_run(root)` writes `results/make_lr/<set>/HR/<image>.png` and
`results/evaluate/sr/<method>/<set>/<image>.png` (each method: HR plus noise of its own strength),
and `make_study` builds a small study from it with the paper's method names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spsagan.image import write_image
from spsagan.study.design import StudySpec, create_study

METHODS = ["bicubic", "SRResNet", "SAN", "spsagan", "SFTGAN", "ESRGAN", "NatSR"]
SETS = {"OSTx": 4, "SetY": 2}


def fake_run(root: Path, size: tuple[int, int] = (64, 96)) -> Path:
    rng = np.random.default_rng(0)
    for dataset, n in SETS.items():
        for i in range(n):
            y, x = np.mgrid[: size[0], : size[1]]
            hr = np.stack([(x * 2 + y + 40 * c) % 256 for c in range(3)], axis=-1).astype(np.float64)
            hr[: size[0] // 2, : size[1] // 2] += rng.normal(
                0, 40, (size[0] // 2, size[1] // 2, 3)
            )  # a textured corner
            hr = np.clip(hr, 0, 255).astype(np.uint8)
            write_image(root / "results/make_lr" / dataset / "HR" / f"img{i}.png", hr)
            for k, method in enumerate(METHODS):
                noisy = hr.astype(np.float64) + rng.normal(0, 3 * (k + 1), hr.shape)
                write_image(
                    root / "results/evaluate/sr" / method / dataset / f"img{i}.png",
                    np.clip(noisy, 0, 255).astype(np.uint8),
                )
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
