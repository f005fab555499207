"""`spsagan-study create`: a blind user study (paper Sec. 4.3) built from a finished run.

A study folder holds `design.json` and `images/<opaque id>.png`; the server reads nothing else.

- Task 1 (Fig. 9): rank the `rank_methods` and the HR image from 1 (best) to N+1, whole images.
- Task 2 (Fig. 10): the `target` method against each of `pair_methods` in turn, on the same enlarged
  texture patch of the image (the crop with the largest HR gradient energy; seeded tie-break).

The design has one *slot* per expected participant (`participants`, 30 as in the paper). Each slot
draws its own `category_n` images from `category_sets` (OST300) and `other_n` from `other_sets`
(Set5/Set14/BSD100, "out of category"), in a seeded order, and each trial records the order its
methods are shown in. Everything follows from the seed: creating twice gives the same design.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spsagan.atomic import atomic_dir, write_json
from spsagan.errors import ConfigError
from spsagan.image import list_images, read_image, write_image
from spsagan.reports.names import display_name

HR = "HR"
GROUPS = ("ost", "other")  # category images (OST300) and out-of-category images (Set5/Set14/BSD100)
GROUP_LABELS = {"ost": "OST", "other": "out-of-category"}
OPTION_KEYS = "abcdefghij"
DB_NAME = "votes.sqlite"  # the votes database inside a study folder


@dataclass
class StudySpec:
    """What `create` builds; the defaults are the paper's (Sec. 4.3)."""

    category_sets: list[str] = field(default_factory=lambda: ["OST300"])
    category_n: int = 30
    other_sets: list[str] = field(default_factory=lambda: ["Set5", "Set14", "BSD100"])
    other_n: int = 10
    rank_methods: list[str] = field(default_factory=lambda: ["SRResNet", "SAN", "SPSAGAN"])
    target: str = "SPSAGAN"
    pair_methods: list[str] = field(default_factory=lambda: ["SFTGAN", "ESRGAN", "NatSR"])
    participants: int = 30
    patch: int = 96  # HR pixels of a task-2 patch side (clipped to the image)
    zoom: int = 3  # task-2 patches are enlarged by pixel replication
    seed: int = 0
    skip_missing: bool = False


def resolve_methods(requested: list[str], available: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map each requested method to an SR folder name: the folder of that name, else the one whose
    report name (`spsagan.reports.names.display_name`) it is: `SPSAGAN` is our `spsagan`, but
    `ESRGAN` is only the published weights' folder, never our retrained `esrgan`.

    Returns ({requested: folder}, [requested names with no folder]). `HR` needs no folder.
    """
    found, missing = {}, []
    for name in requested:
        if name == HR:
            found[name] = HR
        elif name in available:
            found[name] = name
        elif len(hits := [a for a in available if display_name(a) == name]) == 1:
            found[name] = hits[0]
        else:
            missing.append(name)
    return found, missing


def texture_patch(hr: np.ndarray, size: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """(top, left, side) of the square crop with the largest gradient energy of `hr`.

    hr: uint8 `(H, W)` or `(H, W, 3)`. side = min(size, H, W). Candidates on a grid of stride side/4;
    ties (flat images) are broken by `rng`, so the choice is reproducible.
    """
    gray = hr.astype(np.float64) if hr.ndim == 2 else hr.astype(np.float64).mean(axis=2)
    energy = np.zeros_like(gray)
    energy[:, 1:] += np.diff(gray, axis=1) ** 2
    energy[1:, :] += np.diff(gray, axis=0) ** 2
    side = int(min(size, *gray.shape))
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    stride = max(1, side // 4)
    tops = np.arange(0, gray.shape[0] - side + 1, stride)
    lefts = np.arange(0, gray.shape[1] - side + 1, stride)
    t, l = np.meshgrid(tops, lefts, indexing="ij")
    score = integral[t + side, l + side] - integral[t, l + side] - integral[t + side, l] + integral[t, l]
    best = np.flatnonzero(np.isclose(score.ravel(), score.max(), rtol=1e-12, atol=0))
    pick = best[rng.integers(len(best))] if len(best) > 1 else best[0]
    return int(t.ravel()[pick]), int(l.ravel()[pick]), side


def _opaque(seed: int, *parts: str) -> str:
    """A stable id that does not reveal the method (participants never see the seed)."""
    return hashlib.sha256("\x00".join([str(seed), *parts]).encode()).hexdigest()[:20]


def _pool(sr_root: Path, hr_root: Path, sets: list[str], folders: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(dataset, image) pairs with an HR image and an SR image of every method; the sets not in the run."""
    pool, missing = [], []
    for dataset in sets:
        hr_dir = hr_root / dataset / "HR"
        if not hr_dir.is_dir():
            missing.append(dataset)
            continue
        names = set(list_images(hr_dir))
        for folder in folders:
            d = sr_root / folder / dataset
            names &= set(list_images(d)) if d.is_dir() else set()
        pool += [(dataset, name) for name in sorted(names)]
    return pool, missing


def create_study(sr_root: Path, hr_root: Path, out: Path, spec: StudySpec, force: bool = False) -> dict:
    """Write the study folder `out` (design.json, images/) atomically; return the design.

    sr_root: evaluate's `results/evaluate/sr` (`<method>/<dataset>/<image>.png`); hr_root: make_lr's
    `results/make_lr` (`<dataset>/HR/<image>.png`). Raises ConfigError naming the requested methods
    and sets the run lacks (and what it has), unless spec.skip_missing; and when `out` already holds
    votes, unless `force` (a new design would replace them).
    """
    sr_root, hr_root, out = Path(sr_root), Path(hr_root), Path(out)
    if (out / DB_NAME).exists() and not force:
        raise ConfigError(
            f"{out} holds the votes of a study ({DB_NAME}); export them, then choose another --out "
            "(or pass --force to replace the study and its votes)"
        )
    if not sr_root.is_dir():
        raise ConfigError(f"{sr_root}: no SR images; run the pipeline's evaluate stage first (or pass --sr)")
    available = sorted(p.name for p in sr_root.iterdir() if p.is_dir())
    rank, miss_rank = resolve_methods(spec.rank_methods, available)
    pairs, miss_pair = resolve_methods([spec.target, *spec.pair_methods], available)
    missing = sorted(set(miss_rank + miss_pair))
    problems = []
    if missing:
        problems.append(f"methods not in {sr_root}: {', '.join(missing)} (it has: {', '.join(available)})")
    if spec.target in missing:
        raise ConfigError(f"--target: {'; '.join(problems)}")
    folders = sorted({*rank.values(), *pairs.values()} - {HR})
    pools, sets_missing = {}, []
    for group, sets in (("ost", spec.category_sets), ("other", spec.other_sets)):
        pools[group], lacking = _pool(sr_root, hr_root, sets, folders)
        sets_missing += lacking
    if sets_missing:
        problems.append(f"test sets not in {hr_root}: {', '.join(sets_missing)}")
    if problems and not spec.skip_missing:
        raise ConfigError(
            "; ".join(problems) + "; choose --rank-methods/--pair-methods/--*-sets from the run, "
            "or pass --skip-missing to build the study without them"
        )
    if not any(pools.values()):
        raise ConfigError(f"no image has an HR image and an SR image of every method ({', '.join(folders)})")
    # From here on a method is its folder name, as in Table 1 and the claims; reports show display_name.
    rank_names = list(rank.values()) + ([HR] if HR not in rank else [])
    target = pairs[spec.target]
    pair_names = [pairs[m] for m in spec.pair_methods if m in pairs and pairs[m] != target]
    if len(rank_names) < 2 and not pair_names:
        raise ConfigError("nothing to compare: give at least one method to rank or to pair against the target")

    images: dict[str, dict] = {}  # opaque id -> where it comes from (never sent to the page)

    def image_id(folder: str, dataset: str, name: str, crop: tuple[int, int, int] | None) -> str:
        key = _opaque(spec.seed, folder, dataset, name, str(crop))
        images.setdefault(key, {"method": folder, "folder": folder, "dataset": dataset, "image": name, "crop": crop})
        return key

    rng = np.random.default_rng(spec.seed)
    patches = {}
    for dataset, name in sorted({item for pool in pools.values() for item in pool}):
        hr = read_image(list_images(hr_root / dataset / "HR")[name])
        patches[(dataset, name)] = texture_patch(hr, spec.patch, rng)

    slots = []
    for s in range(spec.participants):
        srng = np.random.default_rng([spec.seed, s])
        trials = []
        for group in GROUPS:
            pool = pools[group]
            n = min(spec.category_n if group == "ost" else spec.other_n, len(pool))
            for i in sorted(srng.choice(len(pool), size=n, replace=False)) if n else []:
                dataset, name = pool[i]
                if len(rank_names) >= 2:
                    order = [rank_names[j] for j in srng.permutation(len(rank_names))]
                    trials.append(
                        _trial(1, group, dataset, name, order, [image_id(m, dataset, name, None) for m in order])
                    )
                for other in pair_names:
                    order = [target, other] if srng.random() < 0.5 else [other, target]
                    crop = patches[(dataset, name)]
                    trials.append(
                        _trial(2, group, dataset, name, order, [image_id(m, dataset, name, crop) for m in order])
                    )
        order = srng.permutation(len(trials))
        slots.append([{**trials[j], "id": f"s{s:03d}-t{k:03d}"} for k, j in enumerate(order)])

    design = {
        "format": 1,
        "spec": {k: v for k, v in spec.__dict__.items() if k != "skip_missing"},
        "task1_methods": rank_names,
        "target": target,
        "pair_methods": pair_names,
        "names": {**rank, **pairs},  # requested name -> SR folder
        "missing": {"methods": missing, "sets": sets_missing},
        "pool_sizes": {g: len(p) for g, p in pools.items()},
        # images per rater: as requested, or every image of the pool when it has fewer
        "per_rater": {g: min(spec.category_n if g == "ost" else spec.other_n, len(pools[g])) for g in GROUPS},
        "images": images,
        "slots": slots,
    }
    with atomic_dir(out) as tmp:
        for key, info in images.items():
            write_image(tmp / "images" / f"{key}.png", _render(sr_root, hr_root, info, spec.zoom))
        write_json(tmp / "design.json", design)
    return design


def _trial(task: int, group: str, dataset: str, name: str, methods: list[str], ids: list[str]) -> dict:
    options = [{"key": OPTION_KEYS[i], "method": m, "image": img} for i, (m, img) in enumerate(zip(methods, ids))]
    return {"task": task, "group": group, "dataset": dataset, "image": name, "options": options}


def _render(sr_root: Path, hr_root: Path, info: dict, zoom: int) -> np.ndarray:
    """The pixels a participant sees: the whole image, or its patch enlarged `zoom` times."""
    folder, dataset, name = info["folder"], info["dataset"], info["image"]
    src = hr_root / dataset / "HR" if folder == HR else sr_root / folder / dataset
    img = read_image(list_images(src)[name])
    if info["crop"] is None:
        return img
    top, left, side = info["crop"]
    patch = img[top : top + side, left : left + side]
    return np.repeat(np.repeat(patch, zoom, axis=0), zoom, axis=1)


def load_design(study: Path) -> dict:
    """The design of a study folder; ConfigError when there is none."""
    path = Path(study) / "design.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: create the study first (spsagan-study create --out {study})")
    return json.loads(path.read_text())
