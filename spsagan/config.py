"""Typed configs: one dataclass per params.yaml section, and the one declaration of every key.

params.yaml is the only place a setting is made; this module is the only place a key is declared.
Each field is a `key(...)`: its type (the annotation), its range, whether it is a runtime key, and a
one-line doc. Everything else about a key is generated from here (`spsagan.pipeline.param_views`):
the JSON schema file the pipeline validates params.yaml with (`workflow/schemas/params.schema.yaml`)
and the reference in `docs/params.md`. After changing a declaration, regenerate both with
`python -m spsagan.pipeline params-views` (a test fails while they differ).

The schema checks each key's type and range; the `check` methods here hold the constraints a schema
cannot express (one key against another; `check_across_stages`: one stage against another). Both
run when the Snakefile is parsed, so a bad value stops the run before its first stage, with one
line per problem naming the key.

`ConfigError` is the one error type for a configuration a user must fix; anything in the library
that rejects a configured value (an unknown preset, a malformed mask file) raises it too.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar, Literal

from spsagan.errors import ConfigError

PROFILES = ("demo", "paper")
SCALE = 4
DISCRIMINATOR_CROPS = (96, 128)  # the VGG-style discriminator's input sizes (ESRGAN)


def key(
    doc: str,
    *,
    runtime: bool = False,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    length: int | None = None,
    nonempty: bool = False,
) -> Any:
    """Declare a params.yaml key (a dataclass field without a default: every key is required).

    doc: one line, what the key means. runtime: the key chooses how the stage runs, not what it
    computes; changing it reruns nothing (neither Snakemake nor DVC hashes it) and a resumed run may
    take the new value. ge, gt, le, lt: bounds on the numbers, wherever they sit (the value, a list's
    items, a mapping's values). length: a list's exact item count; nonempty: at least one item or entry.
    """
    bounds = {name: value for name, value in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if value is not None}
    rules = {"bounds": bounds, "length": length, "nonempty": nonempty}
    return dataclasses.field(metadata={"doc": doc, "runtime": runtime, "rules": rules})


def declared(cls: type) -> dict[str, dataclasses.Field]:
    """The declared keys of a section class, in declaration order (name -> field with its metadata)."""
    return {f.name: f for f in dataclasses.fields(cls)}


def _fail(stage: str, key: str, message: str) -> None:
    raise ConfigError(f"{stage}.{key}: {message}")


def batch_share(batch_size: int, processes: int, stage: str = "") -> int:
    """Each process's share of a global batch: the one place the split rule lives.

    `batch_size` is the global batch whatever the number of processes, so it must split evenly;
    otherwise ConfigError, naming the keys (`stage`.batch_size and `stage`.gpus when `stage` is given).
    """
    if processes >= 1 and batch_size % processes == 0:
        return batch_size // processes
    where = f"{stage}." if stage else ""
    raise ConfigError(
        f"{where}batch_size: {batch_size} is not divisible by {where}gpus {processes} (batch_size is "
        "the global batch; each process trains on batch_size / gpus)"
    )


class _Section:
    """A params.yaml section: its cross-key `check` runs whenever one is made (also by `dataclasses.replace`)."""

    stage: ClassVar[str] = ""  # the section's name in params.yaml

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class DownloadDataConfig(_Section):
    stage: ClassVar[str] = "download_data"

    source: Literal["demo", "download"] = key(
        "`demo`: scikit-image's bundled photos, written as HR PNG folders (offline); `download`: the "
        "hosts in spsagan/data/assets.py, checksums verified"
    )
    datasets: list[str] = key("datasets to provide, each as a folder of HR PNGs", nonempty=True)
    demo_split: dict[str, list[str]] = key(
        "source `demo`: dataset -> skimage.data image names (`name@HxW`: a centre crop)"
    )
    downloads_dir: str = key("archive cache (resumable, verified); not a pipeline output", runtime=True)
    mirror: str = key("local folder or URL prefix holding the asset files; '' = the original hosts", runtime=True)
    local: dict[str, str] = key("dataset -> an archive file or extracted folder you already have")

    def check(self) -> None:
        unknown = sorted(set(self.demo_split) - set(self.datasets)) if self.source == "demo" else []
        if unknown:
            _fail(self.stage, "demo_split", f"names datasets not in download_data.datasets: {unknown}")


@dataclasses.dataclass(frozen=True)
class MakeLRConfig(_Section):
    stage: ClassVar[str] = "make_lr"

    scale: Literal[4] = key("upscaling factor (the pipeline is x4 only)")
    train_sets: list[str] = key("sets cut into training sub-images")
    test_sets: list[str] = key("sets kept whole for validation and evaluation", nonempty=True)
    subimage_size: int = key("side of the training sub-images, in HR pixels (a multiple of scale)", ge=16)
    subimage_step: int = key("step between training sub-images, in HR pixels (a multiple of scale)", ge=4)
    min_size: int = key("training images smaller than this (HR pixels) are refused, named in the error", ge=16)

    def check(self) -> None:
        overlap = sorted(set(self.train_sets) & set(self.test_sets))
        if overlap:
            _fail(self.stage, "test_sets", f"{overlap} also in make_lr.train_sets; a set is either trained or tested")
        if self.subimage_size % self.scale:
            _fail(self.stage, "subimage_size", f"{self.subimage_size} is not a multiple of the scale {self.scale}")
        if self.subimage_step % self.scale:
            _fail(self.stage, "subimage_step", f"{self.subimage_step} is not a multiple of the scale {self.scale}")


@dataclasses.dataclass(frozen=True)
class MakeSegMapsConfig(_Section):
    stage: ClassVar[str] = "make_seg_maps"

    segmenter: Literal["standin", "outdoor_scene_seg"] = key(
        "`outdoor_scene_seg`: SFTGAN's 8-class OutdoorSceneSeg; `standin`: offline colour/texture "
        "clusters, not semantic categories"
    )
    weights: str = key("the segmenter's weights file ('' for the stand-in)")
    weights_sha256: str = key("the weights file's expected sha256; '' = not pinned")
    sets: list[str] = key("sets whose images and training sub-images get segmentation maps")
    batch_size: int = key("images per forward pass", ge=1)
    seed: int = key("the segmenter's seed (the stand-in's clustering, random stand-in weights)", ge=0)
    select_set: str = key("the set whose multi-category images form the selection (the paper: DIV2K)")
    min_categories: int = key(
        "an image is multi-category when at least this many classes each cover min_fraction of it", ge=1, le=8
    )
    min_fraction: float = key("the share of an image's pixels (argmax) a class must cover to count", ge=0, le=1)
    figures_per_set: int = key("segmentation figures of the first images of each test set", ge=0)

    def check(self) -> None:
        if self.select_set not in self.sets:
            _fail(self.stage, "select_set", f"{self.select_set!r} is not in make_seg_maps.sets {self.sets}")


@dataclasses.dataclass(frozen=True)
class _Training(_Section):
    """Settings both training stages share (same names, same meaning)."""

    iters: int = key("training iterations", ge=1)
    batch_size: int = key("crops per iteration: the global batch, split evenly over the gpus processes", ge=1)
    crop_size: int = key("HR crop side (a multiple of 4; the LR crop is a quarter of it)", ge=16)
    lr_step: int = key("every learning rate is multiplied by lr_gamma every lr_step iterations", ge=1)
    lr_gamma: float = key("the factor applied to every learning rate each lr_step iterations", gt=0)
    adam_betas: list[float] = key("Adam's beta1 and beta2", ge=0, lt=1, length=2)
    val_every: int = key("iterations between validations (PSNR on the held-out images; also at the end)", ge=1)
    # Runtime: how often the state is saved, not what is trained.
    ckpt_every: int = key("iterations between resume checkpoints (also at the end and on a signal)", ge=1, runtime=True)
    # Runtime: how often the loss is logged, not what is trained.
    log_every: int = key("iterations between logged loss means (dvclive rows)", ge=1, runtime=True)
    seeds: list[int] = key(
        "training runs, one job each: the seed of initialisation and sample stream (batch k is a function of "
        "seed and k); adding one runs only the new jobs",
        ge=0,
        nonempty=True,
    )
    deterministic: bool = key("deterministic algorithms: bitwise reproducible, slower on a GPU")
    mixed_precision: bool = key("bf16 autocast on CUDA (no effect on a CPU); reports name the precision used")
    tf32: bool = key("float32 convolutions and matmuls in TF32 on Ampere and newer GPUs (false: true float32)")
    channels_last: Literal["auto"] | bool = key("NHWC memory format; `auto`: on CUDA only")
    # Runtime: batches are built by a seeded sampler, whoever builds them.
    workers: int = key("batch-building processes per training process (0: in the training process)", ge=0, runtime=True)
    # Runtime: the global batch and its order are the same on any world size; results differ only
    # within float reduction order (docs/training.md, drift).
    gpus: int = key(
        "training processes, one GPU each, started by torchrun; batch_size is split over them", ge=1, runtime=True
    )
    # Runtime, as gpus: compiled kernels change results only within float rounding.
    compile: bool = key("torch.compile fast path (compiling takes minutes; a CPU needs a C++ compiler)", runtime=True)

    @property
    def seed(self) -> int:
        """This run's seed. The pipeline runs one job per seed and hands each its own (`seeds: [s]`); run by
        hand, a step takes the first seed of the list."""
        return self.seeds[0]

    def _check_training(self) -> None:
        repeated = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
        if repeated:
            _fail(self.stage, "seeds", f"{repeated} listed more than once; each seed is one training run")
        if self.crop_size % SCALE:
            _fail(
                self.stage, "crop_size", f"{self.crop_size} is not a multiple of {SCALE} (the LR crop is crop_size / 4)"
            )
        batch_share(self.batch_size, self.gpus, self.stage)

    def check_world(self, size: int, by_torchrun: bool) -> None:
        """The one check of gpus against the launch: torchrun started exactly `gpus` processes
        (`size`: its WORLD_SIZE; a process started without torchrun is a world of one)."""
        name = f"{self.stage}.gpus"
        command = f"`torchrun --standalone --nproc_per_node {self.gpus} steps/{self.stage}.py ...`"
        if not by_torchrun and self.gpus > 1:
            raise ConfigError(
                f"{name} is {self.gpus}, but this process was not started by torchrun; run {command} "
                f"(or set {name} to 1)"
            )
        if by_torchrun and size != self.gpus:
            raise ConfigError(
                f"{name} is {self.gpus}, but torchrun started {size} processes (WORLD_SIZE); run {command} "
                f"or set {name} to {size}"
            )

    def lr_milestones(self) -> list[int]:
        """Iterations at which every rate is multiplied by lr_gamma: every lr_step, before iters."""
        return list(range(self.lr_step, self.iters, self.lr_step))


@dataclasses.dataclass(frozen=True)
class PretrainPSNRConfig(_Training):
    stage: ClassVar[str] = "pretrain_psnr"

    train_sets: list[str] = key("sets trained on (every sub-image equally likely)", nonempty=True)
    val_set: str = key("the held-out set validated on")
    num_feat: int = key("generator width (features of the trunk)", ge=8)
    num_block: int = key("RRDB (or RRSB) blocks", ge=1)
    num_grow_ch: int = key("growth channels of each dense block", ge=4)
    lr: float = key("Adam learning rate of the L1 pretraining", gt=0)

    def check(self) -> None:
        self._check_training()


@dataclasses.dataclass(frozen=True)
class PruneConfig(_Section):
    stage: ClassVar[str] = "prune"

    train_sets: list[str] = key("sets the training crops come from", nonempty=True)
    batches: int = key("K: batches of training crops averaged for the dissimilarity (eq. 8)", ge=1)
    batch_size: int = key("crops per batch", ge=1)
    crop_size: int = key("HR crop side (a multiple of 4)", ge=16)
    scope: Literal["shared", "per_block"] = key(
        "`shared`: one pattern for all dense blocks (paper Fig. 5); `per_block`: one per block"
    )
    min_gap: float = key(
        "keep every connection when the two K-means cluster means differ by less than this fraction", ge=0, le=1
    )
    seed: int = key("crop sampling seed", ge=0)

    def check(self) -> None:
        if self.crop_size % SCALE:
            _fail(self.stage, "crop_size", f"{self.crop_size} is not a multiple of {SCALE}")


@dataclasses.dataclass(frozen=True)
class TrainGANConfig(_Training):
    stage: ClassVar[str] = "train_gan"

    mix: dict[str, int] = key("training set -> sampling ratio (the paper: OST : DIV2K = 10 : 1)", ge=1, nonempty=True)
    selected_only: list[str] = key("sets restricted to make_seg_maps' multi-category selection")
    val_set: str = key("the held-out set validated on")
    lr_g: float = key("generator learning rate, outside the attention layer", gt=0)
    lr_attention: float = key("learning rate of the SPSA / FA layer and the segmentation transform", gt=0)
    lr_d: float = key("discriminator learning rate", gt=0)
    w_perceptual: float = key("weight of the perceptual loss (L1 of VGG19 features)", ge=0)
    w_gan: float = key("weight of the adversarial loss (relativistic average)", ge=0)
    w_pixel: float = key("weight of the L1 pixel loss", ge=0)
    perceptual_weights: str = key(
        "torchvision's VGG19 file; '' = one random VGG19 (seed 0) for every run: the offline stand-in, labelled"
    )
    perceptual_layer: Literal["conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"] = key(
        "VGG19 features (before ReLU) of the perceptual loss"
    )
    d_num_feat: int = key("discriminator width", ge=4)
    ragan_detach: bool = key(
        "detach the opposite mean in the discriminator's RaGAN loss (BasicSR 1.x); false: ESRGAN's original"
    )

    def check(self) -> None:
        self._check_training()
        if self.crop_size not in DISCRIMINATOR_CROPS:
            _fail(
                self.stage,
                "crop_size",
                f"{self.crop_size} is not an input size of the discriminator; "
                f"allowed: {', '.join(map(str, DISCRIMINATOR_CROPS))}",
            )
        stray = sorted(set(self.selected_only) - set(self.mix))
        if stray:
            _fail(self.stage, "selected_only", f"{stray} not in train_gan.mix {sorted(self.mix)}")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(_Section):
    stage: ClassVar[str] = "evaluate"

    test_sets: list[str] = key("sets scored (each one of make_lr.test_sets)", nonempty=True)
    crop_border: int = key("pixels shaved on each side before PSNR/SSIM (and PI)", ge=0)
    test_y_channel: bool = key("PSNR/SSIM on MATLAB's Y channel (false: on RGB)")
    niqe: bool = key("score NIQE")
    pi: bool = key("score PI (needs pyiqa and its NRQM weights; otherwise reported as not available)")
    timing_set: str = key("the set inference time is measured on")
    timing_images: Literal["all"] | int = key("images of timing_set timed: `all`, or the first N", ge=1)
    timing_warmup: int = key("untimed runs before timing", ge=0)
    timing_repeats: int = key("timed runs per image", ge=1)
    # Runtime: a memory budget; attention is exact whatever it is.
    max_attention_mb: int = key("MB of attention maps alive at once in SPSA/FA inference", ge=1, runtime=True)
    compile: bool = key("torch.compile the models for SR and timing (reported in the costs)")
    tf32: bool = key("float32 convolutions and matmuls in TF32 on Ampere and newer GPUs (false: true float32)")
    published: dict[str, str] = key("column name -> published weights file (ESRGAN, BasicSR, SFTGAN layouts)")
    published_keys: dict[str, Literal["params", "params_ema"]] = key(
        "column name -> which weights of a BasicSR file holding both (default `params`, BasicSR's test default)"
    )
    export: dict[str, Literal["esrgan", "basicsr"]] = key(
        "our model -> layout; each is exported, loaded back and evaluated (it must equal the model)"
    )
    outside_folders: dict[str, str] = key("column name -> folder of `<dataset>/<image>.png` SR results made elsewhere")

    def check(self) -> None:
        clash = sorted(set(self.published) & set(self.outside_folders))
        if clash:
            _fail(self.stage, "outside_folders", f"{clash} also named in evaluate.published")


@dataclasses.dataclass(frozen=True)
class RenderReportsConfig(_Section):
    stage: ClassVar[str] = "render_reports"

    bootstrap_samples: int = key("bootstrap resamples of each interval", ge=100)
    seed: int = key("bootstrap seed", ge=0)
    grid_crop: int = key("HR pixels of each crop in the Fig. 11-style grid", ge=16)
    attention_query: list[float] = key(
        "query pixel of the Fig. 6-style figure (fractions of height and width)", ge=0, le=1, length=2
    )


@dataclasses.dataclass(frozen=True)
class StudyReportConfig(_Section):
    stage: ClassVar[str] = "study_report"

    bootstrap_samples: int = key("bootstrap resamples of the raters for each mean-rank interval (Fig. 9)", ge=100)
    seed: int = key("bootstrap seed", ge=0)


CONFIGS: dict[str, type] = {
    cls.stage: cls
    for cls in (
        DownloadDataConfig,
        MakeLRConfig,
        MakeSegMapsConfig,
        PretrainPSNRConfig,
        PruneConfig,
        TrainGANConfig,
        EvaluateConfig,
        StudyReportConfig,
        RenderReportsConfig,
    )
}


def runtime_keys(stage: str) -> tuple[str, ...]:
    """The keys of `stage`'s section that choose how it runs (not hashed by Snakemake or DVC)."""
    cls = CONFIGS.get(stage)
    return tuple(name for name, f in declared(cls).items() if f.metadata["runtime"]) if cls else ()


def _accepts_int(hint: Any) -> bool:
    """Whether a field's type takes an int: int itself, a union with int, or a Literal of ints."""
    if hint is int:
        return True
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Literal:
        return any(type(a) is int for a in args)
    return any(_accepts_int(a) for a in args) if args and typing.get_origin(hint) not in (list, dict) else False


def _ints_as_ints(cls: type, section: dict) -> dict:
    """Integral floats for integer fields become ints: `dvc exp run -S iters=1e5` writes 100000.0."""
    hints = typing.get_type_hints(cls)
    out = dict(section)
    for name, value in section.items():
        if isinstance(value, float) and value.is_integer() and _accepts_int(hints.get(name)):
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
