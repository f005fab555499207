"""Paper-scale rehearsal: run the paper profile's exact code path at full size in minutes, and project
the real run's time and memory on the same device.

    python -m spsagan.pipeline.rehearsal                # full size (`make rehearsal`)
    python -m spsagan.pipeline.rehearsal --reduced      # CI smoke test (`make rehearsal-smoke`)

Snakemake runs the whole pipeline, its jobs started by the same launcher as in a real run (torchrun
included), on the paper column's params changed only in iteration counts, images per set and the files
that cannot be had offline (`plan`); the launcher times each job and watches its memory (`runner`), each
rate is turned into the paper run's wall time (`project`), and everything is written to
reports/rehearsal.md (`report`). Snakemake works in the rehearsal's root (default `rehearsal/`), never
in `results/` or `reports/` of the pipeline.
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
from spsagan.pipeline.rehearsal.resources import SUGGESTION, suggest, write_suggestion
from spsagan.pipeline.rehearsal.runner import (
    free_cores,
    link_project,
    read_results,
    run_snakemake,
    startup_seconds,
    write_params,
)

# What a rehearsal writes under its root, cleared first (Snakemake's metadata too: a fresh start).
FRESH = ("results", "reports", "metrics", "logs", "records", ".snakemake")
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
    """Run the whole pipeline through Snakemake on `plan`'s rehearsal and write the report; True when all ran.

    Run from the repository root. `root` is cleared of earlier rehearsal outputs first, so training
    starts from scratch (a finished checkpoint would otherwise be resumed and time nothing).
    cores: `snakemake --cores` (default: the free CPUs, `free_cores`); Snakemake caps each job's threads at it.
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cores = cores or free_cores()
    repo, root = Path.cwd(), Path(root)
    for name in FRESH:
        shutil.rmtree(root / name, ignore_errors=True)
    reh = plans.make_rehearsal(plan, timed=timed)
    registry = load_registry()
    link_project(repo, root)
    write_params(repo, root, {stage: reh.section(stage) for stage in reh.configs})
    echo(f"rehearsal: snakemake --directory {root} --cores {cores} (the paper profile's jobs, as a run starts them)")
    started = time.perf_counter()
    proc = run_snakemake(repo, root, cores, device)
    seconds = time.perf_counter() - started
    results = read_results(root)
    failed = next((r.job for r in results if not r.ok), None)
    if proc.returncode != 0:
        failed = failed or "snakemake"
        echo((proc.stdout + proc.stderr)[-3000:])
        for result in results:
            if not result.ok:
                echo(result.output()[-3000:])
    for result in results:
        echo(
            f"rehearsal: {result.job}: {'ok' if result.ok else f'FAILED (exit {result.exit})'} in "
            f"{result.seconds:.0f} s, peak {result.peak_rss_bytes / 2**30:.2f} GiB"
            f"{f', {result.processes} processes' if result.processes > 1 else ''}; log {result.log}"
        )
        if result.ok and result.stage in STARTUP_MEASURED:
            result.startup_s = startup_seconds(registry.stages[result.stage].script)
    gpu_stages = {stage.name for stage in registry if stage.gpu}
    rows = project(reh, results, root, gpu_stages)
    device_text = (
        f"{device_summary(device)}; jobs ran through Snakemake with --cores {cores} (OMP_NUM_THREADS = "
        f"min(threads, cores), shared by a job's processes)"
        f"{f', load average {load:.1f} at the start' if load is not None else ''}"
    )
    local = {stage.name for stage in registry if stage.local}
    write(Path(out), render(reh, rows, device_text, seconds, failed, local))
    resources = Path(out).with_name(SUGGESTION.name)
    write_suggestion(resources, suggest(rows, local)[0])
    echo(f"rehearsal: wrote {out} and {resources} (merge: python -m spsagan.pipeline.rehearsal --apply-resources)")
    return failed is None
