"""Stopping a trainer cleanly: signals, a vanished starter, and the exit status that asks for a rerun.

`StopSignals` turns SIGTERM/SIGUSR1/SIGINT/SIGHUP, and the exit of the processes that started the
trainer (`ParentWatch`), into a reason that the training loop checks between iterations: it then saves a
checkpoint and raises `Preempted`, so the process exits 75 and the scheduler (Snakemake --retries,
SLURM requeue) runs it again, which resumes (`spsagan.training.checkpoint`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings


class ParentWatch:
    """Notices when a process that started this one exits, e.g. a SIGKILLed Snakemake.

    Watched: the parent and its ancestors up to the first session leader (a login shell, a tmux
    pane, SLURM's job script) or PID 1; the session leader itself only when it is Snakemake
    (`setsid snakemake ...`, or Snakemake started by a daemon), since a shell or a job script
    outlives nothing worth watching and a login shell is what `nohup` detaches from. Snakemake runs a
    step through `bash -c`, which stays alive when Snakemake dies, so the parent alone would not
    tell. Nothing is watched when
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
        if stat is None:
            break
        leader = int(stat[4]) == pid
        if leader and not _is_snakemake(pid, stat[0]):
            break
        chain.append((pid, int(stat[20]), stat[0]))
        if leader:
            break
        pid = int(stat[2])
    return chain


def _is_snakemake(pid: int, name: str) -> bool:
    """Whether `pid` runs Snakemake: its name, or its command line (`python -m snakemake`, a venv's
    `python .../bin/snakemake`)."""
    if name.startswith("snakemake"):
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")[:4]
    except OSError:
        return False
    return any(os.path.basename(arg.decode(errors="replace")).startswith("snakemake") for arg in argv)


class StopSignals:
    """Context manager: while active, SIGTERM, SIGUSR1, SIGINT and SIGHUP set `self.received` instead of killing.

    SIGINT is among them because Ctrl-C in the terminal of a running Snakemake reaches every process
    of its foreground group, the trainer too; a second SIGINT interrupts at once (KeyboardInterrupt),
    without saving. SIGHUP because a closing terminal or tmux pane hangs up on the processes of its
    session (in tmux, a SIGKILLed Snakemake's step got SIGHUP and died without saving). The training
    loop calls `check()` between iterations: it also reports a vanished parent (`ParentWatch`).
    Handlers can only be installed from the main thread; elsewhere (e.g. inside a notebook worker)
    signals keep their default action, with a warning.
    """

    SIGNALS = tuple(
        getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGINT", "SIGHUP") if hasattr(signal, name)
    )

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
                "not in the main thread: SIGTERM/SIGUSR1/SIGINT/SIGHUP will not save a checkpoint",
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
