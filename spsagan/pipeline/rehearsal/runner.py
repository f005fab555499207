"""Run the pipeline through Snakemake itself, on the rehearsal's params, and read what each job measured.

The rehearsal's root (default `rehearsal/`) becomes a Snakemake working directory (`--directory`):

- `params.yaml` there is the project's, with `profile: paper` and the paper column replaced by the
  rehearsal's sections (`write_params`); the demo column is left as it is;
- every other top-level entry of the repository (steps, workflow, the package, downloads, ...) is
  linked in (`link_project`), so the rules, their code dependencies and the params' relative paths
  are the project's own; what the pipeline writes (results/, reports/, metrics/, logs/, .snakemake/)
  stays under the root, and there is no `.dvc/` there, so DVC is never touched;
- `run_snakemake` starts `python -m snakemake --snakefile workflow/Snakefile --directory <root>`, with
  the workflow profile, so each job starts exactly as in a real run (`spsagan.pipeline.launch`:
  threads, torchrun above one GPU) and Snakemake orders the jobs.

With `SPSAGAN_RECORD_DIR` set, the launcher writes one record per job (`records/<job>.json`: exit
status, wall seconds, peak memory of its process tree, the step's own peak RSS and GPU memory, its
flags); `read_results` turns them into `StepResult`s in the order the jobs started.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

# What the rehearsal's root holds of its own; everything else at the repository's top is linked in.
OWN = {
    ".dvc",
    ".git",
    ".snakemake",
    "dvc.lock",
    "dvc.yaml",
    "logs",
    "metrics",
    "params.yaml",
    "records",
    "rehearsal",
    "reports",
    "results",
}


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
    processes: int = 1  # torchrun's processes (the stage's world size), else 1

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


# -- the working directory -------------------------------------------------------------------------


def link_project(repo: Path, root: Path) -> None:
    """Link every top-level entry of the repository into `root`, except what a run writes (`OWN`)."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in sorted(repo.iterdir()):
        link = root / entry.name
        if entry.name in OWN or entry.resolve() == root.resolve() or link.exists() or link.is_symlink():
            continue
        link.symlink_to(os.path.relpath(entry.resolve(), root.resolve()))


def write_params(repo: Path, root: Path, sections: dict) -> Path:
    """`root/params.yaml`: the project's params with the paper column replaced by `sections`, profile paper."""
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["profile"] = "paper"
    for stage, section in sections.items():
        params[stage]["paper"] = json.loads(json.dumps(section))  # plain lists and numbers
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def run_snakemake(repo: Path, root: Path, cores: int, device: str | None = None, label: str = "paper-rehearsal"):
    """Run the whole pipeline with Snakemake in `root`; every job recorded under `root/records/`.

    preflight=false: the rehearsal's stand-ins replace the files a paper run needs. label: the profile
    name the steps write into their outputs. Returns the finished process (its output captured).
    """
    records = (root / "records").resolve()
    records.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(filter(None, [str(repo.resolve()), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "SPSAGAN_RECORD_DIR": str(records)}
    if device:
        env["SPSAGAN_DEVICE"] = device
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str((repo / "workflow" / "Snakefile").resolve()),
        "--directory",
        str(root.resolve()),
        "--cores",
        str(cores),
        "--config",
        "preflight=false",
        f"label={label}",
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def read_results(root: Path) -> list[StepResult]:
    """One StepResult per job record under `root/records/`, in the order the jobs started."""
    records = [json.loads(p.read_text()) for p in sorted((root / "records").glob("*.json")) if ".probe." not in p.name]
    results = []
    for rec in sorted(records, key=lambda r: r.get("started", 0.0)):
        stage, _, instance = rec["job"].partition("/")
        log = root / (f"logs/{stage}/{instance}.log" if instance else f"logs/{stage}.log")
        args = [a if not _is_written(a) else str(root / a) for a in rec.get("args", [])]
        results.append(
            StepResult(
                rec["job"],
                stage,
                instance or None,
                int(rec["exit"]),
                float(rec["seconds"]),
                int(rec.get("peak_bytes", 0)),
                rec.get("gpu_peak_bytes"),
                rec.get("gpu_name"),
                log,
                args,
                processes=int(rec.get("processes", 1)),
            )
        )
    return results


def _is_written(arg: str) -> bool:
    """A flag value that is a path the pipeline writes (relative to the rehearsal's root)."""
    return arg.split("/", 1)[0] in {"results", "reports", "metrics"}


def startup_seconds(script: str) -> float:
    """Wall seconds of a step's start-up alone: interpreter, imports, flag parser (`--help` exits there).

    The fixed part of a stage whose rehearsal does little work, subtracted before its rate is scaled up.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, script, "--help"], env={**env, "OMP_NUM_THREADS": "1"}, check=True, stdout=subprocess.DEVNULL
    )
    return round(time.perf_counter() - started, 3)
