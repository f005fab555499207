"""The memory a job's process tree holds, sampled while it runs (what a SLURM memory limit would see).

Proportional set size (PSS: shared pages counted once) of a process and all its descendants (torchrun's
ranks, batch workers), sampled every half second. The launcher (`spsagan.pipeline.launch`) watches each
job with it when the rehearsal asks for records.
"""

from __future__ import annotations

import os
import threading

POLL_S = 0.5


class TreeMemory(threading.Thread):
    """Samples the memory of a process and all its descendants until stopped; `peak` in bytes."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_bytes(self.pid))
            self._stop_event.wait(POLL_S)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def children(pid: int) -> list[int]:
    """The child processes of `pid` (from /proc/<pid>/task/*/children; none where that is missing)."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="utf-8") as fh:
                kids += [int(k) for k in fh.read().split()]
        except (OSError, ValueError):
            continue
    return kids


def process_bytes(pid: int) -> int:
    """A process's proportional set size (its resident size where the kernel has no smaps_rollup); 0 if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm", encoding="utf-8") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def tree_bytes(pid: int) -> int:
    """Memory of `pid` and every descendant, summed."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += process_bytes(current)
        todo += children(current)
    return total
