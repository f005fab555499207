"""One pipeline run per project at a time, whichever tool starts it.

Snakemake's own lock did not stop a second Snakemake (the one `dvc repro` starts) from running a
job another Snakemake was running. The Snakefile therefore takes an exclusive `flock` on
`.snakemake/spsagan_run.lock` when a run starts (its `onstart` hook: never in a dry run, never in
the per-job Snakemake of a cluster job), and holds it until the process ends. The kernel drops
the lock when the process dies, even by SIGKILL, so a stale lock never needs `--unlock`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from spsagan.errors import InUse

_HELD: list = []  # open lock files, kept for the life of the process


def hold_run_lock(path: str | os.PathLike = ".snakemake/spsagan_run.lock") -> None:
    """Take the project's run lock for this process, or raise InUse naming the holder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise InUse(
            f"another pipeline run (Snakemake PID {holder}, maybe started by dvc repro) is working in "
            f"this project: its run lock {path} is held. Wait for it to finish or stop it; nothing "
            "was started or deleted."
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    _HELD.append(fh)
