"""Safe archive extraction, and turning an extracted image tree into a flat `HR/` folder.

`safe_extract` checks every entry of a zip or tar before writing anything. The archive is rejected
(nothing extracted) when any entry would land outside the target: an absolute path, a `..`
component, a symlink or hard link pointing out of the tree, a device or FIFO. Extraction happens in
a temporary folder next to the target that is renamed into place only when every entry was written,
so a truncated or corrupt archive leaves nothing behind. Python's `tarfile` silently stops at a
truncation that falls on an entry boundary; plain tars are therefore also required to end with the
end-of-archive marker (two zero blocks).
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
from pathlib import Path, PurePosixPath

from spsagan.atomic import atomic_dir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_CORRUPT_HINT = "if the archive is truncated or corrupt, delete it and download it again"


class ArchiveError(RuntimeError):
    """An archive that cannot be extracted safely and completely (message names the archive)."""


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, member: str | None = None) -> Path:
    """Extract `archive` (zip, or tar with optional gz/bz2/xz compression) into a new folder `dest`.

    member: a folder inside the archive (posix path, e.g. "benchmark/Set5/HR"); only the entries under
    it are extracted. If it is not at the archive root, a unique folder whose path ends with it is
    used (archives re-zipped by hand often gain a wrapper folder).
    Returns the path of the extracted member folder (`dest` itself when member is None).
    `dest` is replaced as a whole; on any error it is left as it was and no temporary folder remains.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such archive file")
    try:
        with atomic_dir(dest) as tmp:
            if zipfile.is_zipfile(archive):
                prefix = _extract_zip(archive, tmp, member)
            elif tarfile.is_tarfile(archive):
                prefix = _extract_tar(archive, tmp, member)
            else:
                raise ArchiveError(f"{archive}: not a readable zip or tar archive (truncated, corrupt or another "
                                   f"format); {_CORRUPT_HINT}")
    except ArchiveError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        raise ArchiveError(f"{archive}: extraction failed ({exc}); {_CORRUPT_HINT}") from exc
    return dest.joinpath(*PurePosixPath(prefix).parts) if prefix else dest


# --------------------------------------------------------------------------------------------------
# Entry checks


def _check_name(archive: Path, name: str) -> str:
    """The entry name as a clean relative posix path, or ArchiveError when it could escape."""
    if "\x00" in name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"{archive}: unsafe entry {name!r} (absolute path); the archive was not extracted")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise ArchiveError(f"{archive}: unsafe entry {name!r} ('..' in path); the archive was not extracted")
    return "/".join(p for p in parts if p not in ("", "."))


def _check_link(archive: Path, name: str, link_target: str, relative_to_entry: bool) -> None:
    """Reject a link whose target resolves outside the extraction folder."""
    if link_target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", link_target):
        raise ArchiveError(f"{archive}: unsafe link {name!r} -> {link_target!r} (absolute target); "
                           "the archive was not extracted")
    base = posixpath.dirname(name) if relative_to_entry else ""
    resolved = posixpath.normpath(posixpath.join(base, link_target.replace("\\", "/")))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveError(f"{archive}: unsafe link {name!r} -> {link_target!r} (points outside the archive "
                           "folder); the archive was not extracted")


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
        raise ArchiveError(f"{archive}: no folder {member!r} in the archive (top-level entries: {top}); "
                           "is it the right file?")
    raise ArchiveError(f"{archive}: folder {member!r} is ambiguous, found {sorted(found)}; extract the archive "
                       "and pass the folder that holds the images instead")


# --------------------------------------------------------------------------------------------------
# Zip and tar


def _extract_zip(archive: Path, tmp: Path, member: str | None) -> str:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        names = []
        for info in infos:
            name = _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                _check_link(archive, name, zf.read(info).decode("utf-8", "replace"), relative_to_entry=True)
            names.append(name)
        prefix = _member_prefix(archive, names, member)
        for info, name in zip(infos, names):
            if _under(name, prefix):
                zf.extract(info, tmp)  # reads and CRC-checks every byte
    return prefix


def _extract_tar(archive: Path, tmp: Path, member: str | None) -> str:
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        names = []
        for m in members:
            name = _check_name(archive, m.name)
            if m.issym():
                _check_link(archive, name, m.linkname, relative_to_entry=True)
            elif m.islnk():
                _check_link(archive, name, m.linkname, relative_to_entry=False)
            elif not (m.isfile() or m.isdir()):
                raise ArchiveError(f"{archive}: unsupported entry {m.name!r} (device or FIFO); "
                                   "the archive was not extracted")
            names.append(name)
        if _is_plain_tar(archive):
            _require_end_marker(archive, tf.offset)
        prefix = _member_prefix(archive, names, member)
        chosen = [m for m, name in zip(members, names) if _under(name, prefix)]
        if hasattr(tarfile, "data_filter"):
            tf.extractall(tmp, members=chosen, filter="data")  # second line of defence
        else:  # pragma: no cover - Python without extraction filters
            tf.extractall(tmp, members=chosen)
    return prefix


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
        raise ArchiveError(f"{archive}: the tar archive is truncated (no end-of-archive marker after the last "
                           f"entry at byte {offset:,}); {_CORRUPT_HINT}")


# --------------------------------------------------------------------------------------------------
# Image trees


def flatten_images(src: str | os.PathLike, dst: str | os.PathLike, move: bool = False) -> list[str]:
    """Put every image under `src` (any depth) into folder `dst` as `<name>.png`; return the sorted names.

    Naming rule: the file stem when stems are unique across the tree, otherwise the path relative
    to `src` with "/" replaced by "_" (category folders such as OST's keep names distinct).
    PNGs are moved (move=True, same file system) or copied byte for byte; other formats (JPEG, BMP,
    TIFF) are decoded and saved as PNG in their own mode (CMYK becomes RGB). Hidden files and
    `__MACOSX` folders are skipped; other non-image files are ignored.
    """
    from PIL import Image

    src, dst = Path(src), Path(dst)
    files = sorted(
        p for p in src.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") or part == "__MACOSX" for part in p.relative_to(src).parts)
    )
    stems = [p.stem for p in files]
    unique = len(set(stems)) == len(stems)
    names = [p.stem if unique else "_".join(p.relative_to(src).with_suffix("").parts) for p in files]
    if len(set(names)) != len(names):
        raise ValueError(f"{src}: image names collide after flattening (e.g. a.png and a.jpg in one folder); "
                         "rename them so each image has its own name")
    dst.mkdir(parents=True, exist_ok=True)
    for path, name in zip(files, names):
        target = dst / f"{name}.png"
        if path.suffix.lower() == ".png":
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
            raise ValueError(f"{path}: cannot convert this image to PNG ({exc}); replace or remove it") from exc
    return sorted(names)
