"""One trainer per checkpoint folder, and a pipeline that does not start while one still runs.

A trainer holds `<ckpt_root>/<stage>-<instance>/trainer.lock` (`flock`) from its start to its end
(`exclusive_folder`); a second trainer stops at once with `InUse`. `refuse_live_trainers` lets the
Snakefile's `onstart` refuse a run while any trainer holds such a lock. Imports no torch: the
Snakefile imports it when it is parsed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from spsagan.errors import InUse

LOCK_FILE = "trainer.lock"


@contextlib.contextmanager
def exclusive_folder(folder: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on `folder` while inside; raise `InUse` at once if another
    process (or another open of the lock in this one) holds it.

    The lock is `flock` on `<folder>/trainer.lock`, which names the holder ("<pid> <host> <start>").
    The kernel releases it when the holder exits, however it dies, so a stale file never blocks a
    run. The file stays in place (deleting it would let two processes lock two different files).
    On a file system without flock (some Lustre mounts) this warns and runs unlocked.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if _try_lock(fd, path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock (batch workers forked meanwhile hold it until they exit)


def _try_lock(fd: int, path: Path) -> bool:
    """Lock `fd` exclusively without waiting: True if locked, False if locks are unsupported here."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        raise InUse(_in_use_message(path)) from None
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        warnings.warn(
            f"{path}: cannot lock ({err.strerror}); make sure no other trainer uses {path.parent}",
            RuntimeWarning,
            stacklevel=3,
        )
        return False


def _in_use_message(path: Path) -> str:
    """One line naming the lock's holder and what to do."""
    fields = path.read_text(errors="replace").split()
    pid = fields[0] if fields and fields[0].isdigit() else None
    if pid is None:  # the holder has not written its PID yet
        return (
            f"{path.parent} is in use by another trainer (PID unknown; see {path}): wait for it to finish "
            "or stop it, then run again"
        )
    host = f" on {fields[1]}" if len(fields) > 1 else ""
    since = f", since {fields[2]}" if len(fields) > 2 else ""
    return (
        f"{path.parent} is in use by another trainer (PID {pid}{host}{since}): wait for it to finish, "
        f"or stop it with `kill {pid}` (it saves a checkpoint and exits) and run again; if that process "
        "no longer exists, its batch workers are still exiting: retry in a few seconds"
    )


def live_trainers(ckpt_root: str | Path) -> list[str]:
    """One line per folder `<ckpt_root>/<stage>-<instance>/` that a running trainer holds, naming it.

    For the pipeline's start (`refuse_live_trainers`). Each `trainer.lock` is probed by taking its
    lock without waiting and releasing it at once; a trainer starting in that instant would stop
    with `InUse` (rerun it). Folders whose file system cannot lock are skipped.
    """
    found = []
    for path in sorted(Path(ckpt_root).glob(f"*/{LOCK_FILE}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            _try_lock(fd, path)
        except InUse as err:
            found.append(str(err))
        except OSError:
            pass
        finally:
            os.close(fd)
    return found


def refuse_live_trainers(ckpt_roots: Iterable[str | Path]) -> None:
    """Raise `InUse` if a trainer still runs on a checkpoint folder under any of `ckpt_roots`.

    Called where a pipeline run starts (the Snakefile's `onstart`), before any job: Snakemake
    deletes a job's old outputs before running it and after it fails, and a trainer left running by a
    killed Snakemake (or started by hand) writes those very files. Its rerun would stop with `InUse`
    too, but only after Snakemake deleted that trainer's live metrics and plots.
    """
    held = [line for root in dict.fromkeys(str(r) for r in ckpt_roots) for line in live_trainers(root)]
    if held:
        raise InUse(
            f"{len(held)} trainer(s) from an earlier run are still running, and this run would delete "
            "what they write; nothing was started or deleted. "
            + " ".join(f"({i}) {line}" for i, line in enumerate(held, 1))
        )
