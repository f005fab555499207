"""Run the pipeline's real steps in DAG order, each timed, its memory watched and its output kept.

Each job is started as the Snakefile starts it, `OMP_NUM_THREADS=<threads> python steps/<stage>.py
--params <section as JSON> <the registry's flags>` (threads: the stage's `threads`, at most the cores
given, as `snakemake --cores N` caps them), with every path under a folder the pipeline writes
(`results/`, `reports/`, `metrics/`: `written_roots`) moved under the rehearsal's root, so the project's
own results and git-kept metrics are left alone. Each runs
through `spsagan.pipeline.rehearsal.probe` (which records the exit status, peak RSS and peak GPU memory from
inside the process). While a job runs, its process tree (batch workers included) is sampled every
half second for its proportional set size (PSS: shared pages counted once), so the peak is what a
SLURM memory limit would see.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from spsagan.pipeline.registry import Registry, Stage

POLL_S = 0.5


@dataclasses.dataclass(frozen=True)
class Job:
    """One step run: a stage, or one instance of it."""

    stage: Stage
    instance: str | None
    roots: tuple[str, ...]  # where the pipeline writes (`written_roots`): moved under the rehearsal root

    @property
    def name(self) -> str:
        return f"{self.stage.name}/{self.instance}" if self.instance else self.stage.name

    def outputs(self) -> list[str]:
        return [self.stage.fill(p, self.instance).rstrip("/") for p in self.stage.output_templates()]

    def inputs(self) -> list[str]:
        return [
            self.stage.fill(p, self.instance).rstrip("/")
            for deps in self.stage.job_deps(self.instance).values()
            for dep in deps
            for p in dep.paths
        ]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def written_roots(registry: Registry) -> tuple[str, ...]:
    """The top folders of every path the pipeline writes (outputs, metrics, dvclive and state folders)."""
    paths = [p for stage in registry for p in (*stage.output_templates(), *stage.state.values())]
    return tuple(sorted({p.split("/", 1)[0] + "/" for p in paths}))


def jobs_in_order(registry: Registry) -> list[Job]:
    """Every job of the registry, each after the jobs whose outputs it reads; otherwise in registry order."""
    roots = written_roots(registry)
    pending = [Job(stage, instance, roots) for stage, instance in registry.jobs()]
    done: list[Job] = []
    while pending:
        ready = next(
            (
                job
                for job in pending
                if not any(
                    _inside(i, o) or _inside(o, i)
                    for i in job.inputs()
                    for other in pending
                    if other is not job
                    for o in other.outputs()
                )
            ),
            None,
        )
        if ready is None:
            raise ValueError(f"the registry's jobs depend on each other in a cycle: {[j.name for j in pending]}")
        pending.remove(ready)
        done.append(ready)
    return done


def moved(value: str, root: Path, roots: tuple[str, ...]) -> str:
    """A flag value with a path (or `label=path`) under one of `roots` moved under `root`."""
    label, sep, path = value.rpartition("=")
    if path.startswith(roots):
        return f"{label}{sep}{(root / path).as_posix()}"
    return value


def step_args(job: Job, root: Path) -> list[str]:
    """The job's registry flags, with its output and input paths under `root`."""
    return [moved(token, root, job.roots) for token in shlex.split(job.stage.argv(job.instance))]


@dataclasses.dataclass
class StepResult:
    """What one job did: exit status, wall seconds, peak memory (bytes), its flags and its log."""

    job: str
    stage: str
    instance: str | None
    exit: int
    seconds: float
    peak_rss_bytes: int
    gpu_peak_bytes: int | None
    gpu_name: str | None
    log: Path
    args: list[str]
    startup_s: float | None = None  # the step's start-up alone (`startup_seconds`), where measured

    @property
    def ok(self) -> bool:
        return self.exit == 0

    def flag(self, name: str) -> str:
        """The value `--name` had on the step's command line."""
        return self.args[self.args.index(name) + 1]

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


def usable_cores() -> int:
    """The CPUs this process may run on (what `snakemake --cores all` takes)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def free_cores() -> int:
    """The usable CPUs that other processes are not already keeping busy (1-minute load average), at least 1.

    A measurement wants threads that run: on a shared machine, OpenMP threads beyond the free cores wait
    on each other at every parallel region, and a 2-thread training step on a busy 2-core machine was
    measured ten times slower than a 1-thread one.
    """
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(usable_cores(), round((os.cpu_count() or 1) - busy)))


def step_env(threads: int) -> dict:
    """The step's environment: this checkout importable, unbuffered output, the job's threads."""
    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)}


def run_job(
    job: Job,
    section: dict,
    root: Path,
    device: str | None = None,
    profile: str = "paper-rehearsal",
    cores: int | None = None,
    echo=print,
) -> StepResult:
    """Run one job's step as a subprocess of this interpreter, from the repository root; wait for it."""
    slug = job.name.replace("/", "-")
    log, record = root / "logs" / f"{slug}.log", root / "records" / f"{slug}.json"
    log.parent.mkdir(parents=True, exist_ok=True)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)
    args = ["--params", json.dumps(section), "--profile", profile, *step_args(job, root)]
    if device and job.stage.gpu:  # every GPU stage's step takes --device (default auto)
        args += ["--device", device]
    cmd = [sys.executable, "-m", "spsagan.pipeline.rehearsal.probe", str(record), job.stage.script, *args]
    threads = max(1, min(job.stage.threads, cores or usable_cores()))
    echo(f"rehearsal: {job.name} ({threads} thread{'s' if threads > 1 else ''}) ...")
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=step_env(threads))
        watcher = TreeMemory(proc.pid)
        watcher.start()
        status = proc.wait()
        watcher.stop()
    seconds = time.perf_counter() - started
    facts = json.loads(record.read_text()) if record.exists() else {}
    result = StepResult(
        job.name,
        job.stage.name,
        job.instance,
        status,
        round(seconds, 3),
        max(watcher.peak, int(facts.get("maxrss_bytes", 0))),
        facts.get("gpu_peak_bytes"),
        facts.get("gpu_name"),
        log,
        args,
    )
    echo(
        f"rehearsal: {job.name}: {'ok' if result.ok else f'FAILED (exit {status})'} in {seconds:.0f} s, "
        f"peak {result.peak_rss_bytes / 2**30:.2f} GiB; log {log}"
    )
    return result


def startup_seconds(job: Job) -> float:
    """Wall seconds of the step's start-up alone: interpreter, imports, flag parser (`--help` exits there).

    The fixed part of a stage whose rehearsal does little work, subtracted before its rate is scaled up.
    """
    started = time.perf_counter()
    subprocess.run([sys.executable, job.stage.script, "--help"], env=step_env(1), check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 3)


# -- memory of a process tree ---------------------------------------------------------------------


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
