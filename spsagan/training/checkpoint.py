"""Resumable training state and the final model file.

Resume checkpoints live in a side folder that is never a declared pipeline output (Snakemake
deletes the outputs of a failed job; DVC deletes non-persistent outputs before a run):

    <ckpt_root>/<stage>-<instance>/<key>/step_00001000.pt

`key` hashes everything that determines the trained weights (the stage's cfg, the data listing,
the initial model's bytes), so a changed parameter never resumes a stale run. Each file is
written atomically (temporary name, then rename); the last `keep` files are kept. A rerun loads
the newest file that reads back completely and has every expected entry, skipping corrupt ones.

One trainer at a time: `ResumeDir.exclusive` locks `<ckpt_root>/<stage>-<instance>/` for the whole
run (`exclusive_folder`); a second trainer stops at once with `CheckpointsInUse`. Holding the lock,
a trainer removes the temporary files that a kill during a write left (`remove_partial_writes`).

`StopSignals` turns SIGTERM/SIGUSR1/SIGINT, and the exit of the processes that started the trainer
(`ParentWatch`), into a reason that the training loop checks between iterations: it then saves a
checkpoint and raises `Preempted`, so the process exits non-zero and the scheduler (Snakemake
--retries, SLURM requeue) runs it again, which resumes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spsagan.atomic import atomic_path

STATE_KEYS = ("step", "models", "optimizers", "rng", "sampler", "history")
_STEP_FILE = re.compile(r"^step_(\d{8,})\.pt$")
LOCK_FILE = "trainer.lock"


class Preempted(RuntimeError):
    """Training stopped on purpose after saving a checkpoint; run it again to resume.

    cause: why it stopped ("received SIGTERM", "its parent process 123 (snakemake) exited").
    `exit_code` is 75 (EX_TEMPFAIL, "try again later"); any non-zero exit makes Snakemake retry.
    """

    exit_code = 75

    def __init__(self, cause: str, step: int, path: Path):
        super().__init__(
            f"{cause}: saved a resumable checkpoint at step {step} to {path}; run the same command again to continue"
        )
        self.cause, self.step, self.path = cause, step, path


class CheckpointsInUse(RuntimeError):
    """Another trainer holds the lock of this checkpoint folder (see `exclusive_folder`)."""


# --------------------------------------------------------------------------------------------------
# Keys


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_key(stage: str, cfg: dict, extra: dict | None = None, length: int = 16) -> str:
    """Hex key of a run: sha256 of canonical JSON of {stage, cfg, extra} (sorted keys)."""
    blob = json.dumps({"stage": stage, "cfg": cfg, "extra": extra or {}}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def safe_name(text: str) -> str:
    """A folder-name-safe form of an instance label ("+spsa" -> "+spsa", "a/b" -> "a_b")."""
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", text) or "_"


# --------------------------------------------------------------------------------------------------
# RNG state as tensors and plain lists (loadable with weights_only=True)


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and every CUDA device) generator states."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    return {
        "python": [version, list(internal), gauss],
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------------
# The resume folder


class ResumeDir:
    """Numbered resume checkpoints of one run in `<ckpt_root>/<stage>-<instance>/<key>/`."""

    def __init__(self, ckpt_root: str | Path, stage: str, instance: str, key: str, keep: int = 2):
        self.path = Path(ckpt_root) / f"{stage}-{safe_name(instance)}" / key
        self.keep = max(1, int(keep))

    def files(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        if not self.path.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.path.iterdir() if (m := _STEP_FILE.match(p.name))]
        return [p for _, p in sorted(found)]

    def save(self, state: dict) -> Path:
        """Write `state` (see STATE_KEYS) atomically as step_<step>.pt; keep only the newest `keep`."""
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise KeyError(f"resume state lacks {missing}")
        target = self.step_file(state["step"])
        with atomic_path(target) as tmp:
            torch.save(state, tmp)
            _fsync(tmp)  # on disk before the rename: a power loss must not leave an empty "newest" file
        for old in self.files()[: -self.keep]:
            old.unlink(missing_ok=True)
        return target

    def exclusive(self) -> contextlib.AbstractContextManager:
        """Lock `<ckpt_root>/<stage>-<instance>/` (every key of this instance) while inside."""
        return exclusive_folder(self.path.parent)

    def remove_partial_writes(self) -> list[Path]:
        """Delete the temporary files of checkpoint writes that a kill interrupted, in every key folder of
        this instance; returns them. Call it only while holding `exclusive()`: a running trainer's
        write in progress looks the same."""
        found = [p for key in _subfolders(self.path.parent) for p in partial_writes(key, r"step_\d{8,}", ".pt")]
        for path in found:
            path.unlink(missing_ok=True)
        return found

    def load_latest(self, map_location="cpu") -> dict | None:
        """The newest checkpoint that loads completely, or None. Corrupt files are skipped with a warning."""
        return self.latest(map_location)[1]

    def latest(self, map_location="cpu") -> tuple[Path | None, dict | None]:
        """(file, state) of the newest checkpoint that loads completely, or (None, None)."""
        for path in reversed(self.files()):
            try:
                return path, self.load_file(path, map_location)
            except Exception as err:  # any unreadable file: fall back to the previous one
                warnings.warn(f"{path}: skipping unusable resume checkpoint ({err})", RuntimeWarning, stacklevel=3)
        return None, None

    @staticmethod
    def load_file(path: str | Path, map_location="cpu") -> dict:
        """One checkpoint file's state; raises if it is incomplete or holds another step than its name."""
        path = Path(path)
        state = torch.load(path, map_location=map_location, weights_only=True)
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"missing entries {missing}")
        if f"step_{int(state['step']):08d}.pt" != path.name:
            raise ValueError(f"holds step {state['step']}, not the step in its name")
        return state

    def step_file(self, step: int) -> Path:
        """The file a checkpoint of `step` is saved to."""
        return self.path / f"step_{int(step):08d}.pt"


def _subfolders(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def partial_writes(folder: str | Path, stem: str, suffix: str) -> list[Path]:
    """Temporary files that `spsagan.atomic.atomic_path` left in `folder` for targets `<stem><suffix>`
    (stem: a regular expression) when killed before its rename: `.<stem>.<random>.tmp<suffix>`."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^\.(?:{stem})\.[A-Za-z0-9_]+\.tmp{re.escape(suffix)}$")
    return sorted(p for p in folder.iterdir() if pattern.match(p.name) and p.is_file())


# --------------------------------------------------------------------------------------------------
# One trainer per checkpoint folder


@contextlib.contextmanager
def exclusive_folder(folder: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on `folder` while inside; raise `CheckpointsInUse` at once if another
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
        raise CheckpointsInUse(_in_use_message(path)) from None
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


# --------------------------------------------------------------------------------------------------
# Stopping: signals and a vanished parent


class ParentWatch:
    """Notices when a process that started this one exits, e.g. a SIGKILLed Snakemake.

    Watched: the parent and its ancestors up to, not including, the first session leader (a login
    shell, a tmux pane, SLURM's job script) or PID 1. Snakemake runs a step through `bash -c`, which
    stays alive when Snakemake dies, so the parent alone would not tell. Nothing is watched when
    this process leads its own session (`setsid`, though not as a torchrun worker) or SPSAGAN_DETACHED=1
    is set: detached on purpose.
    Where /proc is missing only the direct parent is watched (by `os.getppid`).
    A process counts as the same while its PID has the same start time (PIDs are reused).
    (PR_SET_PDEATHSIG is not used: it fires when the parent *thread* exits, and Snakemake starts
    jobs from worker threads.)
    """

    INTERVAL = 1.0  # seconds between looks at /proc

    def __init__(self):
        self.watched: list[tuple[int, int | None, str]] = [] if _detached() else _ancestors()
        self._next = 0.0

    def gone(self) -> str | None:
        """Why to stop if a watched process is gone ("the process <pid> (<name>) that started this run
        exited"), else None. Looks at most every INTERVAL seconds."""
        now = time.monotonic()
        if not self.watched or now < self._next:
            return None
        self._next = now + self.INTERVAL
        for pid, start, name in self.watched:
            alive = pid == os.getppid() if start is None else _start_time(pid) == start
            if not alive:
                return (
                    f"the process {pid} ({name}) that started this run exited "
                    "(SPSAGAN_DETACHED=1 keeps a trainer running without it)"
                )
        return None


def _detached() -> bool:
    """Whether the user detached this process from its starters (SPSAGAN_DETACHED=1, or `setsid`).

    torchrun starts each worker in a session of its own; that is not a detach, so its workers watch
    torchrun and whatever started it.
    """
    if os.environ.get("SPSAGAN_DETACHED", "") not in ("", "0"):
        return True
    return os.getsid(0) == os.getpid() and "TORCHELASTIC_RUN_ID" not in os.environ


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat as [name, state, ppid, pgrp, session, ...] (start time at index 20), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    return [text[text.find("(") + 1 : text.rfind(")")]] + text[text.rfind(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    """The start time of a live `pid` (clock ticks after boot); None when gone or a zombie."""
    stat = _proc_stat(pid)
    return None if stat is None or stat[1] in ("Z", "X") else int(stat[20])


def _ancestors() -> list[tuple[int, int | None, str]]:
    """(pid, start time, name) of the processes to watch, nearest first (see ParentWatch)."""
    pid = os.getppid()
    if _proc_stat(os.getpid()) is None:  # no /proc: the direct parent, by getppid
        return [] if pid <= 1 or os.getsid(pid) == pid else [(pid, None, "parent")]
    chain = []
    while pid > 1:
        stat = _proc_stat(pid)
        if stat is None or int(stat[4]) == pid:  # gone, or a session leader
            break
        chain.append((pid, int(stat[20]), stat[0]))
        pid = int(stat[2])
    return chain


class StopSignals:
    """Context manager: while active, SIGTERM, SIGUSR1 and SIGINT set `self.received` instead of killing.

    SIGINT is among them because Ctrl-C in the terminal of a running Snakemake reaches every process
    of its foreground group, the trainer too; a second SIGINT interrupts at once (KeyboardInterrupt),
    without saving. The training loop calls `check()` between iterations: it also reports a
    vanished parent (`ParentWatch`). Handlers can only be installed from the main thread; elsewhere
    (e.g. inside a notebook worker) signals keep their default action, with a warning.
    """

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGINT") if hasattr(signal, name))

    def __init__(self, watch_parents: bool = True):
        self.received: str | None = None
        self._parents = ParentWatch() if watch_parents else None
        self._previous: dict = {}

    def check(self) -> str | None:
        """Why training should stop now ("received SIGTERM", "the process ... that started this run exited")."""
        if self.received is not None:
            return f"received {self.received}"
        return self._parents.gone() if self._parents is not None else None

    def _handler(self, signum, frame):
        name = signal.Signals(signum).name
        if name == "SIGINT" and self.received == "SIGINT":
            raise KeyboardInterrupt
        self.received = name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            warnings.warn(
                "not in the main thread: SIGTERM/SIGUSR1/SIGINT will not save a checkpoint",
                RuntimeWarning,
                stacklevel=2,
            )
            return self
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


# --------------------------------------------------------------------------------------------------
# Final model file


def git_revision(cwd: str | Path | None = None) -> str | None:
    """The commit hash of the git checkout at `cwd` (default: the current directory), or None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", rev) else None


def save_model(
    path: str | Path,
    model: torch.nn.Module,
    preset: str,
    step: int,
    params: dict,
    segmenter: str | None,
    method: str | None = None,
    info: dict | None = None,
) -> None:
    """Write the final generator in the checkpoint format of the contracts, atomically.

    {"arch", "params_g", "preset", "method", "step", "segmenter", "params", "info", "git_rev"}:
    params is the stage's config, method the name reports show (default: the preset), info extra
    facts of the run (e.g. the perceptual extractor). Loads with `spsagan.models.presets.load_generator`
    (weights_only=True).
    """
    params_g = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    ckpt = {
        "arch": model.arch,
        "params_g": params_g,
        "preset": preset,
        "method": method or preset,
        "step": int(step),
        "segmenter": segmenter,
        "params": _plain(params),
        "info": _plain(info or {}),
        "git_rev": git_revision(),
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def _plain(obj: Any):
    """JSON-like copy (dicts, lists, str, numbers, bool, None) of a cfg, for weights_only loading."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def optimizer_states(optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    return {name: opt.state_dict() for name, opt in optimizers.items()}


def load_optimizer_states(optimizers: dict[str, torch.optim.Optimizer], states: dict) -> None:
    for name, opt in optimizers.items():
        opt.load_state_dict(states[name])


def module_states(modules: dict[str, torch.nn.Module]) -> dict:
    return {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in modules.items()}


def load_module_states(modules: dict[str, torch.nn.Module], states: dict, names: Iterable[str] | None = None) -> None:
    for name in names or modules:
        modules[name].load_state_dict(states[name], strict=True)
