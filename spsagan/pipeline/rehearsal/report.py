"""reports/rehearsal.md: what ran, at which rates, and what the paper run will take on this device."""

from __future__ import annotations

import math
from pathlib import Path

from spsagan.pipeline.rehearsal.plan import Rehearsal
from spsagan.pipeline.rehearsal.project import PAPER_SETS, Row
from spsagan.pipeline.rehearsal.resources import MARGIN, MAX_RUNTIME_MIN, SUGGESTION, suggest
from spsagan.tables import markdown


def duration(seconds: float | None) -> str:
    """Seconds as a readable span: 42 s, 12 min, 3.4 h, 12 d."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.1f} d"


def size(n_bytes: int | None) -> str:
    return "n/a" if not n_bytes else f"{n_bytes / 2**30:.2f} GiB"


def _table(rows: list[Row]) -> list[str]:
    head = [
        "job",
        "measured here",
        "paper run's work",
        "rehearsal",
        "projected (this device)",
        "peak memory (RSS)",
        "peak GPU memory",
        "SLURM runtime (min)",
        "SLURM mem_mb",
    ]
    body = []
    for row in rows:
        slurm = row.slurm()
        runtime, mem = (slurm[0], str(slurm[1])) if slurm else ("n/a", "n/a")
        body.append(
            [
                row.job,
                row.measured,
                row.workload,
                duration(row.seconds),
                duration(row.projected_s),
                size(row.peak_bytes),
                size(row.gpu_peak_bytes),
                runtime,
                mem,
            ]
        )
    return markdown(head, body, "lllrrrrlr")


def _slurm_yaml(rows: list[Row], skip=()) -> list[str]:
    """The suggested set-resources (per stage, the largest instance), how to merge them, and any warning."""
    suggestion, warnings = suggest(rows, skip)
    lines = [
        f"Written to `{SUGGESTION}` too. Merge it into `workflow/profiles/slurm/profile.yaml` with "
        "`python -m spsagan.pipeline.rehearsal --apply-resources`: it sets each stage's `runtime` and `mem_mb` "
        "and keeps everything else (partitions, `cpus_per_gpu`, `slurm_extra` with the training stages' "
        "`--signal=USR1@300`). Do not paste this block into the profile: YAML keeps the last `set-resources`, "
        "so it would replace the profile's own.",
        "",
        "```yaml",
        "set-resources:",
    ]
    lines += [f"  {stage}: {{runtime: {v['runtime']}, mem_mb: {v['mem_mb']}}}" for stage, v in suggestion.items()]
    lines.append("```")
    if skip:
        lines += ["", f"Not listed: {', '.join(sorted(skip))} (local rules: they run where Snakemake runs)."]
    lines += [f"\n**Warning**: {w}" for w in warnings]
    return lines


def render(reh: Rehearsal, rows: list[Row], device: str, seconds: float, failed: str | None, skip=()) -> str:
    """The whole report as Markdown; skip: local stages, left out of the SLURM suggestion."""
    total = sum(r.projected_s or 0.0 for r in rows)
    gpu_total = sum(r.projected_s or 0.0 for r in rows if r.gpu)
    status = (
        f"**FAILED at {failed}**: the jobs after it did not run; its log is named below."
        if failed
        else f"All {len(rows)} jobs ran."
    )
    out = [
        "# Paper-scale rehearsal",
        "",
        f"The paper profile (params.yaml's `paper` column) on its own code path, at full size, with only "
        f"iteration counts, images per set and unobtainable files changed (plan `{reh.plan.name}`). "
        f"Written by `python -m spsagan.pipeline.rehearsal{' --reduced' if reh.plan.name == 'reduced' else ''}`.",
        "",
        f"- Device: {device}",
        f"- Rehearsal wall time: {duration(seconds)}. {status}",
        f"- **Projected paper run on this device: {duration(total)} in all; the GPU stages "
        f"(`gpu: 1` in workflow/stages.yaml) {gpu_total / 3600:,.1f} GPU-hours** (device-hours on this device).",
        "",
        "## Stand-ins",
        "",
        *[f"- {line}" for line in reh.stand_ins],
        "",
        "## Departures from the paper run",
        "",
        *[f"- {line}" for line in reh.departures],
        "",
        "## Per job",
        "",
        *_table(rows),
        "",
        f"SLURM: projected time and peak memory x{MARGIN:g}; training jobs longer than {MAX_RUNTIME_MIN} min "
        "run as several attempts, each resuming from the last checkpoint (`retries` in the SLURM profile).",
        "",
        "### Notes",
        "",
        *[f"- {row.job}: {note}" for row in rows for note in row.notes],
        "",
        "## Suggested `workflow/profiles/slurm/profile.yaml` resources (this device)",
        "",
        *_slurm_yaml(rows, skip),
        "",
        "## How the projections are made",
        "",
        "Training: seconds per iteration after the first (warm-up excluded) x the paper's iterations, plus "
        "validations and checkpoints at their measured cost; prune: seconds per batch x 100; data stages: "
        "seconds per HR megapixel x the paper datasets' megapixels; evaluate: seconds per megapixel through "
        "the networks x the paper's (every test image once, plus the timing passes); render_reports: as "
        "measured. Paper dataset sizes used (images x typical size):",
        "",
        *[
            f"- {name}: {s.images:,} x {s.height}x{s.width}{f' ({s.note})' if s.note else ''}"
            for name, s in PAPER_SETS.items()
        ],
        "",
    ]
    if reh.plan.name == "reduced":
        out[4:4] = [
            "**Reduced plan (CI smoke test)**: crops of the photos and 2 crops per batch; its projections "
            "are rough. Run `make rehearsal` for the full-size measurement.",
            "",
        ]
    return "\n".join(out)


def write(path: Path, text: str) -> None:
    from spsagan.atomic import write_text

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
