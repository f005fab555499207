"""`make fetch`: download every fetchable file a profile needs that is absent or wrong, verified."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from spsagan.data.assets import Asset
from spsagan.data.download import fetch_asset
from spsagan.errors import ChecksumMismatch, DownloadError
from spsagan.pipeline.preflight.needs import EXTRACTED, _use_mirror
from spsagan.pipeline.preflight.verify import CACHE, OK, Report, _Verified, inspect


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
