"""Verified, resumable downloads of the registry's assets, and the `download_data` stage's dataset builder.

A file is downloaded into `<name>.part` (resumed with an HTTP Range request when a part exists),
verified against its checksum and size, and only then renamed to `<name>`. A killed or dropped
download therefore leaves only `*.part`, never a file that looks complete; a download that got no
byte (offline, connection refused) leaves nothing, and says so. The `<name>.lock` file that keeps
parallel jobs apart is removed when the job is done with it, successful or not. A mismatching file is
deleted and reported with the expected and actual digests.

Where the file comes from, in order: a user-supplied local file (`local=`), an existing verified
copy in the archive folder, a mirror (`mirror=`: a local folder or an http(s) base URL holding the
same file name), the asset's own URL. Manual assets (Google Drive) without a local copy raise
`ManualDownloadRequired` with one message saying which file, from where, where to put it and how it
is checked.

`prepare_dataset` extracts the archive with `safe_extract`. When the copy cached in the archive folder
is rejected by its content (unsafe entry, over a size limit, corrupt), it is renamed `<name>.rejected`
so the next run fetches it again instead of failing on it again; the user's own files are never moved.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from spsagan.atomic import atomic_dir, write_json
from spsagan.data.assets import Asset, Checksum, get_asset, get_dataset
from spsagan.data.extract import flatten_images, flatten_plan, safe_extract
from spsagan.errors import ArchiveError, ChecksumMismatch, DownloadError, ManualDownloadRequired

_CHUNK = 1 << 20
_USER_AGENT = "spsagan-download/1"


class _Incomplete(Exception):
    """The server closed the connection before sending all announced bytes."""


# --------------------------------------------------------------------------------------------------
# Verification


def file_digests(path: str | os.PathLike, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file for several algorithms, in one read."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def verify_file(path: str | os.PathLike, size: int | None, checksum: Checksum | None, label: str | None = None) -> str:
    """Check `path` against the expected size and checksum; return its sha256 (for provenance).

    Raises ChecksumMismatch naming the file, the expected and the actual value. Does not delete.
    """
    path = Path(path)
    label = label or str(path)
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ChecksumMismatch(f"{label}: size is {actual_size:,} bytes, expected {size:,} bytes")
    algorithms = ("sha256",) if checksum is None or checksum.algorithm == "sha256" else ("sha256", checksum.algorithm)
    digests = file_digests(path, algorithms)
    if checksum is not None and not checksum.matches(digests[checksum.algorithm]):
        raise ChecksumMismatch(
            f"{label}: {checksum.algorithm} mismatch, expected {checksum.describe()}, got {digests[checksum.algorithm]}"
        )
    return digests["sha256"]


# --------------------------------------------------------------------------------------------------
# HTTP


def download_url(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    checksum: Checksum | None = None,
    progress: bool = True,
    retries: int = 3,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
) -> str:
    """Download `url` to `dest` through `dest.part`, resuming it; verify; rename. Return the sha256.

    A dropped connection is retried `retries` times (resuming each time). When all tries fail the
    partial `.part` stays for the next call to resume. A verification failure deletes the `.part`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()  # longer than the real file: cannot be a prefix of it
    for attempt in range(retries + 1):
        try:
            if size is None or not part.exists() or part.stat().st_size < size:
                _fetch_into(url, part, size, progress, timeout)
            break
        except urllib.error.HTTPError as exc:
            if exc.code not in (408, 429, 500, 502, 503, 504) or attempt == retries:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (_Incomplete, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if attempt == retries:
                raise DownloadError(_failure_message(url, part, exc)) from exc
        time.sleep(retry_wait * (2**attempt))
    try:
        sha256 = verify_file(part, size, checksum, label=f"{dest.name} (downloaded from {url})")
    except ChecksumMismatch:
        part.unlink()
        raise
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    return sha256


def _failure_message(url: str, part: Path, exc: BaseException) -> str:
    """What a failed download leaves, said truthfully: the bytes kept for resuming, or nothing at all."""
    got = part.stat().st_size if part.exists() else 0
    if got:
        return f"{url}: download interrupted ({exc}); {got:,} bytes kept in {part}, run again to resume"
    part.unlink(missing_ok=True)  # an empty part holds nothing to resume
    return f"{url}: download failed ({exc}); nothing was downloaded, check the network and run again"


def _fetch_into(url: str, part: Path, size: int | None, progress: bool, timeout: float) -> None:
    """One HTTP request appending to `part` from where it ends (or rewriting it if the server ignores Range)."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return  # nothing after `have`: the part is complete (verification decides)
        raise
    with response:
        if have and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != have:
                part.unlink()
                raise _Incomplete(f"server resumed at byte {start}, expected {have}; restarting")
            mode = "ab"
        else:
            mode, have = "wb", 0  # server sent the whole file
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        total = have + expected if expected is not None else size
        received = 0
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name[: -len(".part")],
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if expected is not None and received != expected:
            # http.client returns b"" when the peer closes early instead of raising
            raise _Incomplete(f"connection closed after {received:,} of {expected:,} bytes")


def _content_range_start(value: str) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value.strip())
    return int(match.group(1)) if match else None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock so two jobs sharing an archive (Set5 and Set14) never write the same .part.

    The lock file is removed when the holder is done, whether it succeeded or failed. A waiter that
    then wins the lock on the removed file sees that `path` is no longer the file it locked, and
    locks afresh, so removing never lets two holders in at once.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(handle.fileno()), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        handle.close()  # the previous holder removed it: lock the current file
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding it (see above)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


# --------------------------------------------------------------------------------------------------
# Assets


def fetch_asset(
    asset: Asset | str,
    archive_dir: str | os.PathLike,
    *,
    local: str | os.PathLike | None = None,
    mirror: str | os.PathLike | None = None,
    progress: bool = True,
    retries: int = 3,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
) -> tuple[Path, str]:
    """Return `(path, sha256)` of a verified copy of `asset`.

    local: a file the user already has; verified and used in place (never modified or deleted).
    mirror: a folder, or an http(s)/file URL base, holding a file of the same name.
    Otherwise the file `<archive_dir>/<filename>` is used if present and valid, else downloaded.
    """
    asset = get_asset(asset) if isinstance(asset, str) else asset
    target = Path(archive_dir) / asset.filename
    if local is not None:
        local = Path(local)
        if not local.is_file():
            raise DownloadError(f"{asset.key}: local copy {local} does not exist or is not a file")
        return local, verify_file(local, asset.size, asset.checksum, label=f"{local} (local copy of {asset.filename})")
    with _file_lock(target.with_name(target.name + ".lock")):
        if target.exists():
            try:
                return target, verify_file(target, asset.size, asset.checksum)
            except ChecksumMismatch as exc:
                target.unlink()
                raise ChecksumMismatch(f"{exc}; the bad file was deleted, run again to download it afresh") from exc
        if mirror is not None:
            mirror_path = _mirror_dir(mirror)
            if mirror_path is not None:
                source = mirror_path / asset.filename
                if not source.is_file():
                    raise DownloadError(f"{asset.key}: mirror folder {mirror_path} has no file {asset.filename}")
                return source, verify_file(source, asset.size, asset.checksum, label=f"{source} (mirror copy)")
            url = str(mirror).rstrip("/") + "/" + asset.filename
        elif asset.manual or asset.url is None:
            raise ManualDownloadRequired(manual_message(asset, target))
        else:
            url = asset.url
        try:
            sha256 = download_url(
                url,
                target,
                size=asset.size,
                checksum=asset.checksum,
                progress=progress,
                retries=retries,
                retry_wait=retry_wait,
                timeout=timeout,
            )
        except ChecksumMismatch:
            raise
        except DownloadError as exc:
            raise DownloadError(f"{exc}\n{_alternatives(asset, target)}") from exc
        return target, sha256


def _mirror_dir(mirror: str | os.PathLike) -> Path | None:
    text = str(mirror)
    if text.startswith("file://"):
        return Path(urllib.request.url2pathname(text[len("file://") :]))
    if re.match(r"^https?://", text):
        return None
    return Path(text)


def manual_message(asset: Asset, target: Path) -> str:
    """The one message a user needs to fetch a manual asset by hand."""
    return (
        f"{asset.filename} must be downloaded by hand.\n"
        f"  from:   {asset.page}\n"
        f"  what:   {asset.instructions or asset.filename}\n"
        f"  put it: {target}  (or pass its path as `local`, or a folder holding it as `mirror`)\n"
        f"  check:  {asset.verification()}\n"
        "Then run the stage again."
    )


def _alternatives(asset: Asset, target: Path) -> str:
    extra = f"\n  note: {asset.instructions}" if asset.instructions else ""
    return (
        f"  Alternatives: download {asset.filename} from {asset.page} yourself and put it at {target}, or pass "
        f"its path as `local`, or a folder / URL holding it as `mirror`; it will be checked by "
        f"{asset.verification()}.{extra}"
    )


# --------------------------------------------------------------------------------------------------
# Datasets (the download_data stage)


def prepare_dataset(
    name: str,
    root: str | os.PathLike,
    *,
    source: str = "download",
    names: list[str] | None = None,
    archive_dir: str | os.PathLike | None = None,
    local: str | os.PathLike | None = None,
    mirror: str | os.PathLike | None = None,
    progress: bool = True,
    retries: int = 3,
) -> Path:
    """Build `<root>/<name>/HR/<image>.png` plus `<root>/<name>/provenance.json`; return `<root>/<name>`.

    source="demo": the offline stand-in; `names` lists the scikit-image photos to use (spsagan.data.demo).
    source="download": the registry's dataset `name` (spsagan.data.assets.DATASETS). Its archive is
    fetched into `archive_dir` (default `<root>/_archives`; shared by datasets from one archive) and
    verified; `local` may be the archive file or an already extracted folder holding the images.
    Images from a folder, or from an archive without a published checksum, are decoded in full as they
    are imported. The image count must match the registry. The dataset folder is replaced atomically.
    """
    from spsagan.data.demo import write_demo_dataset

    root = Path(root)
    if source == "demo":
        if not names:
            raise ValueError(f"dataset {name!r}: source 'demo' needs the list of demo image names")
        return write_demo_dataset(root, name, names)
    if source != "download":
        raise ValueError(f"dataset {name!r}: source must be 'download' or 'demo', got {source!r}")
    spec = get_dataset(name)
    asset = get_asset(spec.asset)
    archive_dir = Path(archive_dir) if archive_dir is not None else root / "_archives"
    provenance = {
        "dataset": name,
        "source": "download",
        "stand_in": False,
        "description": spec.description,
        "asset": asset.key,
        "url": asset.url,
        "page": asset.page,
        "license": asset.license,
        "checksum": asset.checksum.describe() if asset.checksum else None,
        "member": spec.member,
    }
    with atomic_dir(root / name) as tmp:
        if local is not None and Path(local).is_dir():
            # nothing vouches for a user's folder: decode every image now, naming the user's file on failure
            found = flatten_images(local, tmp / "HR", move=False, verify=True)
            provenance.update(archive=None, local_folder=str(Path(local).resolve()), sha256=None)
            # each image's own file, so that later stages name it (make_lr: too small) rather than our copy
            provenance["sources"] = {f"{n}.png": str(p.resolve()) for p, n in flatten_plan(local)}
        else:
            archive, sha256 = fetch_asset(
                asset, archive_dir, local=local, mirror=mirror, progress=progress, retries=retries
            )
            cached = local is None and archive == archive_dir / asset.filename  # ours, not the user's file
            folder = _extract(archive, tmp / "_extract", spec.member, quarantine=cached)
            # a published checksum vouches for the images; without one (OST), decode them all
            origin = f"{archive} (folder {folder.relative_to(tmp / '_extract').as_posix()})"
            if local is not None:  # the user's archive: name each image by its entry in it
                provenance["sources"] = {
                    f"{n}.png": f"{p.relative_to(folder).as_posix()} in {archive}" for p, n in flatten_plan(folder)
                }
            found = flatten_images(folder, tmp / "HR", move=True, verify=asset.checksum is None, origin=origin)
            shutil.rmtree(tmp / "_extract")
            provenance.update(archive=archive.name, sha256=sha256)
        if spec.count is not None and len(found) != spec.count:
            where = local if local is not None else asset.filename
            raise DownloadError(
                f"dataset {name}: found {len(found)} images in {where} (folder {spec.member!r}), "
                f"expected {spec.count}; check that it is the right file or folder"
            )
        provenance["images"] = len(found)
        write_json(tmp / "provenance.json", provenance)
    return root / name


def _extract(archive: Path, dest: Path, member: str, quarantine: bool) -> Path:
    """safe_extract; with quarantine=True an archive it rejects is renamed `<name>.rejected`.

    Used for the copy cached in the archive folder: left in place, the next run would verify it
    (an archive without checksum always verifies) and fail on it again instead of fetching a new one.
    The user's own files (`local`, a mirror folder) are never moved.
    """
    before = _identity(archive)
    try:
        return safe_extract(archive, dest, member=member)
    except ArchiveError as exc:
        if not (quarantine and exc.bad_archive):
            raise
        rejected = archive.with_name(archive.name + ".rejected")
        with _file_lock(archive.with_name(archive.name + ".lock")):
            if _identity(archive) == before:  # not already replaced by a parallel job
                os.replace(archive, rejected)
        raise ArchiveError(
            f"{exc}\n  The archive was moved to {rejected} so that the next run fetches it again."
        ) from exc


def _identity(path: Path) -> tuple[int, ...] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
