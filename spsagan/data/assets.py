"""Registry of every external file the paper profile needs: where from, how big, how verified.

Three plain dicts:

- `ASSETS`: asset key -> `Asset` (one downloadable file: an archive or a weights file).
- `DATASETS`: dataset name -> `DatasetSource` (which asset holds it, the folder inside the archive
  that holds its HR images, and how many images that folder must contain).
- `PUBLISHED_WEIGHTS`: file name of a Table 1 baseline's weights -> where it comes from (never fetched).

`spsagan.pipeline.preflight` derives from these and the profile's settings the list of files a run will need.

Checksums are the ones published by the hosts or by widely used loaders (sources in docs/data.md).
`None` means no checksum is known: such a file is accepted on its size and image count only, and
its sha256 is recorded in the dataset's provenance so later runs can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from spsagan.errors import ConfigError

_DIGEST_LENGTH = {"sha256": 64, "md5": 32}


@dataclass(frozen=True)
class Checksum:
    """A hex digest, or a prefix of one (torchvision names its weights `<name>-<sha256[:8]>.pth`)."""

    algorithm: str  # "sha256" or "md5"
    hexdigest: str  # lower-case hex; shorter than the full digest means "prefix"

    def __post_init__(self):
        full = _DIGEST_LENGTH.get(self.algorithm)
        if full is None:
            raise ValueError(f"checksum algorithm must be one of {sorted(_DIGEST_LENGTH)}, got {self.algorithm!r}")
        digest = self.hexdigest
        if not (8 <= len(digest) <= full and all(c in "0123456789abcdef" for c in digest)):
            raise ValueError(f"{self.algorithm} checksum must be 8..{full} lower-case hex digits, got {digest!r}")

    @property
    def is_prefix(self) -> bool:
        return len(self.hexdigest) < _DIGEST_LENGTH[self.algorithm]

    def matches(self, actual_hexdigest: str) -> bool:
        return actual_hexdigest.lower().startswith(self.hexdigest)

    def describe(self) -> str:
        kind = f"{self.algorithm} prefix" if self.is_prefix else self.algorithm
        return f"{kind} {self.hexdigest}"


@dataclass(frozen=True)
class Asset:
    """One external file.

    url: direct download URL (None when only a manual download from `page` works).
    page: the human-readable page a user opens to get the file by hand.
    manual: True when no scripted download is possible (Google Drive / Baidu folders).
    instructions: what to download on `page` when it is manual (or when the direct link is dead).
    unchecked: how a copy is checked when no checksum or size is published (default: as a dataset archive).
    """

    key: str
    filename: str
    url: str | None
    page: str
    size: int | None
    checksum: Checksum | None
    license: str
    manual: bool = False
    instructions: str = ""
    unchecked: str = "no published checksum: only that it is a readable archive with the expected image count"

    def verification(self) -> str:
        """One phrase saying how a copy of this file is checked."""
        parts = []
        if self.checksum is not None:
            parts.append(self.checksum.describe())
        if self.size is not None:
            parts.append(f"size {self.size:,} bytes")
        if not parts:
            return self.unchecked
        return " and ".join(parts)


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset's HR images live.

    asset: key in ASSETS.
    member: folder inside the archive (posix path) holding the HR images, possibly in subfolders.
    count: exact number of HR images expected there (None if unknown).
    """

    asset: str
    member: str
    count: int | None
    description: str


_DIV2K_PAGE = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
_DIV2K_LICENSE = "DIV2K: academic research use only; images remain their owners' copyright"
_EDSR_PAGE = "https://github.com/sanghyun-son/EDSR-PyTorch"
_SFTGAN_PAGE = "https://github.com/xinntao/SFTGAN"
_OST_DRIVE = "https://drive.google.com/drive/folders/1LIb631GU3bOyQVTeuALesD8_eoApNniB"
_SFTGAN_MODELS_DRIVE = "https://drive.google.com/drive/folders/16owosaM_ADAm2FmVI9eKmuYzULVeBy7t"
_PYIQA_WEIGHTS = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"

ASSETS: dict[str, Asset] = {
    "DIV2K_train_HR": Asset(
        key="DIV2K_train_HR",
        filename="DIV2K_train_HR.zip",
        url="https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
        page=_DIV2K_PAGE,
        size=3_530_603_713,
        checksum=Checksum("sha256", "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"),
        license=_DIV2K_LICENSE,
    ),
    "DIV2K_valid_HR": Asset(
        key="DIV2K_valid_HR",
        filename="DIV2K_valid_HR.zip",
        url="https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
        page=_DIV2K_PAGE,
        size=448_993_893,
        checksum=Checksum("sha256", "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"),
        license=_DIV2K_LICENSE,
    ),
    "Flickr2K": Asset(
        key="Flickr2K",
        filename="Flickr2K.tar",
        url="https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar",
        page=_EDSR_PAGE,
        size=None,  # not published; reported to be about 20 GB
        checksum=Checksum("md5", "5d3f39443d5e9489bff8963f8f26cb03"),
        license="Flickr2K (EDSR, NTIRE 2017): research use; images from Flickr under their authors' terms",
        instructions="The SNU host has been reported dead; if the download fails, get Flickr2K.tar from any mirror "
        "you trust (it is verified by md5).",
    ),
    "benchmark": Asset(
        key="benchmark",
        filename="benchmark.tar",
        url="https://cv.snu.ac.kr/research/EDSR/benchmark.tar",
        page=_EDSR_PAGE,
        size=None,  # about 250 MB (EDSR-PyTorch README)
        checksum=Checksum("md5", "4ace41d33c2384b97e6b320cd0afd6ba"),
        license="Set5 / Set14 / BSD100 (BSDS300 test images) / Urban100 as repacked by EDSR: research use, each set "
        "under its original terms",
        instructions="The SNU host has been reported dead; the same four sets are on figshare "
        "(https://figshare.com/articles/dataset/BSD100_Set5_Set14_Urban100/21586188) but packed differently: "
        "extract them and pass the folder holding one set's HR images as `local`.",
    ),
    "OST_train": Asset(
        key="OST_train",
        filename="OutdoorSceneTrain_v2.zip",
        url=None,
        page=_OST_DRIVE,
        size=None,
        checksum=None,
        license="OutdoorScene (SFTGAN, CVPR 2018): research use",
        manual=True,
        instructions="On the SFTGAN OST Google Drive folder (also linked from " + _SFTGAN_PAGE + "), download the "
        "folder OutdoorSceneTrain_v2 (10,324 PNGs in 7 category folders). Google Drive may split it into several "
        "zips: extract them all into one folder and pass that folder as `local`, or re-zip it as "
        "OutdoorSceneTrain_v2.zip.",
    ),
    "OST300": Asset(
        key="OST300",
        filename="OutdoorSceneTest300.zip",
        url=None,
        page=_OST_DRIVE,
        size=None,
        checksum=None,
        license="OutdoorScene (SFTGAN, CVPR 2018): research use",
        manual=True,
        instructions="On the SFTGAN OST Google Drive folder (also linked from " + _SFTGAN_PAGE + "), download the "
        "OutdoorSceneTest300 images (300 PNGs, OST_001.png ... OST_300.png; not the annotation masks). Save the zip "
        "as OutdoorSceneTest300.zip, or extract it and pass the folder holding the 300 images as `local`.",
    ),
    "vgg19": Asset(
        key="vgg19",
        filename="vgg19-dcbb9e9d.pth",
        url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        page="https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg19.html",
        size=None,  # about 548 MB
        checksum=Checksum("sha256", "dcbb9e9d"),
        license="torchvision model weights (BSD-3-Clause code); trained on ImageNet, whose terms apply",
    ),
    "OutdoorSceneSeg": Asset(
        key="OutdoorSceneSeg",
        filename="segmentation_OST_bic.pth",
        url=None,
        page=_SFTGAN_MODELS_DRIVE,
        size=None,
        checksum=None,
        license="SFTGAN project release (" + _SFTGAN_PAGE + "); see its README for terms",
        manual=True,
        instructions="On the SFTGAN pretrained-models Google Drive folder (linked from " + _SFTGAN_PAGE + " "
        "pretrained_models/README.md), download segmentation_OST_bic.pth (the PyTorch segmentation model for "
        "bicubic-upsampled input; not the .t7 Torch file).",
        unchecked="no published checksum: make_seg_maps loads it strictly and checks its parameter count "
        "(pin your copy with make_seg_maps.weights_sha256)",
    ),
    "pyiqa_nrqm": Asset(
        key="pyiqa_nrqm",
        filename="NRQM_model.mat",
        url=_PYIQA_WEIGHTS + "NRQM_model.mat",
        page="https://github.com/chaofengc/IQA-PyTorch",
        size=None,
        checksum=None,
        license="Ma et al. NRQM model as redistributed by pyiqa (chaofengc/IQA-PyTorch); see that project's terms",
        instructions="Alternative URL: https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/"
        "NRQM_model.mat",
        unchecked="no published checksum: pyiqa loads it when PI is computed",
    ),
    "pyiqa_niqe": Asset(
        key="pyiqa_niqe",
        filename="niqe_modelparameters.mat",
        url=_PYIQA_WEIGHTS + "niqe_modelparameters.mat",
        page="https://github.com/chaofengc/IQA-PyTorch",
        size=None,
        checksum=None,
        license="NIQE pristine model (LIVE) as redistributed by pyiqa (chaofengc/IQA-PyTorch); "
        "see that project's terms",
        instructions="Alternative URL: https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/"
        "niqe_modelparameters.mat",
        unchecked="no published checksum: pyiqa loads it",
    ),
}

DATASETS: dict[str, DatasetSource] = {
    "DIV2K": DatasetSource("DIV2K_train_HR", "DIV2K_train_HR", 800, "DIV2K training HR images 0001-0800"),
    "DIV2K_valid": DatasetSource("DIV2K_valid_HR", "DIV2K_valid_HR", 100, "DIV2K validation HR images 0801-0900"),
    "Flickr2K": DatasetSource("Flickr2K", "Flickr2K/Flickr2K_HR", 2650, "Flickr2K HR images"),
    "Set5": DatasetSource("benchmark", "benchmark/Set5/HR", 5, "Set5 HR (EDSR benchmark pack)"),
    "Set14": DatasetSource("benchmark", "benchmark/Set14/HR", 14, "Set14 HR (EDSR benchmark pack)"),
    "BSD100": DatasetSource("benchmark", "benchmark/B100/HR", 100, "BSD100 HR (EDSR benchmark pack, B100)"),
    "Urban100": DatasetSource("benchmark", "benchmark/Urban100/HR", 100, "Urban100 HR (EDSR benchmark pack)"),
    "OST": DatasetSource("OST_train", "OutdoorSceneTrain_v2", 10_324, "OST training images, 7 category folders"),
    "OST300": DatasetSource("OST300", "OutdoorSceneTest300", 300, "OST300 test images"),
}


def get_asset(key: str) -> Asset:
    """ASSETS[key] with an error that lists the known keys."""
    try:
        return ASSETS[key]
    except KeyError:
        raise ConfigError(f"unknown asset {key!r}; known assets: {', '.join(sorted(ASSETS))}") from None


def get_dataset(name: str) -> DatasetSource:
    """DATASETS[name] with an error that lists the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {name!r}; downloadable datasets: {', '.join(sorted(DATASETS))} "
            "(the demo profile uses source='demo' instead)"
        ) from None


# Published weights of Table 1's baselines (evaluate.published): file name -> where it comes from. They sit
# behind Google Drive links without checksums, so nothing fetches them; a missing one is skipped and named.
_ESRGAN_RELEASE = "ESRGAN's release (github.com/xinntao/ESRGAN, models/ via the Google Drive link in its README)"
PUBLISHED_WEIGHTS: dict[str, str] = {
    "RRDB_ESRGAN_x4.pth": _ESRGAN_RELEASE,
    "RRDB_PSNR_x4.pth": _ESRGAN_RELEASE,
    "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth": "BasicSR's model zoo (github.com/XPixelGroup/BasicSR, ModelZoo.md)",
    "MSRResNet_x4.pth": "BasicSR's model zoo (github.com/XPixelGroup/BasicSR, ModelZoo.md: SRResNet, MSRResNet_x4)",
    "MSRGAN_x4.pth": "BasicSR's model zoo (github.com/XPixelGroup/BasicSR, ModelZoo.md: SRGAN, MSRGAN_x4)",
    "SFTGAN_noBN_OST_bg.pth": "SFTGAN's release (github.com/xinntao/SFTGAN, pretrained_models/ via its README)",
    "SFTGAN_torch.pth": "SFTGAN's release (github.com/xinntao/SFTGAN, pretrained_models/ via its README)",
}
