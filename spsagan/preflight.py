"""Preflight: every external file a profile will need, checked before any stage runs.

A paper run needs files that no stage can make: dataset archives, files only a person can download
(Google Drive), the VGG19 of the perceptual loss, the segmentation model, pyiqa's NRQM model for PI.
Without a check up front, a missing one stops the run days in (train_gan after pretraining).

- `needed_assets(params, profile)`: what the profile's settings need, derived from the typed configs:
  the datasets of `download_data.datasets`, `make_seg_maps.weights` (OutdoorSceneSeg),
  `train_gan.perceptual_weights` (VGG19, when `w_perceptual` > 0), NRQM and pyiqa (when `evaluate.pi`),
  `evaluate.published` (optional) and `evaluate.outside_folders`.
- `inspect(...)`: one `Row` per need: present (and verified), fetched later by download_data,
  missing, or wrong (fails its checksum).
- `check(...)`: prints one table (asset, needed by, status, where to get it, where to put it) and raises
  ConfigError listing every missing required file at once. The Snakefile calls it for the paper profile.
- `fetch(...)` (`make fetch`): downloads every fetchable file that is absent, verified, then reports
  what is left (the manual downloads).

What counts as present: a dataset when `download_data.local` names an existing path, when download_data
already extracted it (`results/download_data/<name>/HR`), or when its archive in `downloads_dir`
verifies. An absent dataset that can be downloaded is not an error (download_data downloads it); an
absent manual one is. A weights file must be at the path its setting names, and verify. Missing NRQM
(or pyiqa) only means PI is reported as not available: a warning. Missing published weights only
drop their Table 1 column: optional.

Checksums of large files take a while, so a file that verified once is remembered by path, size and
modification time in a small cache file (`.snakemake/spsagan_preflight.json`); `fetch` records what it
downloads there too.

CLI: `python -m spsagan.preflight [--profile paper] [--fetch] [--mirror DIR_OR_URL]`; exit status 1 when
a required file is missing or a download failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

from spsagan.config import ConfigError
from spsagan.data.assets import ASSETS, PUBLISHED_WEIGHTS, Asset, Checksum, get_asset, get_dataset
from spsagan.data.download import ChecksumMismatch, DownloadError, fetch_asset, verify_file

REQUIRED, WARNING, OPTIONAL = "required", "warning", "optional"  # what a missing file means
OK, LATER, MISSING, WRONG = "ok", "later", "missing", "wrong"  # the state of one need
EXTRACTED = "results/download_data"  # download_data's output (workflow/stages.yaml)
CACHE = ".snakemake/spsagan_preflight.json"
FETCH_HINT = "`make fetch` (on a machine with internet: the login node)"
_ANNOUNCE_BYTES = 256 << 20  # say so before hashing a file this large


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


@dataclasses.dataclass(frozen=True)
class Row:
    need: Need
    state: str
    detail: str = ""  # where it was found, or what is wrong with it

    @property
    def is_error(self) -> bool:
        return self.need.severity == REQUIRED and self.state in (MISSING, WRONG)

    def status(self, mirror: str | None = None) -> str:
        need = self.need
        if self.state == OK:
            return "ok"
        if self.state == LATER:
            return f"{need.later} gets it"
        if self.state == WRONG:
            return "WRONG FILE" if need.severity == REQUIRED else f"wrong file ({need.severity})"
        if need.severity == REQUIRED:
            return "MISSING: make fetch" if need.fetchable(mirror) else "MISSING: by hand"
        return f"missing: {need.consequence}" if need.consequence else f"missing ({need.severity})"

    def where_to_put(self) -> str:
        need = self.need
        if self.state == OK and self.detail:
            return self.detail
        if need.package:
            return "the Python environment"
        if need.target is None:
            return f"{need.needed_by} (empty: set it to the file's path)"
        return _show(need.target)


@dataclasses.dataclass
class Report:
    profile: str
    rows: list[Row]
    mirror: str | None = None
    failures: list[str] = dataclasses.field(default_factory=list)  # downloads that failed (fetch)

    @property
    def errors(self) -> list[Row]:
        return [r for r in self.rows if r.is_error]

    @property
    def warnings(self) -> list[Row]:
        return [r for r in self.rows if not r.is_error and r.state in (MISSING, WRONG)]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failures

    def summary(self) -> str:
        counts = [f"{sum(r.state == OK for r in self.rows)} ok"]
        later = sum(r.state == LATER for r in self.rows)
        counts += [f"{later} downloaded by download_data"] if later else []
        counts += [f"{len(self.errors)} missing or wrong"] if self.errors else []
        warnings = sum(r.need.severity == WARNING for r in self.warnings)
        counts += [f"{warnings} warnings"] if warnings else []
        counts += [f"{len(self.warnings) - warnings} optional missing"] if len(self.warnings) > warnings else []
        return f"Preflight, {self.profile} profile: {len(self.rows)} assets, {', '.join(counts)}"

    def table(self) -> str:
        header = ("asset", "needed by", "status", "where to get it", "where to put it")
        body = [
            (r.need.name, r.need.needed_by, r.status(self.mirror), r.need.where_from(), r.where_to_put())
            for r in self.rows
        ]
        lines = [self.summary(), _format_table(header, body)]
        if any(r.state != OK and r.need.alternative for r in self.rows):
            lines.append("A dataset may also be a file or extracted folder you have: download_data.local.<name>.")
        if any(r.state != OK and r.need.fetchable(self.mirror) for r in self.rows):
            lines.append(f"Fetch what can be downloaded with {FETCH_HINT}; it checks every checksum.")
        if any(
            r.state != OK and r.need.asset is not None and r.need.asset.manual and not r.need.fetchable(self.mirror)
            for r in self.rows
        ):
            lines.append("Files marked 'by hand' sit behind Google Drive links: docs/data.md says what to download.")
        return "\n".join(lines)

    def error_message(self) -> str:
        """Every missing required file and every failed download, each with what to do."""
        failed = f", {len(self.failures)} download(s) failed" if self.failures else ""
        lines = [
            f"preflight ({self.profile} profile): {len(self.errors)} required file(s) missing or wrong{failed} "
            "(no stage runs until they are in place):"
        ]
        for row in self.errors:
            lines += [f"  - {row.need.name} ({row.need.needed_by}): {_problem(row, self.mirror)}"]
        lines += [f"  - download failed: {failure}" for failure in self.failures]
        lines.append(
            f"Fetch what can be downloaded with {FETCH_HINT}; put the others where the table says. "
            "To plan a run without them: snakemake -n --config profile=paper preflight=false."
        )
        return "\n".join(lines)


def _problem(row: Row, mirror: str | None) -> str:
    need = row.need
    if row.state == WRONG:
        fetch = need.fetchable(mirror)
        fix = f"{FETCH_HINT} replaces it" if fetch else f"replace it with a copy from {need.where_from()}"
        return f"{row.detail}\n      {fix}"
    if row.detail:
        return row.detail
    if need.target is None:
        return f"{need.needed_by} is empty; set it to the path of {need.asset.filename if need.asset else need.name}"
    if need.fetchable(mirror):
        return f"{need.target} is missing\n      get it: {FETCH_HINT}, from {need.where_from()}"
    if need.asset is not None and need.asset.manual:
        asset = need.asset
        alt = f" (or set {need.alternative})" if need.alternative else ""
        return (
            f"{asset.filename} must be downloaded by hand\n"
            f"      from:   {asset.page}\n"
            f"      what:   {asset.instructions or asset.filename}\n"
            f"      put it: {need.target}{alt}\n"
            f"      check:  {asset.verification()}"
        )
    return f"{need.target} is missing; get it from {need.where_from()}"


def _show(path: Path) -> str:
    """A path as the user would type it: under the home folder as ~/..."""
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_absolute() and path.is_relative_to(home) else str(path)


def _format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), line("-" * w for w in widths), *map(line, rows)])


# --------------------------------------------------------------------------------------------------
# What a profile needs


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
            except KeyError as exc:
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


# --------------------------------------------------------------------------------------------------
# Checking


class _Verified:
    """Files that verified, by path, size and mtime, so a large archive is hashed once, not at every run."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict = {}
        self.changed = False
        if path is not None and path.is_file():
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self.entries = {}

    @staticmethod
    def _key(path: Path, size: int | None, checksum: Checksum | None) -> tuple[str, list]:
        st = path.stat()
        return str(path.resolve()), [st.st_size, st.st_mtime_ns, size, checksum.describe() if checksum else None]

    def problem(self, path: Path, size: int | None, checksum: Checksum | None, label: str) -> str:
        """What is wrong with `path`; empty when it verifies (now, or before and unchanged since)."""
        if size is None and checksum is None:
            return ""
        key, stamp = self._key(path, size, checksum)
        if self.entries.get(key) == stamp:
            return ""
        if stamp[0] > _ANNOUNCE_BYTES and (size is None or stamp[0] == size):
            print(
                f"preflight: checking {path} ({stamp[0] / 2**30:.1f} GiB) once; later runs remember it", file=sys.stderr
            )
        try:
            verify_file(path, size, checksum, label=label)
        except ChecksumMismatch as exc:
            return str(exc)
        self.record(path, size, checksum)
        return ""

    def record(self, path: Path, size: int | None, checksum: Checksum | None) -> None:
        key, stamp = self._key(path, size, checksum)
        self.entries[key] = stamp
        self.changed = True

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only checkout only loses the memory of what verified


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


def _state(need: Need, root: Path, mirror: str | None, verified: _Verified) -> Row:
    def at(path: Path) -> Path:
        return path if path.is_absolute() else root / path

    if need.package:
        return Row(need, OK if importlib.util.find_spec(need.package) else MISSING)
    size = need.asset.size if need.asset else None
    if need.local is not None:
        local = at(need.local)
        if local.is_dir():
            return Row(need, OK, f"{need.local} (download_data.local)")
        if not local.is_file():
            return Row(need, MISSING, f"download_data.local names {need.local}, which does not exist")
        problem = verified.problem(local, size, need.checksum, f"{need.local} (download_data.local)")
        return Row(need, WRONG, problem) if problem else Row(need, OK, f"{need.local} (download_data.local)")
    for folder in need.also:
        if at(folder).is_dir():
            return Row(need, OK, f"{folder} (extracted)")
    if need.target is None:
        return Row(need, MISSING)
    target = at(need.target)
    if need.folder:
        return Row(need, OK if target.is_dir() else MISSING)
    if target.is_file():
        problem = verified.problem(target, size, need.checksum, f"{need.target} ({need.needed_by})")
        return Row(need, WRONG, problem) if problem else Row(need, OK)
    folder = _mirror_folder(mirror)
    if folder is not None and need.asset is not None and at(folder / need.asset.filename).is_file():
        copy = at(folder / need.asset.filename)
        problem = verified.problem(copy, size, need.checksum, f"{copy} (mirror copy)")
        if problem:
            return Row(need, WRONG, problem)
        if need.later:
            return Row(need, OK, f"{folder / need.asset.filename} (mirror)")
    if need.later and need.fetchable(mirror):
        return Row(need, LATER)
    return Row(need, MISSING)


def inspect(
    params: dict,
    profile: str | None = None,
    *,
    root: str | os.PathLike = ".",
    extracted: str | os.PathLike = EXTRACTED,
    cache: str | os.PathLike | None = CACHE,
    mirror: str | None = None,
) -> Report:
    """The state of every need of the profile. `mirror`: default download_data.mirror."""
    from spsagan.pipeline.params import stage_params

    root = Path(root)
    profile = profile or params["profile"]
    if mirror is None:
        mirror = stage_params(params, "download_data", profile)["mirror"] or None
    verified = _Verified(None if cache is None else root / cache)
    rows = [_state(need, root, mirror, verified) for need in needed_assets(params, profile, extracted)]
    verified.save()
    return Report(profile, rows, mirror)


def check(
    params: dict,
    profile: str | None = None,
    *,
    root: str | os.PathLike = ".",
    extracted: str | os.PathLike = EXTRACTED,
    cache: str | os.PathLike | None = CACHE,
    file=None,
    quiet_when_ok: bool = False,
) -> Report:
    """Print the preflight table; raise ConfigError listing every missing required file at once.

    quiet_when_ok: print one summary line instead of the table when nothing is missing, wrong or absent.
    """
    report = inspect(params, profile, root=root, extracted=extracted, cache=cache)
    file = file or sys.stderr
    if quiet_when_ok and all(r.state == OK for r in report.rows):
        print(report.summary(), file=file)
    else:
        print(report.table(), file=file)
    if not report.ok:
        raise ConfigError(report.error_message())
    return report


# --------------------------------------------------------------------------------------------------
# Fetching (`make fetch`)


def fetch(
    params: dict,
    profile: str | None = None,
    *,
    root: str | os.PathLike = ".",
    extracted: str | os.PathLike = EXTRACTED,
    cache: str | os.PathLike | None = CACHE,
    mirror: str | None = None,
    progress: bool = True,
    retries: int = 3,
    file=None,
) -> Report:
    """Download every fetchable need that is absent or wrong (verified), then return the new report.

    Datasets go to `downloads_dir` (download_data then finds them there); weights to the path their
    setting names; NRQM to pyiqa's cache. Failed downloads are listed in `report.failures`.
    """
    root = Path(root)
    file = file or sys.stderr
    report = inspect(params, profile, root=root, extracted=extracted, cache=cache, mirror=mirror)
    verified = _Verified(None if cache is None else root / cache)
    failures, done = [], set()
    for row in sorted(report.rows, key=lambda r: bool(r.need.later)):  # weights first, then the large archives
        need = row.need
        if row.state == OK or not need.fetchable(report.mirror) or (need.asset.key, need.target) in done:
            continue
        done.add((need.asset.key, need.target))
        target = need.target if need.target.is_absolute() else root / need.target
        print(f"fetch: {need.name} -> {need.target}", file=file)
        try:
            path = _fetch_one(need.asset, target, _use_mirror(need.asset, report.mirror), progress, retries)
        except DownloadError as exc:
            failures.append(f"{need.name}: {exc}")
            print(f"fetch: {need.name} failed: {exc}", file=file)
            continue
        verified.record(path, need.asset.size, need.checksum)
    verified.save()
    after = inspect(params, profile, root=root, extracted=extracted, cache=cache, mirror=mirror)
    after.failures = failures
    return after


def _fetch_one(asset: Asset, target: Path, mirror: str | None, progress: bool, retries: int) -> Path:
    """fetch_asset into the target's folder, then the file at `target` (renamed or copied there)."""

    def get() -> Path:
        return fetch_asset(asset, target.parent, mirror=mirror, progress=progress, retries=retries)[0]

    cached = target.parent / asset.filename
    existed = cached.exists()
    try:
        path = get()
    except ChecksumMismatch:
        if not existed or cached.exists():
            raise
        path = get()  # fetch_asset deleted a bad copy already there: download it afresh
    if path == target:
        return target
    if path == cached:
        os.replace(path, target)  # our download under the registry's name: the setting names another
    else:
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(path, tmp)  # a mirror folder's copy: the setting's path must hold the file
        os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    from spsagan.pipeline.params import load_params

    parser = argparse.ArgumentParser(prog="python -m spsagan.preflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["demo", "paper"], help="default: params.yaml's profile")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--schema", default="workflow/schemas/params.schema.yaml")
    parser.add_argument("--fetch", action="store_true", help="download every fetchable asset first (make fetch)")
    parser.add_argument("--mirror", help="folder or URL holding the files (default: download_data.mirror)")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params, args.schema)
        if args.fetch:
            report = fetch(params, args.profile, mirror=args.mirror, file=sys.stdout)
        else:
            report = inspect(params, args.profile, mirror=args.mirror)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.table())
    if not report.ok:
        print(report.error_message(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
