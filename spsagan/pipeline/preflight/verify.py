"""The state of every need (present and verified, fetched later, missing, wrong) and the preflight table.

`check` prints one table (asset, needed by, status, where to get it, where to put it) and raises
ConfigError listing every missing required file at once; the Snakefile calls it before a paper run.
Checksums of large files take a while, so a file that verified once is remembered by path, size and
modification time in a small cache file (`.snakemake/spsagan_preflight.json`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path

from spsagan.data.assets import Checksum
from spsagan.data.download import verify_file
from spsagan.errors import ChecksumMismatch, ConfigError
from spsagan.pipeline.preflight.needs import EXTRACTED, REQUIRED, WARNING, Need, _mirror_folder, needed_assets
from spsagan.tables import aligned

OK, LATER, MISSING, WRONG = "ok", "later", "missing", "wrong"  # the state of one need
CACHE = ".snakemake/spsagan_preflight.json"
FETCH_HINT = "`make fetch` (on a machine with internet: the login node)"
_ANNOUNCE_BYTES = 256 << 20  # say so before hashing a file this large


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
        lines = [self.summary(), aligned(header, body)]
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
            "To see the plan without them: snakemake -n --config profile=paper."
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
