"""After a Snakemake run, bring DVC's lock up to date, so both tools agree without a second step.

Snakemake's `onsuccess` (workflow/Snakefile) calls `commit_jobs` with the jobs of the run's DAG: once
the run succeeded, each of them is up to date in Snakemake, so `dvc commit -f` records exactly those
stages (their deps, params and outs as they are now) and `dvc status` is clean, `dvc repro` has
nothing to do. Stages outside the DAG (a run of a few targets) are left as dvc.lock has them: one may
be stale, and committing it would hide that.

Nothing happens outside a DVC repository (no `.dvc/` or `dvc.yaml` in the working directory), when
`dvc` is not on PATH, or when DVC itself started this Snakemake (a dvc.yaml command: DVC sets
`DVC_STAGE` and writes the lock itself afterwards).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def dvc_targets(jobs, registry) -> list[str]:
    """DVC's address of each (rule, instance) job that is a registry stage: `stage` or `stage@instance`."""
    targets = []
    for rule, instance in jobs:
        if rule in registry.stages:
            targets.append(f"{rule}@{instance}" if instance else rule)
    return sorted(set(targets))


def should_commit(root: str | os.PathLike = ".") -> bool:
    """A DVC repository with dvc on PATH, and not a Snakemake that a dvc.yaml command started."""
    root = Path(root)
    return (
        (root / ".dvc").is_dir()
        and (root / "dvc.yaml").is_file()
        and shutil.which("dvc") is not None
        and "DVC_STAGE" not in os.environ
    )


def commit_jobs(jobs, registry, root: str | os.PathLike = ".") -> bool:
    """`dvc commit -f` the run's stages, quietly; a failure is one warning line, never a failed run."""
    targets = dvc_targets(jobs, registry)
    if not targets or not should_commit(root):
        return False
    proc = subprocess.run(["dvc", "commit", "--force", "--quiet", *targets], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        print(f"warning: `dvc commit -f` after this run failed ({last[0]}); run it yourself", file=sys.stderr)
        return False
    print(f"dvc.lock: recorded {len(targets)} stage(s) of this run (dvc commit -f)", file=sys.stderr)
    hint = commit_hint(root)
    if hint:
        print(hint, file=sys.stderr)
    return True


# What `dvc exp show` compares an experiment with: the committed dvc.lock and the git-kept metrics.
COMPARED = ("dvc.lock", "metrics", "study/votes.csv")


def commit_hint(root: str | os.PathLike = ".") -> str | None:
    """One line saying what to commit so that `dvc exp show` compares later experiments with this run,
    when git sees those files changed (None when they are committed, or outside a git checkout)."""
    proc = subprocess.run(["git", "status", "--porcelain", "--", *COMPARED], cwd=root, capture_output=True, text=True)
    changed = sorted({line[3:].split("/")[0] for line in proc.stdout.splitlines() if line[3:]})
    if proc.returncode != 0 or not changed:
        return None
    return (
        f"to compare experiments with this run (`dvc exp show`, `dvc metrics diff`), commit what it changed: "
        f"git add {' '.join(changed)} && git commit -m 'pipeline run'"
    )
