"""Safe archive extraction, and turning an extracted image tree into a flat `HR/` folder.

`safe_extract` reads the archive's index (zip central directory, tar headers) and checks it before
writing anything. The archive is rejected (nothing extracted, not even a temporary folder) when:

- it has more entries than `MAX_MEMBERS`, more uncompressed bytes than `MAX_TOTAL_BYTES`, or expands
  more than `MAX_COMPRESSION_RATIO` times its own size (a zip bomb); tar headers are counted as they
  are read, so a huge tar is stopped at the first header over a limit;
- an entry would land outside the target: an absolute path, a `..` component, a symlink or hard
  link pointing out of the tree, a device or FIFO;
- a link points at or through another symlink, or an entry sits inside a symlink: the lexical check
  of each link alone cannot see where a chain of links leads on disk.

Extraction happens in a temporary folder next to the target that is renamed into place only when
every entry was written, so a truncated or corrupt archive leaves nothing behind. Python's `tarfile`
silently stops at a truncation that falls on an entry boundary; plain tars are therefore also
required to end with the end-of-archive marker (two zero blocks).
"""

from __future__ import annotations

import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from spsagan.atomic import atomic_dir
from spsagan.errors import ArchiveError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Defaults for safe_extract's limits. The largest real sets are far below them: DIV2K train HR is
# 801 entries / 3.5 GB, Flickr2K.tar about 2,650 images / 20 GB, OST 10,324 images; PNGs and JPEGs
# barely compress, so a real dataset archive expands about 1:1.
MAX_MEMBERS = 100_000
MAX_TOTAL_BYTES = 64 * 2**30
MAX_COMPRESSION_RATIO = 100
_RATIO_MIN_BYTES = 64 * 2**20  # below this a high ratio (text files, tiny archives) cannot fill a disk
_MAX_LINK_BYTES = 4096  # a zip symlink's target is its data; never read a large one into memory

_CORRUPT_HINT = "if the archive is truncated or corrupt, delete it and download it again"
_NOT_EXTRACTED = "the archive was not extracted"


def safe_extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    member: str | None = None,
    *,
    max_members: int | None = None,
    max_total_bytes: int | None = None,
    max_ratio: float | None = None,
) -> Path:
    """Extract `archive` (zip, or tar with optional gz/bz2/xz compression) into a new folder `dest`.

    member: a folder inside the archive (posix path, e.g. "benchmark/Set5/HR"); only the entries under
    it are extracted. If it is not at the archive root, a unique folder whose path ends with it is
    used (archives re-zipped by hand often gain a wrapper folder).
    max_members, max_total_bytes, max_ratio: limits on the whole archive's entry count, uncompressed
    size and uncompressed / archive size; None means the module's MAX_* value at call time.
    Returns the path of the extracted member folder (`dest` itself when member is None).
    `dest` is replaced as a whole; on any error it is left as it was and no temporary folder remains.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such archive file")
    limits = _Limits(
        archive=archive,
        archive_bytes=archive.stat().st_size,
        max_members=MAX_MEMBERS if max_members is None else max_members,
        max_total_bytes=MAX_TOTAL_BYTES if max_total_bytes is None else max_total_bytes,
        max_ratio=MAX_COMPRESSION_RATIO if max_ratio is None else max_ratio,
    )
    try:
        if zipfile.is_zipfile(archive):
            prefix = _extract_zip(archive, dest, member, limits)
        elif tarfile.is_tarfile(archive):
            prefix = _extract_tar(archive, dest, member, limits)
        else:
            raise ArchiveError(
                f"{archive}: not a readable zip or tar archive (truncated, corrupt or another format); {_CORRUPT_HINT}"
            )
    except ArchiveError:
        raise
    except OSError as exc:
        if exc.errno is None:  # errors of the data (bad gzip/bz2 stream) carry no errno; the file system's do
            raise ArchiveError(f"{archive}: extraction failed ({exc}); {_CORRUPT_HINT}") from exc
        raise ArchiveError(
            f"{archive}: extraction into {dest.parent} failed ({exc}); check free space and permissions there",
            bad_archive=False,
        ) from exc
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ArchiveError(f"{archive}: extraction failed ({exc}); {_CORRUPT_HINT}") from exc
    return dest.joinpath(*PurePosixPath(prefix).parts) if prefix else dest


# --------------------------------------------------------------------------------------------------
# Limits


@dataclass(frozen=True)
class _Limits:
    archive: Path
    archive_bytes: int
    max_members: int
    max_total_bytes: int
    max_ratio: float

    def check(self, count: int, total: int, complete: bool) -> None:
        """Reject `count` entries of `total` uncompressed bytes (complete=False: counted so far)."""
        at_least = "" if complete else "at least "
        name = f"{self.archive}: {at_least}"
        if count > self.max_members:
            raise ArchiveError(
                f"{name}{count:,} entries, over the limit of {self.max_members:,} (max_members; "
                f"spsagan.data.extract.MAX_MEMBERS); {_NOT_EXTRACTED}"
            )
        if total > self.max_total_bytes:
            raise ArchiveError(
                f"{name}{total:,} bytes uncompressed, over the limit of {self.max_total_bytes:,} "
                f"bytes (max_total_bytes; spsagan.data.extract.MAX_TOTAL_BYTES); {_NOT_EXTRACTED}"
            )
        if total > _RATIO_MIN_BYTES and total > self.max_ratio * self.archive_bytes:
            raise ArchiveError(
                f"{name}{total:,} bytes uncompressed from {self.archive_bytes:,} bytes, a compression "
                f"ratio over {self.max_ratio:g} (max_ratio; a zip bomb?); {_NOT_EXTRACTED}"
            )


# --------------------------------------------------------------------------------------------------
# Entry checks


@dataclass(frozen=True)
class _Entry:
    name: str  # clean relative posix path
    link: str | None = None  # symlink or hard-link target as stored
    hard: bool = False  # hard link: target is relative to the archive root, not to the entry


def _check_name(archive: Path, name: str) -> str:
    """The entry name as a clean relative posix path, or ArchiveError when it could escape."""
    if "\x00" in name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"{archive}: unsafe entry {name!r} (absolute path); {_NOT_EXTRACTED}")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise ArchiveError(f"{archive}: unsafe entry {name!r} ('..' in path); {_NOT_EXTRACTED}")
    return "/".join(p for p in parts if p not in ("", "."))


def _check_link(archive: Path, entry: _Entry) -> None:
    """Reject a link whose target, read as plain path text, resolves outside the extraction folder."""
    name, target = entry.name, entry.link
    if target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", target):
        raise ArchiveError(f"{archive}: unsafe link {name!r} -> {target!r} (absolute target); {_NOT_EXTRACTED}")
    resolved = posixpath.normpath(posixpath.join(_link_base(entry), target.replace("\\", "/")))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveError(
            f"{archive}: unsafe link {name!r} -> {target!r} (points outside the archive folder); {_NOT_EXTRACTED}"
        )


def _check_link_chains(archive: Path, entries: list[_Entry]) -> None:
    """Reject entries inside a symlink, and links pointing at or through a symlink.

    On disk a symlink replaces the text of a path by its target, so `d/b -> ..` followed by
    `d/a -> b/../..` escapes although each link alone stays inside the tree. Archives of images have
    no reason to chain links, so any chain is refused rather than resolved.
    """
    symlinks = {e.name for e in entries if e.link is not None and not e.hard}
    if not symlinks:
        return
    for entry in entries:
        parts = entry.name.split("/")
        for i in range(1, len(parts)):
            inside = "/".join(parts[:i])
            if inside in symlinks:
                raise ArchiveError(f"{archive}: unsafe entry {entry.name!r} (inside link {inside!r}); {_NOT_EXTRACTED}")
        if entry.link is None:
            continue
        for visited in _visited_paths(_link_base(entry), entry.link):
            if visited in symlinks:
                raise ArchiveError(
                    f"{archive}: unsafe link {entry.name!r} -> {entry.link!r} (goes through link "
                    f"{visited!r}); {_NOT_EXTRACTED}"
                )


def _link_base(entry: _Entry) -> str:
    """The folder a link's target is relative to: the archive root for hard links, the entry's folder otherwise."""
    return "" if entry.hard else posixpath.dirname(entry.name)


def _visited_paths(base: str, target: str):
    """Every path the walk from folder `base` along `target` enters, component by component, unnormalised."""
    stack = [p for p in base.split("/") if p]
    for part in target.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if stack:
                stack.pop()
            continue
        stack.append(part)
        yield "/".join(stack)


def _member_prefix(archive: Path, names: list[str], member: str | None) -> str:
    """The folder prefix (posix, no trailing slash) that holds `member`'s entries; "" for the whole archive."""
    if not member:
        return ""
    want = tuple(p for p in PurePosixPath(member).parts if p not in ("/", "."))
    found = set()
    for name in names:
        parts = tuple(name.split("/"))
        for i in range(len(parts) - len(want)):
            if parts[i : i + len(want)] == want:
                found.add("/".join(parts[: i + len(want)]))
    exact = "/".join(want)
    if exact in found:
        return exact
    if len(found) == 1:
        return found.pop()
    if not found:
        top = sorted({name.split("/")[0] for name in names})[:10]
        raise ArchiveError(
            f"{archive}: no folder {member!r} in the archive (top-level entries: {top}); is it the right file?"
        )
    raise ArchiveError(
        f"{archive}: folder {member!r} is ambiguous, found {sorted(found)}; extract the archive "
        "and pass the folder that holds the images instead"
    )


# --------------------------------------------------------------------------------------------------
# Zip and tar


def _extract_zip(archive: Path, dest: Path, member: str | None, limits: _Limits) -> str:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        # zipfile never writes more than an entry's declared size, so the central directory's sizes bound the output
        limits.check(len(infos), sum(info.file_size for info in infos), complete=True)
        entries = [_zip_entry(archive, zf, info) for info in infos]
        _check_link_chains(archive, entries)
        prefix = _member_prefix(archive, [e.name for e in entries], member)
        with atomic_dir(dest) as tmp:
            for info, entry in zip(infos, entries):
                if _under(entry.name, prefix):
                    zf.extract(info, tmp)  # reads and CRC-checks every byte
    return prefix


def _zip_entry(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Entry:
    name = _check_name(archive, info.filename)
    if not stat.S_ISLNK(info.external_attr >> 16):
        return _Entry(name)
    if info.file_size > _MAX_LINK_BYTES:
        raise ArchiveError(f"{archive}: unsafe link {name!r} (target of {info.file_size:,} bytes); {_NOT_EXTRACTED}")
    entry = _Entry(name, link=zf.read(info).decode("utf-8", "replace"))
    _check_link(archive, entry)
    return entry


def _extract_tar(archive: Path, dest: Path, member: str | None, limits: _Limits) -> str:
    with tarfile.open(archive, "r:*") as tf:
        members, entries = _scan_tar(archive, tf, limits)
        _check_link_chains(archive, entries)
        if _is_plain_tar(archive):
            _require_end_marker(archive, tf.offset)
        prefix = _member_prefix(archive, [e.name for e in entries], member)
        chosen = [m for m, e in zip(members, entries) if _under(e.name, prefix)]
        with atomic_dir(dest) as tmp:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(tmp, members=chosen, filter="data")  # second line of defence
            else:  # pragma: no cover - Python without extraction filters
                tf.extractall(tmp, members=chosen)
    return prefix


def _scan_tar(archive: Path, tf: tarfile.TarFile, limits: _Limits) -> tuple[list[tarfile.TarInfo], list[_Entry]]:
    """Read the tar headers one by one, checking the limits as they go (a tar has no index to read first)."""
    members, entries, total = [], [], 0
    while (m := tf.next()) is not None:
        members.append(m)
        total += m.size
        limits.check(len(members), total, complete=False)
        entries.append(_tar_entry(archive, m))
    return members, entries


def _tar_entry(archive: Path, m: tarfile.TarInfo) -> _Entry:
    name = _check_name(archive, m.name)
    if m.issym() or m.islnk():
        entry = _Entry(name, link=m.linkname, hard=m.islnk())
        _check_link(archive, entry)
        return entry
    if not (m.isfile() or m.isdir()):
        raise ArchiveError(f"{archive}: unsupported entry {m.name!r} (device or FIFO); {_NOT_EXTRACTED}")
    return _Entry(name)


def _under(name: str, prefix: str) -> bool:
    return not prefix or name == prefix or name.startswith(prefix + "/")


def _is_plain_tar(archive: Path) -> bool:
    with open(archive, "rb") as f:
        magic = f.read(6)
    return not (magic.startswith(b"\x1f\x8b") or magic.startswith(b"BZh") or magic.startswith(b"\xfd7zXZ\x00"))


def _require_end_marker(archive: Path, offset: int) -> None:
    with open(archive, "rb") as f:
        f.seek(offset)
        tail = f.read(2 * tarfile.BLOCKSIZE)
    if len(tail) < 2 * tarfile.BLOCKSIZE or tail.count(0) != len(tail):
        raise ArchiveError(
            f"{archive}: the tar archive is truncated (no end-of-archive marker after the last "
            f"entry at byte {offset:,}); {_CORRUPT_HINT}"
        )


# --------------------------------------------------------------------------------------------------
# Image trees


def flatten_images(
    src: str | os.PathLike, dst: str | os.PathLike, move: bool = False, verify: bool = False, origin: str | None = None
) -> list[str]:
    """Put every image under `src` (any depth) into folder `dst` as `<name>.png`; return the sorted names.

    Naming rule: the file stem when stems are unique across the tree, otherwise the path relative
    to `src` with "/" replaced by "_" (category folders such as OST's keep names distinct).
    PNGs are moved (move=True, same file system) or copied byte for byte; other formats (JPEG, BMP,
    TIFF) are decoded and saved as PNG in their own mode (CMYK becomes RGB). Hidden files and
    `__MACOSX` folders are skipped; other non-image files are ignored.
    verify: also decode every PNG in full before taking it (other formats are decoded anyway), so a
    truncated or corrupt image stops the import here, named as the user knows it, not in a later stage.
    origin: what `src` stands for in error messages (e.g. the archive it was extracted from); errors
    then name `<relative path> in <origin>` instead of the file's path.
    """
    from PIL import Image

    src, dst = Path(src), Path(dst)
    plan = flatten_plan(src)
    dst.mkdir(parents=True, exist_ok=True)
    for path, name in plan:
        label = str(path) if origin is None else f"{path.relative_to(src).as_posix()} in {origin}"
        target = dst / f"{name}.png"
        if path.suffix.lower() == ".png":
            if verify:
                _check_decodes(path, label)
            if move:
                os.replace(path, target)
            else:
                shutil.copyfile(path, target)
            continue
        try:
            with Image.open(path) as im:
                if im.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
                    im = im.convert("RGB")
                im.save(target, format="PNG")
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"{label}: cannot convert this image to PNG ({exc}); replace or remove it") from exc
    return sorted(name for _, name in plan)


def flatten_plan(src: str | os.PathLike) -> list[tuple[Path, str]]:
    """(file, name) of every image `flatten_images` takes from `src`: where each `<name>.png` comes from."""
    src = Path(src)
    files = sorted(
        p
        for p in src.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") or part == "__MACOSX" for part in p.relative_to(src).parts)
    )
    stems = [p.stem for p in files]
    unique = len(set(stems)) == len(stems)
    names = [p.stem if unique else "_".join(p.relative_to(src).with_suffix("").parts) for p in files]
    if len(set(names)) != len(names):
        raise ValueError(
            f"{src}: image names collide after flattening (e.g. a.png and a.jpg in one folder); "
            "rename them so each image has its own name"
        )
    return list(zip(files, names))


def _check_decodes(path: Path, label: str) -> None:
    """Decode the whole image with the reader the later stages use; an ImageError names `label`."""
    from spsagan.errors import ImageError
    from spsagan.image import read_image

    try:
        read_image(path)
    except ImageError as exc:
        reason = exc.__cause__ or exc  # the decoder's own words, without the temporary path
        raise ImageError(f"{label}: unreadable or corrupt image ({reason}); replace this file and run again") from exc
