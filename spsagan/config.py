"""Typed configs: one dataclass per params.yaml section, with exactly the schema's keys.

params.yaml is the only place a setting is made. Its schema (`workflow/schemas/params.schema.yaml`)
checks each key's type and range; the dataclasses here carry the same names into the library (a
test keeps fields and schema properties equal), and their `check` methods hold the constraints a
schema cannot express (one key against another, one stage against another). Both run when the
Snakefile is parsed, so a bad value stops the run before its first stage, with one line per
problem naming the key.

`ConfigError` is the one error type for a configuration a user must fix; anything in the library
that rejects a configured value (an unknown preset, a malformed mask file) raises it too.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from spsagan.errors import ConfigError

PROFILES = ("demo", "paper")
SCALE = 4
DISCRIMINATOR_CROPS = (96, 128)  # the VGG-style discriminator's input sizes (ESRGAN)


def _fail(stage: str, key: str, message: str) -> None:
    raise ConfigError(f"{stage}.{key}: {message}")


class _Section:
    """A params.yaml section: its cross-key `check` runs whenever one is made (also by `dataclasses.replace`)."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class DownloadDataConfig(_Section):
    source: Literal["demo", "download"]
    datasets: list[str]
    demo_split: dict[str, list[str]]
    downloads_dir: str
    mirror: str
    local: dict[str, str]

    def check(self) -> None:
        unknown = sorted(set(self.demo_split) - set(self.datasets)) if self.source == "demo" else []
        if unknown:
            _fail("download_data", "demo_split", f"names datasets not in download_data.datasets: {unknown}")


@dataclasses.dataclass(frozen=True)
class MakeLRConfig(_Section):
    scale: int
    train_sets: list[str]
    test_sets: list[str]
    subimage_size: int
    subimage_step: int
    min_size: int

    def check(self) -> None:
        overlap = sorted(set(self.train_sets) & set(self.test_sets))
        if overlap:
            _fail("make_lr", "test_sets", f"{overlap} also in make_lr.train_sets; a set is either trained or tested")
        if self.subimage_size % self.scale:
            _fail("make_lr", "subimage_size", f"{self.subimage_size} is not a multiple of the scale {self.scale}")
        if self.subimage_step % self.scale:
            _fail("make_lr", "subimage_step", f"{self.subimage_step} is not a multiple of the scale {self.scale}")


@dataclasses.dataclass(frozen=True)
class MakeSegMapsConfig(_Section):
    segmenter: Literal["standin", "outdoor_scene_seg"]
    weights: str
    weights_sha256: str
    sets: list[str]
    batch_size: int
    seed: int
    select_set: str
    min_categories: int
    min_fraction: float
    figures_per_set: int

    def check(self) -> None:
        if self.select_set not in self.sets:
            _fail("make_seg_maps", "select_set", f"{self.select_set!r} is not in make_seg_maps.sets {self.sets}")


@dataclasses.dataclass(frozen=True)
class _Training(_Section):
    """Settings both training stages share (same names, same meaning)."""

    iters: int
    batch_size: int
    crop_size: int
    lr_step: int
    lr_gamma: float
    adam_betas: list[float]
    val_every: int
    ckpt_every: int
    log_every: int
    seed: int
    deterministic: bool
    mixed_precision: bool
    channels_last: bool | Literal["auto"]
    workers: int
    gpus: int
    compile: bool

    def _check_training(self, stage: str) -> None:
        if self.crop_size % SCALE:
            _fail(stage, "crop_size", f"{self.crop_size} is not a multiple of {SCALE} (the LR crop is crop_size / 4)")
        if self.batch_size % self.gpus:
            _fail(
                stage,
                "batch_size",
                f"{self.batch_size} is not divisible by {stage}.gpus {self.gpus} (batch_size "
                "is the global batch; each process trains on batch_size / gpus)",
            )

    def lr_milestones(self) -> list[int]:
        """Iterations at which every rate is multiplied by lr_gamma: every lr_step, before iters."""
        return list(range(self.lr_step, self.iters, self.lr_step))


@dataclasses.dataclass(frozen=True)
class PretrainPSNRConfig(_Training):
    train_sets: list[str]
    val_set: str
    num_feat: int
    num_block: int
    num_grow_ch: int
    lr: float

    def check(self) -> None:
        self._check_training("pretrain_psnr")


@dataclasses.dataclass(frozen=True)
class PruneConfig(_Section):
    train_sets: list[str]
    batches: int
    batch_size: int
    crop_size: int
    scope: Literal["shared", "per_block"]
    min_gap: float
    seed: int

    def check(self) -> None:
        if self.crop_size % SCALE:
            _fail("prune", "crop_size", f"{self.crop_size} is not a multiple of {SCALE}")


@dataclasses.dataclass(frozen=True)
class TrainGANConfig(_Training):
    mix: dict[str, int]
    selected_only: list[str]
    val_set: str
    lr_g: float
    lr_attention: float
    lr_d: float
    w_perceptual: float
    w_gan: float
    w_pixel: float
    perceptual_weights: str
    perceptual_layer: Literal["conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"]
    d_num_feat: int

    def check(self) -> None:
        self._check_training("train_gan")
        if self.crop_size not in DISCRIMINATOR_CROPS:
            _fail(
                "train_gan",
                "crop_size",
                f"{self.crop_size} is not an input size of the discriminator; "
                f"allowed: {', '.join(map(str, DISCRIMINATOR_CROPS))}",
            )
        stray = sorted(set(self.selected_only) - set(self.mix))
        if stray:
            _fail("train_gan", "selected_only", f"{stray} not in train_gan.mix {sorted(self.mix)}")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(_Section):
    test_sets: list[str]
    crop_border: int
    test_y_channel: bool
    niqe: bool
    pi: bool
    timing_set: str
    timing_images: int | Literal["all"]
    timing_warmup: int
    timing_repeats: int
    max_attention_mb: int
    compile: bool
    published: dict[str, str]
    export: dict[str, Literal["esrgan", "basicsr"]]
    outside_folders: dict[str, str]

    def check(self) -> None:
        clash = sorted(set(self.published) & set(self.outside_folders))
        if clash:
            _fail("evaluate", "outside_folders", f"{clash} also named in evaluate.published")


@dataclasses.dataclass(frozen=True)
class RenderReportsConfig(_Section):
    bootstrap_samples: int
    seed: int
    grid_crop: int
    attention_query: list[float]


CONFIGS: dict[str, type] = {
    "download_data": DownloadDataConfig,
    "make_lr": MakeLRConfig,
    "make_seg_maps": MakeSegMapsConfig,
    "pretrain_psnr": PretrainPSNRConfig,
    "prune": PruneConfig,
    "train_gan": TrainGANConfig,
    "evaluate": EvaluateConfig,
    "render_reports": RenderReportsConfig,
}


# Keys that choose how a stage runs, not what it computes: changing one reruns nothing (neither tool
# hashes it), and a resumed run may take the new value. Every other key changes results and is hashed.
# gpus: the global batch and its order are the same on any world size (docs/training.md, drift);
# workers: batches are built by a seeded sampler, whoever builds them; log_every and ckpt_every: how
# often the loss is printed and the state saved; max_attention_mb: a memory budget (exact either way);
# downloads_dir and mirror: where verified archives are kept or fetched from.
RUNTIME_KEYS: dict[str, tuple[str, ...]] = {
    "download_data": ("downloads_dir", "mirror"),
    "pretrain_psnr": ("gpus", "workers", "log_every", "ckpt_every"),
    "train_gan": ("gpus", "workers", "log_every", "ckpt_every"),
    "evaluate": ("max_attention_mb",),
}


def runtime_keys(stage: str) -> tuple[str, ...]:
    """The keys of `stage`'s section that choose how it runs (not hashed by Snakemake or DVC)."""
    return RUNTIME_KEYS.get(stage, ())

def _ints_as_ints(cls: type, section: dict) -> dict:
    """Integral floats for integer fields become ints: `dvc exp run -S iters=1e5` writes 100000.0."""
    hints = typing.get_type_hints(cls)
    out = dict(section)
    for name, value in section.items():
        accepts_int = hints.get(name) is int or int in typing.get_args(hints.get(name))
        if accepts_int and isinstance(value, float) and value.is_integer():
            out[name] = int(value)
    return out


def from_section(stage: str, section: dict[str, Any]) -> Any:
    """The typed config of a schema-valid section; raises ConfigError for a cross-key problem."""
    if stage not in CONFIGS:
        raise ConfigError(f"no stage {stage!r}; stages: {', '.join(CONFIGS)}")
    return CONFIGS[stage](**_ints_as_ints(CONFIGS[stage], section))


def check_across_stages(configs: dict[str, Any]) -> None:
    """Constraints between stages, for one profile's configs: crops fit the sub-images, sets exist."""
    lr, seg = configs["make_lr"], configs["make_seg_maps"]
    made = set(lr.train_sets) | set(lr.test_sets)
    problems = []
    for stage in ("pretrain_psnr", "prune", "train_gan"):
        if configs[stage].crop_size > lr.subimage_size:
            problems.append(
                f"{stage}.crop_size: {configs[stage].crop_size} is larger than the training "
                f"sub-images (make_lr.subimage_size {lr.subimage_size})"
            )
    wanted = {
        "pretrain_psnr.train_sets": configs["pretrain_psnr"].train_sets,
        "prune.train_sets": configs["prune"].train_sets,
        "train_gan.mix": list(configs["train_gan"].mix),
    }
    for key, sets in wanted.items():
        missing = sorted(set(sets) - set(lr.train_sets))
        if missing:
            problems.append(f"{key}: {missing} not in make_lr.train_sets")
    for key, name in (
        ("pretrain_psnr.val_set", configs["pretrain_psnr"].val_set),
        ("train_gan.val_set", configs["train_gan"].val_set),
        ("evaluate.timing_set", configs["evaluate"].timing_set),
    ):
        if name not in made:
            problems.append(f"{key}: {name!r} is not made by make_lr (train_sets or test_sets)")
    missing = sorted(set(configs["evaluate"].test_sets) - set(lr.test_sets))
    if missing:
        problems.append(f"evaluate.test_sets: {missing} not in make_lr.test_sets")
    missing = sorted(set(seg.sets) - made)
    if missing:
        problems.append(f"make_seg_maps.sets: {missing} not made by make_lr")
    selected = configs["train_gan"].selected_only
    if selected and selected != [seg.select_set]:
        problems.append(
            f"train_gan.selected_only: {selected} must be [make_seg_maps.select_set] "
            f"= [{seg.select_set!r}] (only that set has a multi-category selection)"
        )
    missing = sorted(made - set(configs["download_data"].datasets))
    if missing:
        problems.append(f"make_lr: {missing} not in download_data.datasets")
    if problems:
        raise ConfigError("params do not fit together:\n" + "\n".join(f"  - {p}" for p in problems))
