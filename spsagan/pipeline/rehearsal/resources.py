"""The rehearsal's SLURM resources: suggested per stage, and merged into the SLURM profile key by key.

`suggest` turns the report's rows into `runtime` (minutes) and `mem_mb` per stage (the largest instance;
projection and peak memory x MARGIN). A stage that resumes (`RESUMABLE`) asks for at most one attempt's
walltime (`MAX_RUNTIME_MIN`) and reruns; one that does not (evaluate) asks for its whole projection, with
a warning when that is over the attempt limit, since most partitions cap the walltime.

`merge` writes only those two keys into `workflow/profiles/slurm/profile.yaml`'s `set-resources`, keeping
everything else there: each stage's partition, `cpus_per_gpu`, `slurm_extra` (the `--signal=USR1@300`
that lets training save before the walltime), the file's comments and its shared `&gpu_job` entry. A
stage whose entry is another stage's mapping itself (`evaluate: *gpu_job`) gets a copy of its keys, so
changing evaluate never changes make_seg_maps. Pasting a `set-resources:` block into
the profile instead would replace the profile's own (YAML keeps the last key).

    python -m spsagan.pipeline.rehearsal --apply-resources    # after a rehearsal: merge its suggestion
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import yaml

from spsagan.atomic import write_text

MARGIN = 1.5  # projected time and peak memory times this
MAX_RUNTIME_MIN = 2880  # the SLURM profile's walltime per training attempt (48 h); training resumes
MIN_RUNTIME_MIN = 10
RESUMABLE = ("make_seg_maps", "pretrain_psnr", "train_gan")  # keep their progress: a long job runs as attempts
PROFILE = Path("workflow/profiles/slurm/profile.yaml")
SUGGESTION = Path("reports/rehearsal-resources.yaml")


def minutes(projected_s: float) -> int:
    return max(MIN_RUNTIME_MIN, math.ceil(projected_s * MARGIN / 60))


def mem_mb(peak_bytes: int) -> int:
    return max(2000, math.ceil(peak_bytes * MARGIN / 2**20 / 1000) * 1000)


def suggest(rows, skip=()) -> tuple[dict[str, dict[str, int]], list[str]]:
    """({stage: {runtime, mem_mb}}, warnings) from the report's rows; `skip`: stages SLURM never runs (local)."""
    out: dict[str, dict[str, int]] = {}
    warnings = []
    for row in rows:
        if row.projected_s is None or row.stage in skip:
            continue
        want = minutes(row.projected_s)
        if row.stage in RESUMABLE:
            want = min(want, MAX_RUNTIME_MIN)
        elif want > MAX_RUNTIME_MIN:
            warnings.append(
                f"{row.job}: projected {want} min with the margin, over the {MAX_RUNTIME_MIN}-min attempt limit, "
                "and it does not resume: its runtime asks for all of it; check your partition's walltime limit"
            )
        old = out.get(row.stage, {"runtime": 0, "mem_mb": 0})
        out[row.stage] = {"runtime": max(old["runtime"], want), "mem_mb": max(old["mem_mb"], mem_mb(row.peak_bytes))}
    return out, warnings


def write_suggestion(path: str | os.PathLike, suggestion: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Suggested by the rehearsal (reports/rehearsal.md). Merge into workflow/profiles/slurm/profile.yaml\n"
        "# with `python -m spsagan.pipeline.rehearsal --apply-resources` (keeps partitions, CPUs, signals).\n"
    )
    write_text(path, header + yaml.safe_dump({"set-resources": suggestion}, sort_keys=False))


def merge(profile: str | os.PathLike, suggestion: dict) -> list[str]:
    """Set `runtime` and `mem_mb` of each suggested stage in the profile's set-resources, in place.

    Returns one line per value changed. Comments, anchors and every other key are kept (ruamel.yaml's
    round trip, which DVC installs).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    path = Path(profile)
    doc = yaml_rt.load(path.read_text(encoding="utf-8"))
    sets = doc.setdefault("set-resources", CommentedMap())
    owners = {}  # id of an entry's mapping -> the first stage that has it
    for stage in list(sets):
        entry = sets[stage]
        if owners.setdefault(id(entry), stage) != stage:
            # An alias of another stage's entry (`evaluate: *gpu_job`): a copy of its keys, so that a change to
            # one stage never reaches the other.
            sets[stage] = CommentedMap(entry.items())
    changes = []
    for stage, values in suggestion.items():
        entry = sets.get(stage)
        if entry is None:
            entry = sets[stage] = CommentedMap()
        for key in ("runtime", "mem_mb"):
            if entry.get(key) != values[key]:
                changes.append(f"{stage}.{key}: {entry.get(key)} -> {values[key]}")
                entry[key] = values[key]
    text = io.StringIO()
    yaml_rt.dump(doc, text)
    write_text(path, text.getvalue())
    return changes


def apply(suggestion_path: str | os.PathLike = SUGGESTION, profile: str | os.PathLike = PROFILE) -> list[str]:
    """Merge a written suggestion (`write_suggestion`) into the profile; the changes, one line each."""
    from spsagan.errors import ConfigError

    path = Path(suggestion_path)
    if not path.is_file():
        raise ConfigError(f"{path}: not found: run the rehearsal first (make rehearsal)")
    return merge(profile, yaml.safe_load(path.read_text(encoding="utf-8"))["set-resources"])
