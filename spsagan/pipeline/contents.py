"""A folder output's contents as one small file, so that Snakemake judges folders by their bytes.

Snakemake compares a newer input file with the checksum it recorded when the consumer last ran, and
reruns the consumer only when the bytes differ (`max-checksum-file-size` in the workflow profile). A
folder has no checksum: a stage that rewrites a folder with the same files would make everything
downstream stale by its modification time alone. So each folder output `x/` comes with
`x.contents.json` (every file's relative path and sha256), written by the job right after its step;
consumers read the folder as `ancient()` (its time is ignored) and the contents file as a plain input
(compared by checksum). An added, removed or changed file changes the contents file, and the consumer
reruns; the same files leave it byte-identical, and nothing downstream does.

`python -m spsagan.pipeline.contents FOLDER...` writes the file of each folder (the Snakefile's rules
run it; run it by hand for results made before this file existed, then `snakemake --touch --forceall`
once `dvc status` is clean).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

SUFFIX = ".contents.json"
# Snakemake's own marker in folder outputs: its time changes on every run, its bytes never matter.
IGNORED = {".snakemake_timestamp"}


def contents_file(folder: str) -> str:
    """Where the contents of `folder` (a path, `/`-terminated or not) are listed."""
    return folder.rstrip("/") + SUFFIX


def folder_contents(folder: str | os.PathLike) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`, sorted by path."""
    folder = Path(folder)
    digests = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in IGNORED):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        digests[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return digests


def write_contents(folder: str | os.PathLike) -> Path:
    """Write the contents file of `folder`; the same files always give the same bytes."""
    from spsagan.atomic import write_text

    target = Path(contents_file(str(folder)))
    write_text(target, json.dumps({"files": folder_contents(folder)}, indent=1, sort_keys=True) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    folders = sys.argv[1:] if argv is None else argv
    for folder in folders:
        if not Path(folder).is_dir():
            print(f"error: {folder}: not a folder, so its contents cannot be listed", file=sys.stderr)
            return 1
        write_contents(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
