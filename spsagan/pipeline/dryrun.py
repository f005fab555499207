"""What `dvc exp run -S key=value` would rerun, without running it (DVC's own `--dry` fails here).

`dvc exp run --dry` always works in a temporary clone of the git repository, which lacks the
git-ignored results/, and before printing a stage's command DVC hashes the stage's inputs for its
run-cache (`dvc/stage/cache.py`, `_can_hash`): the first stage that reads another stage's outputs
stops with "No such file or directory" (treeverse/dvc#10135; `dvc repro --dry` fails the same way
in a clone without results). This applies the same `-S` overrides, with DVC's own code, to a copy
of params.yaml and asks Snakemake for a dry run with it: in this pipeline Snakemake and DVC judge
staleness alike (tests/test_pipeline_registry.py), and Snakemake also lists what runs downstream.
params.yaml and results/ are left untouched.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def overridden_params(overrides: list[str], params: str | Path, dest: str | Path) -> Path:
    """Copy `params` to `dest` with `dvc exp run -S` style overrides applied by DVC's own code."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    by_file = to_path_overrides(overrides)
    others = sorted(set(by_file) - {"params.yaml"})
    if others:
        raise ValueError(f"only params.yaml holds this pipeline's parameters, not {', '.join(others)}")
    shutil.copy(params, dest)
    if by_file:
        apply_overrides(dest, by_file["params.yaml"])
    return Path(dest)


def dry_run(
    overrides: list[str],
    params: str | Path = "params.yaml",
    snakemake: str = "snakemake",
    extra: list[str] | None = None,
) -> subprocess.CompletedProcess:
    """Snakemake's dry run with the overridden params; its job counts (and reasons) are the answer."""
    with tempfile.TemporaryDirectory(prefix="spsagan-dry-") as tmp:
        changed = overridden_params(overrides, params, Path(tmp) / "params.yaml")
        return subprocess.run(
            [snakemake, "--dry-run", "--configfile", str(changed), *(extra or [])], capture_output=True, text=True
        )
