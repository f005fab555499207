"""Paper-scale rehearsal: run the paper profile's exact code path at full size in minutes, and project
the real run's time and memory on the same device.

    python -m spsagan.pipeline.rehearsal                # full size (`make rehearsal`)
    python -m spsagan.pipeline.rehearsal --reduced      # CI smoke test (`make rehearsal-smoke`)

Every stage's real step script runs once per job, in DAG order, with the paper column's params changed
only in iteration counts, images per set and the files that cannot be had offline (`plan`); each job is
timed and its memory watched (`runner`), its rate turned into the paper run's wall time (`project`),
and everything written to reports/rehearsal.md (`report`). Outputs go under the rehearsal's root
(default `rehearsal/`), never into `results/` or `reports/` of the pipeline.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from spsagan.pipeline.registry import load_registry
from spsagan.pipeline.rehearsal import plan as plans
from spsagan.pipeline.rehearsal.project import project
from spsagan.pipeline.rehearsal.report import render, write
from spsagan.pipeline.rehearsal.runner import free_cores, jobs_in_order, run_job, startup_seconds

FRESH = ("results", "reports", "logs", "records")  # what a rehearsal writes under its root, cleared first
# Stages whose rehearsal does so little work that their start-up must be measured apart (`startup_seconds`).
STARTUP_MEASURED = ("download_data", "make_lr", "evaluate")


def device_summary(device: str | None) -> str:
    """The device the steps run on ("auto": CUDA when available), named for the report."""
    import torch

    from spsagan.runtime import device_label, resolve_device

    resolved = resolve_device(device or "auto")
    if resolved.type == "cuda":
        return f"{device_label(resolved)}, torch {torch.__version__}"
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "CPU")
    return f"cpu: {model}, {os.cpu_count()} cores, torch {torch.__version__}"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def rehearse(
    plan: plans.Plan,
    root: str | os.PathLike = "rehearsal",
    out: str | os.PathLike = "reports/rehearsal.md",
    device: str | None = None,
    timed: int | None = None,
    cores: int | None = None,
    echo=print,
) -> bool:
    """Run every job of the pipeline on `plan`'s rehearsal and write the report; True when all ran.

    Run from the repository root. `root` is cleared of earlier rehearsal outputs first, so training
    starts from scratch (a finished checkpoint would otherwise be resumed and time nothing).
    cores: as `snakemake --cores`; each job gets min(its threads, cores) (default: the free CPUs, `free_cores`).
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cores = cores or free_cores()
    root = Path(root)
    for name in FRESH:
        shutil.rmtree(root / name, ignore_errors=True)
    reh = plans.make_rehearsal(plan, timed=timed)
    registry = load_registry()
    started, results, failed = time.perf_counter(), [], None
    for job in jobs_in_order(registry):
        result = run_job(job, reh.section(job.stage.name), root, device=device, cores=cores, echo=echo)
        if result.ok and job.stage.name in STARTUP_MEASURED:
            result.startup_s = startup_seconds(job)
        results.append(result)
        if not result.ok:
            failed = job.name
            echo(result.output()[-3000:])
            break
    gpu_stages = {stage.name for stage in registry if stage.gpu}
    rows = project(reh, results, root, gpu_stages)
    device_text = (
        f"{device_summary(device)}; jobs ran with --cores {cores} (OMP_NUM_THREADS = min(threads, "
        f"cores)){f', load average {load:.1f} at the start' if load is not None else ''}"
    )
    write(Path(out), render(reh, rows, device_text, time.perf_counter() - started, failed))
    echo(f"rehearsal: wrote {out}")
    return failed is None
