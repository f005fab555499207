"""What a profile needs from outside the pipeline: one `Need` per dataset, weights file and model.

Derived from the typed configs (`needed_assets`); `verify` decides the state of each.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from spsagan.data.assets import ASSETS, PUBLISHED_WEIGHTS, Asset, Checksum, get_asset, get_dataset
from spsagan.errors import ConfigError

REQUIRED, WARNING, OPTIONAL = "required", "warning", "optional"  # what a missing file means
EXTRACTED = "results/download_data"  # download_data's output (workflow/stages.yaml)


@dataclasses.dataclass(frozen=True)
class Need:
    """One thing a run needs. Paths are as configured (relative to the project root)."""

    name: str  # the table's asset column, e.g. "OST: OutdoorSceneTrain_v2.zip"
    needed_by: str  # the setting that asks for it, e.g. "train_gan.perceptual_weights"
    target: Path | None  # where the pipeline reads it and `make fetch` puts it (None: setting empty)
    asset: Asset | None = None  # registry entry (URL, page, checksum); None for files it does not know
    severity: str = REQUIRED
    also: tuple[Path, ...] = ()  # folders that count as present (the extracted dataset)
    local: Path | None = None  # download_data.local: the user's own copy, must exist
    later: str = ""  # the stage that downloads it when absent ("download_data"), "" when none does
    alternative: str = ""  # another setting that can name the user's copy ("download_data.local.OST")
    pin: Checksum | None = None  # a digest pinned in params (make_seg_maps.weights_sha256)
    source: str = ""  # where to get it, when not from `asset`
    consequence: str = ""  # what a missing warning or optional file means for the results
    folder: bool = False  # the target is a folder
    package: str = ""  # a Python package, not a file

    @property
    def checksum(self) -> Checksum | None:
        return self.pin or (self.asset.checksum if self.asset else None)

    def fetchable(self, mirror: str | None = None) -> bool:
        """Whether `fetch_asset` can get it without a person: from the mirror, or from a direct URL."""
        if self.asset is None or self.target is None or self.local is not None:
            return False
        return _use_mirror(self.asset, mirror) is not None or (not self.asset.manual and self.asset.url is not None)

    def where_from(self) -> str:
        if self.source:
            return self.source
        if self.asset is None:
            return ""
        return self.asset.page if self.asset.manual or not self.asset.url else self.asset.url


def torch_hub_dir() -> Path:
    """`torch.hub.get_dir()` without importing torch: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def nrqm_path() -> Path:
    """Where pyiqa, and so evaluate's PI (`spsagan.evaluation.default_nrqm_path`), reads NRQM_model.mat."""
    return torch_hub_dir() / "pyiqa" / ASSETS["pyiqa_nrqm"].filename


def needed_assets(params: dict, profile: str | None = None, extracted: str | os.PathLike = EXTRACTED) -> list[Need]:
    """Everything the profile's settings need from outside the pipeline (schema-valid `params`)."""
    from spsagan.pipeline.params import typed_configs

    profile = profile or params["profile"]
    cfg = typed_configs(params, profile)
    needs = []
    download = cfg["download_data"]
    if download.source == "download":
        for name in download.datasets:
            try:
                asset = get_asset(get_dataset(name).asset)
            except ConfigError as exc:
                raise ConfigError(f"download_data.datasets: {exc}") from None
            local = download.local.get(name)
            needs.append(
                Need(
                    f"{name}: {asset.filename}",
                    "download_data.datasets",
                    Path(download.downloads_dir) / asset.filename,
                    asset,
                    also=(Path(extracted) / name / "HR",),
                    local=Path(local) if local else None,
                    later="download_data",
                    alternative=f"download_data.local.{name}",
                )
            )
    seg = cfg["make_seg_maps"]
    if seg.segmenter == "outdoor_scene_seg":
        asset = ASSETS["OutdoorSceneSeg"]
        try:
            pin = Checksum("sha256", seg.weights_sha256.strip().lower()) if seg.weights_sha256 else None
        except ValueError as exc:
            raise ConfigError(f"make_seg_maps.weights_sha256: {exc}") from None
        needs.append(
            Need(
                f"OutdoorSceneSeg: {asset.filename}",
                "make_seg_maps.weights",
                Path(seg.weights) if seg.weights else None,
                asset,
                pin=pin,
            )
        )
    gan = cfg["train_gan"]
    if gan.w_perceptual > 0 and gan.perceptual_weights:
        asset = ASSETS["vgg19"]
        needs.append(
            Need(f"VGG19: {asset.filename}", "train_gan.perceptual_weights", Path(gan.perceptual_weights), asset)
        )
    evaluate = cfg["evaluate"]
    if evaluate.pi:
        asset = ASSETS["pyiqa_nrqm"]
        needs.append(
            Need(
                "pyiqa (Python package)",
                "evaluate.pi",
                None,
                severity=WARNING,
                package="pyiqa",
                source="make setup EXTRAS=gpu (pip install pyiqa)",
                consequence="PI not reported",
            )
        )
        needs.append(
            Need(
                f"NRQM: {asset.filename}",
                "evaluate.pi",
                nrqm_path(),
                asset,
                severity=WARNING,
                consequence="PI not reported",
            )
        )
    for column, path in evaluate.published.items():
        filename = Path(path).name
        needs.append(
            Need(
                f"{column}: {filename}",
                f"evaluate.published.{column}",
                Path(path),
                severity=OPTIONAL,
                source=PUBLISHED_WEIGHTS.get(filename, "its authors' release (docs/data.md)"),
                consequence="column skipped",
            )
        )
    for column, folder in evaluate.outside_folders.items():
        needs.append(
            Need(
                f"{column}: result images",
                f"evaluate.outside_folders.{column}",
                Path(folder),
                source="its authors' released results, <dataset>/<image>.png",
                folder=True,
            )
        )
    return needs


def _mirror_folder(mirror: str | None) -> Path | None:
    if not mirror or mirror.startswith(("http://", "https://")):
        return None
    return Path(mirror[len("file://") :]) if mirror.startswith("file://") else Path(mirror)


def _use_mirror(asset: Asset, mirror: str | None) -> str | None:
    """The mirror to fetch `asset` from: a URL mirror always, a mirror folder only when it holds the file."""
    folder = _mirror_folder(mirror)
    if folder is None:
        return mirror or None
    return mirror if (folder / asset.filename).is_file() else None
