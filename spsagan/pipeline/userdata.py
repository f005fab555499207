"""The user's own files named in params (a `local:` folder, published weights): inputs of the stages reading them.

A stage lists in the registry (`user_data:`) the keys of its params section whose values are paths the
step reads: one path, a list, or a `name: path` mapping (`download_data.<profile>.local`). In Snakemake
each existing file is an input, and a folder adds every file under it, so a changed, added or removed
file reruns the stage and what depends on it (a file is compared by checksum). In dvc.yaml each
existing path is a dependency (DVC hashes a folder's contents); `write-dvc` lists the paths of the
active profile, so it must be rerun after such a key changes (the Snakefile says so when it is stale).

Empty values, URLs and paths that do not exist are left out: the step itself reports a missing file
it needs, and skips the optional ones (published weights), which then enter once they exist.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def named_paths(section: dict, keys: tuple[str, ...] | list[str], root: str | os.PathLike = ".") -> list[str]:
    """The existing paths under `keys` of a params section, as written there (relative to `root` or absolute)."""
    paths = []
    for key in keys:
        value = section.get(key)
        values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str) and item and not _URL.match(item) and (Path(root) / item).exists():
                paths.append(item.rstrip("/") or "/")
    return list(dict.fromkeys(paths))


def files_under(path: str) -> list[str]:
    """A file itself; a folder's files at any depth (hidden ones skipped, as the importers skip them)."""
    if not os.path.isdir(path):
        return [path]
    found = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        found += [os.path.join(folder, f) for f in sorted(files) if not f.startswith(".")]
    return found
