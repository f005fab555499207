"""What a rehearsal runs: the paper profile's params, with only counts and unobtainable files changed.

Every stage's section starts as `params.yaml`'s paper column (as `load_config(stage, "paper")` reads
it) and changes only through `dataclasses.replace` with:

- iteration counts: one warm-up iteration plus `timed` timed ones (`iters`), `timed` + 1 batches for
  prune's dissimilarity average, one timing image and one timed pass in evaluate (the SR pass over
  the same image before it is the warm-up);
- data: the paper's dataset names, each played by bundled scikit-image photos (`download_data.source:
  demo`), one image per set;
- offline stand-ins: a seeded random VGG19 when the ImageNet file is missing, OutdoorSceneSeg with
  seeded random weights when `segmentation_OST_bic.pth` is missing. With your files in place (the
  paper column's paths) they are used, and published weights that exist are evaluated;
- the reduced plan (CI) also uses 2 crops per batch and small crops of the photos for the test
  sets, so the 23-block networks fit a few minutes of a 2-core CPU.

Everything else (23 blocks, 64 features, growth 32, 96-pixel crops, 480/240 sub-images, VGG19 to
conv5_4, a width-64 discriminator, OutdoorSceneSeg's network, exact SPSA, workers, precision, the
schedules' other keys) is the paper's. `departures` and `stand_ins` list every change for the report.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from spsagan.config import check_across_stages, from_section
from spsagan.data.assets import get_dataset
from spsagan.models.vgg import random_label
from spsagan.pipeline.params import load_params
from spsagan.segmentation.outdoor_scene_seg import RANDOM_WEIGHTS

STAGES = (
    "download_data",
    "make_lr",
    "make_seg_maps",
    "pretrain_psnr",
    "prune",
    "train_gan",
    "evaluate",
    "study_report",
    "render_reports",
)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A rehearsal's size: which photo plays each paper dataset, and how many iterations are timed.

    photos: dataset -> scikit-image photo names (`spsagan.data.demo`; `name@HxW` is a centre crop).
    timed: iterations timed after the one warm-up iteration (training) and batches after the first (prune).
    batch_size: crops per training batch (None: the paper's 16).
    """

    name: str
    photos: dict[str, list[str]]
    timed: int
    batch_size: int | None = None


# The largest photos play the 2K training sets and each test set a photo of about its images' size
# (DIV2K/Flickr2K about 2040x1356, OST about 0.5 MP, Set5 up to 512x512, BSD100 481x321, Urban100 1024
# wide), within a 2-core CPU's half hour: Set14 (validated on by every training job) and OST300 (timed
# by evaluate) get the smallest photo, Urban100 a 512-pixel one.
FULL = Plan(
    name="full",
    photos={
        "DIV2K": ["retina"],  # 1411x1411
        "Flickr2K": ["hubble_deep_field"],  # 872x1000
        "OST": ["motorcycle_left"],  # 500x741
        "Set5": ["immunohistochemistry"],  # 512x512
        "Set14": ["chelsea"],  # 300x451
        "BSD100": ["coffee"],  # 400x600
        "Urban100": ["astronaut"],  # 512x512 (motorcycle_right shows OST's scene)
        "OST300": ["chelsea"],  # 300x451
    },
    timed=1,
)

# CI: the same networks and 480-pixel sub-images, 2 crops per batch, 96x96 test crops (24x24 LR).
REDUCED = Plan(
    name="reduced",
    photos={
        "DIV2K": ["retina@480x480"],
        "Flickr2K": ["hubble_deep_field@480x480"],
        "OST": ["motorcycle_left@480x480"],
        "Set5": ["immunohistochemistry@96x96"],
        "Set14": ["coffee@96x96"],
        "BSD100": ["chelsea@96x96"],
        "Urban100": ["astronaut@96x96"],
        "OST300": ["rocket@96x96"],
    },
    timed=1,
    batch_size=2,
)

# On a GPU the full plan times more iterations, and a 1000-pixel photo plays Urban100, so SPSA attends
# over a full-size test image (N = 218 x 250 LR positions).
FULL_GPU = dataclasses.replace(
    FULL, photos={**FULL.photos, "Set14": ["coffee"], "Urban100": ["hubble_deep_field"], "OST300": ["rocket"]}, timed=20
)


def plan_for(reduced: bool, cuda: bool) -> Plan:
    """The plan a rehearsal runs: the reduced one (CI), or the full one for the device."""
    if reduced:
        return REDUCED
    return FULL_GPU if cuda else FULL


@dataclasses.dataclass
class Rehearsal:
    """The rehearsal's configs (one typed config per stage), the paper's, and what differs between them."""

    plan: Plan
    paper: dict
    configs: dict
    departures: list[str]  # counts changed for time, each with the paper's value
    stand_ins: list[str]  # files or data the rehearsal could not use, and what played them

    def section(self, stage: str) -> dict:
        """The stage's params as the JSON section a step's `--params` takes."""
        return dataclasses.asdict(self.configs[stage])


def make_rehearsal(
    plan: Plan,
    params: str | Path = "params.yaml",
    schema: str | Path = "workflow/schemas/params.schema.yaml",
    timed: int | None = None,
) -> Rehearsal:
    """The rehearsal of `plan` derived from params.yaml's paper column (file paths relative to the repository)."""
    plan = dataclasses.replace(plan, timed=timed) if timed is not None else plan
    sections = load_params(params, schema)  # validated whole, as the Snakefile does
    paper = {stage: from_section(stage, sections[stage]["paper"]) for stage in STAGES}
    out = Rehearsal(plan, paper, dict(paper), [], [])
    _data(out, paper)
    _training(out, paper)
    _weights(out, paper)
    _evaluation(out, paper)
    check_across_stages(out.configs)
    return out


def _data(out: Rehearsal, paper: dict) -> None:
    """download_data: every paper dataset from the plan's photos (offline), one image per set."""
    cfg = paper["download_data"]
    missing = sorted(set(cfg.datasets) - set(out.plan.photos))
    if missing:
        raise ValueError(f"rehearsal plan {out.plan.name!r} has no photo for {missing}")
    split = {name: out.plan.photos[name] for name in cfg.datasets}
    out.configs["download_data"] = dataclasses.replace(cfg, source="demo", demo_split=split, local={})
    roles = ", ".join(f"{name} <- {'+'.join(photos)}" for name, photos in split.items())
    out.stand_ins.append(f"data: scikit-image's bundled photos, one per set ({roles}), instead of the paper's datasets")
    counts = ", ".join(f"{name} {get_dataset(name).count:,}" for name in cfg.datasets)
    out.departures.append(f"images per set: 1 (paper: {counts})")
    # GAN training reads only the selected images of select_set: its one photo must pass the selection.
    seg = paper["make_seg_maps"]
    out.configs["make_seg_maps"] = dataclasses.replace(seg, min_categories=1, min_fraction=0.001)
    out.departures.append(
        f"make_seg_maps.min_categories: 1, min_fraction: 0.001, so the one {seg.select_set} photo "
        f"passes the multi-category selection (paper: {seg.min_categories}, {seg.min_fraction})"
    )


def _training(out: Rehearsal, paper: dict) -> None:
    """pretrain_psnr, train_gan: one warm-up + `timed` iterations; prune: `timed` + 1 batches."""
    iters = 1 + out.plan.timed
    batch = {"batch_size": out.plan.batch_size} if out.plan.batch_size else {}
    for stage in ("pretrain_psnr", "train_gan"):
        out.configs[stage] = dataclasses.replace(out.configs[stage], iters=iters, **batch)
        out.departures.append(
            f"{stage}.iters: {iters} (1 warm-up + {out.plan.timed} timed; paper: {paper[stage].iters:,})"
        )
    out.configs["prune"] = dataclasses.replace(paper["prune"], batches=iters, **batch)
    out.departures.append(f"prune.batches: {iters} (paper: {paper['prune'].batches})")
    if batch:
        out.departures.append(
            f"batch_size (pretrain_psnr, prune, train_gan): {out.plan.batch_size} "
            f"(paper: {paper['pretrain_psnr'].batch_size})"
        )


def _weights(out: Rehearsal, paper: dict) -> None:
    """The paper's weight files where they exist; seeded random networks where they do not."""
    gan = paper["train_gan"]
    if gan.perceptual_weights and not Path(gan.perceptual_weights).is_file():
        out.configs["train_gan"] = dataclasses.replace(out.configs["train_gan"], perceptual_weights="")
        out.stand_ins.append(
            f"perceptual loss: VGG19 with random weights ({random_label()}), {gan.perceptual_weights} not found"
        )
    seg = out.configs["make_seg_maps"]
    if seg.segmenter == "outdoor_scene_seg" and not Path(seg.weights).is_file():
        out.configs["make_seg_maps"] = dataclasses.replace(seg, weights=RANDOM_WEIGHTS, weights_sha256="")
        out.stand_ins.append(
            f"segmentation prior: outdoor_scene_seg(random weights seed={seg.seed}, rehearsal "
            f"stand-in), {seg.weights} not found"
        )
    for method, path in paper["evaluate"].published.items():
        if not Path(path).is_file():
            out.stand_ins.append(f"published {method}: {path} not found; evaluate skips it (Table 1 names it)")
    if importlib.util.find_spec("pyiqa") is None:
        out.stand_ins.append("PI: pyiqa is not installed; evaluate reports PI as not available")


def _evaluation(out: Rehearsal, paper: dict) -> None:
    """evaluate: one timing image, timed once (the SR pass over it just before is the warm-up)."""
    cfg = paper["evaluate"]
    out.configs["evaluate"] = dataclasses.replace(cfg, timing_images=1, timing_warmup=0, timing_repeats=1)
    out.departures.append(
        f"evaluate timing: 1 image of {cfg.timing_set}, 1 timed pass after the SR pass "
        f"(paper: {cfg.timing_images} images, {cfg.timing_warmup} warm-up + "
        f"{cfg.timing_repeats} timed passes each)"
    )
