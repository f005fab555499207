"""From a rehearsal's measurements to the paper run: its wall time per job on the same device.

Each job's time splits into a fixed part (start-up, building networks, writing outputs) and a part
proportional to its work; the rehearsal measures the rate of the second, the paper profile says how
much work there is:

- training (pretrain_psnr, train_gan): seconds per iteration after the first (warm-up excluded) x the
  paper's iterations, plus its validations (seconds per validation megapixel x Set14's megapixels)
  and checkpoint writes, plus the rehearsal's first iteration and fixed part;
- prune: seconds per batch x the paper's 100 batches;
- download_data, make_lr, make_seg_maps: seconds per HR megapixel x the paper datasets' megapixels
  (segmentation: the segmenter's own seconds per megapixel, from make_seg_maps' summary);
- evaluate: its wall time x the ratio of megapixels passed through the networks (every test image
  once, plus the timing passes over the timing set: 7 per image in the paper);
- render_reports: its wall time (figures and bootstrap do not grow with the run's length).

With a smaller batch than the paper's (the reduced plan), iteration and batch times are scaled
linearly to the paper's batch; a rough figure, labelled as such. The paper datasets' sizes are in
`PAPER_SETS` (image counts from the dataset registry, `spsagan.data.assets`; OST's and OST300's sizes
are estimates).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
from pathlib import Path

from spsagan.data.assets import get_dataset
from spsagan.data.pairs import plan_subimages
from spsagan.pipeline.rehearsal.plan import Rehearsal
from spsagan.pipeline.rehearsal.resources import MAX_RUNTIME_MIN, RESUMABLE, mem_mb, minutes
from spsagan.pipeline.rehearsal.runner import StepResult


@dataclasses.dataclass(frozen=True)
class PaperSet:
    """A paper dataset: its image count and a typical image size (sub-images and megapixels follow)."""

    images: int
    height: int
    width: int
    note: str = ""

    @property
    def megapixels(self) -> float:
        return self.images * self.height * self.width / 1e6

    def subimages(self, size: int, step: int) -> int:
        return self.images * len(plan_subimages(self.height, self.width, size, step))


def _paper_set(name: str, height: int, width: int, note: str = "") -> PaperSet:
    """The dataset registry's image count with a typical image size."""
    return PaperSet(get_dataset(name).count, height, width, note)


PAPER_SETS = {
    "DIV2K": _paper_set("DIV2K", 1356, 2040, "2040 px wide"),
    "Flickr2K": _paper_set("Flickr2K", 1356, 2040, "2040 px wide"),
    "OST": _paper_set("OST", 600, 800, "size estimated: no listing is published"),
    "Set5": _paper_set("Set5", 336, 336, "0.57 MP in all"),
    "Set14": _paper_set("Set14", 480, 480, "3.2 MP in all"),
    "BSD100": _paper_set("BSD100", 321, 481),
    "Urban100": _paper_set("Urban100", 768, 1024, "1024 px wide"),
    "OST300": _paper_set("OST300", 500, 700, "size estimated: no listing is published"),
}


@dataclasses.dataclass
class Row:
    """One job of the report: what was measured here and what the paper run will take."""

    job: str
    stage: str
    measured: str  # the rate, in the job's unit
    workload: str  # the paper run's amount of that work
    seconds: float  # the rehearsal job's wall time
    projected_s: float | None  # the paper run's, on this device
    peak_bytes: int
    gpu_peak_bytes: int | None
    gpu: bool  # a GPU stage (`gpu: 1` in the registry)
    ok: bool = True
    notes: list[str] = dataclasses.field(default_factory=list)

    def slurm(self) -> tuple[str, int] | None:
        """Suggested (runtime in minutes, mem_mb): projection and peak memory with a margin."""
        if self.projected_s is None:
            return None
        want, memory = minutes(self.projected_s), mem_mb(self.peak_bytes)
        if want <= MAX_RUNTIME_MIN:
            return str(want), memory
        attempts = math.ceil(want / MAX_RUNTIME_MIN)
        if self.stage in RESUMABLE:
            return f"{MAX_RUNTIME_MIN} x {attempts} attempts (each resumes)", memory
        return f"{want} (over {MAX_RUNTIME_MIN}: does not resume)", memory


# -- what the steps wrote ----------------------------------------------------------------------------


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def printed_summary(output: str, prefix: str) -> dict:
    """The dict a step printed as `<prefix>{...}` (its last such line); NaN and inf read as None."""
    for line in reversed(output.splitlines()):
        at = line.find(prefix)
        if at >= 0:
            text = re.sub(r"(?<![\w'\"])-?(nan|inf)(?![\w'\"])", "None", line[at + len(prefix) :])
            return ast.literal_eval(text)
    raise ValueError(f"no line starting {prefix!r} in the step's output")


@dataclasses.dataclass
class Facts:
    """The rehearsal's own data: HR megapixels per dataset (make_lr) and the segmenter's summary."""

    megapixels: dict[str, float]
    seg: dict

    @classmethod
    def read(cls, root: Path) -> Facts:
        made = _json(root / "results" / "make_lr" / "summary.json").get("datasets", {})
        return cls(
            {name: s["hr_pixels"] / 1e6 for name, s in made.items()},
            _json(root / "results" / "make_seg_maps" / "summary.json"),
        )

    def total(self, names) -> float:
        return sum(self.megapixels.get(name, 0.0) for name in names)


def paper_megapixels(names) -> float:
    return sum(PAPER_SETS[name].megapixels for name in names)


# -- projections per stage ---------------------------------------------------------------------------


def _base(result: StepResult, gpu: bool) -> dict:
    return dict(
        job=result.job,
        stage=result.stage,
        seconds=result.seconds,
        peak_bytes=result.peak_rss_bytes,
        gpu_peak_bytes=result.gpu_peak_bytes,
        gpu=gpu,
        ok=result.ok,
    )


def _per_megapixel(result, gpu, here: float, paper: float, what: str, notes=()) -> Row:
    """Scaled by megapixels after the step's start-up (measured apart where `startup_s` is known)."""
    fixed = min(result.startup_s or 0.0, result.seconds)
    busy = max(result.seconds - fixed, 1e-3)
    return Row(
        **_base(result, gpu),
        measured=f"{here / busy:.3g} MP/s ({here:.2f} MP in {busy:.0f} s after {fixed:.0f} s start-up)",
        workload=f"{paper:,.0f} MP {what}",
        projected_s=fixed + busy * paper / here if here else None,
        notes=list(notes),
    )


def _download(result, reh: Rehearsal, facts: Facts, gpu: bool) -> Row:
    names = reh.paper["download_data"].datasets
    return _per_megapixel(
        result,
        gpu,
        facts.total(names),
        paper_megapixels(names),
        "of HR images",
        ["decoding and writing only: the downloads themselves (about 25 GB) are not included"],
    )


def _make_lr(result, reh: Rehearsal, facts: Facts, gpu: bool) -> Row:
    cfg = reh.paper["make_lr"]
    names = [*cfg.train_sets, *cfg.test_sets]
    subs = sum(PAPER_SETS[n].subimages(cfg.subimage_size, cfg.subimage_step) for n in cfg.train_sets)
    return _per_megapixel(
        result,
        gpu,
        facts.total(names),
        paper_megapixels(names),
        f"of HR images, {subs:,} training sub-images (estimated)",
    )


def _make_seg_maps(result, reh: Rehearsal, facts: Facts, gpu: bool) -> Row:
    sets = facts.seg.get("sets", {})
    here = sum(s["megapixels"] for s in sets.values())
    busy = sum(s["seconds"] for s in printed_summary(result.output(), "make_seg_maps run: ").values())
    paper = paper_megapixels(reh.paper["make_seg_maps"].sets)
    row = _per_megapixel(result, gpu, here, paper, "segmented (full images; sub-image maps are cut from them)")
    if here and busy:
        row.measured = f"{here / busy:.3g} MP/s ({busy / here:.3g} s/MP; {here:.2f} MP)"
        row.projected_s = (result.seconds - busy) + busy / here * paper
    return row


def _count(iters: int, every: int) -> int:
    """Events of period `every` in a run of `iters` iterations (`schedule.due`: also at the last one)."""
    return iters // every + (1 if iters % every else 0)


def _training(result, reh: Rehearsal, facts: Facts, gpu: bool) -> Row:
    stage, cfg, here = result.stage, reh.paper[result.stage], reh.configs[result.stage]
    t = printed_summary(result.output(), f"{stage}: {result.instance}: ")["timing"]
    ratio = cfg.batch_size / here.batch_size
    per_it = (t["s_per_iteration"] or t["first_iteration_s"]) * ratio
    validations, checkpoints = _count(cfg.iters, cfg.val_every), _count(cfg.iters, cfg.ckpt_every)
    val_here = facts.megapixels.get(here.val_set, 0.0) * max(t["validations"], 1)
    per_val = t["validation_s"] / val_here * PAPER_SETS[cfg.val_set].megapixels if val_here else 0.0
    per_ckpt = t["checkpoint_s"] / max(t["checkpoints"], 1)
    parts = t["first_iteration_s"] + t["iterations_s"] + t["validation_s"] + t["checkpoint_s"]
    projected = (
        (result.seconds - parts)
        + t["first_iteration_s"]
        + per_it * (cfg.iters - 1)
        + validations * per_val
        + checkpoints * per_ckpt
    )
    timed = t["later_iterations"] or 1
    measured = f"{1 / per_it:.3g} it/s ({per_it:.3g} s/it over {timed} after the warm-up"
    measured += f"; batch {here.batch_size} scaled x{ratio:g})" if ratio != 1 else ")"
    notes = [f"validation {per_val:.0f} s each on {cfg.val_set}, checkpoint {per_ckpt:.1f} s each"]
    return Row(
        **_base(result, gpu),
        measured=measured,
        projected_s=projected,
        notes=notes,
        workload=f"{cfg.iters:,} iterations, {validations} validations, {checkpoints} checkpoints",
    )


def _prune(result, reh: Rehearsal, facts: Facts, gpu: bool) -> Row:
    cfg, here = reh.paper["prune"], reh.configs["prune"]
    summary = printed_summary(result.output(), "prune timing: ")
    ratio = cfg.batch_size / here.batch_size
    per_batch = summary["measure_seconds"] / summary["batches"] * ratio
    projected = result.seconds - summary["measure_seconds"] + per_batch * cfg.batches
    measured = f"{per_batch:.3g} s/batch over {summary['batches']}" + (f" (scaled x{ratio:g})" if ratio != 1 else "")
    return Row(
        **_base(result, gpu),
        measured=measured,
        workload=f"{cfg.batches} batches of {cfg.batch_size}",
        projected_s=projected,
    )


def _evaluate(result, reh: Rehearsal, facts: Facts, gpu: bool) -> Row:
    cfg, here = reh.paper["evaluate"], reh.configs["evaluate"]
    passes_here = facts.total(here.test_sets) + (here.timing_warmup + here.timing_repeats) * facts.total(
        [here.timing_set]
    )
    passes_paper = paper_megapixels(cfg.test_sets) + (cfg.timing_warmup + cfg.timing_repeats) * paper_megapixels(
        [cfg.timing_set]
    )
    summary = _json(Path(result.flag("--summary")))
    costs = summary.get("costs", {})
    per_image = ", ".join(f"{m} {c['median_s']:.3g} s" for m, c in costs.items())
    size = next(iter(costs.values()), {}).get("size")
    row = _per_megapixel(result, gpu, passes_here, passes_paper, "through every network (test sets + timing passes)")
    row.measured = f"{len(costs)} networks: {row.measured}"
    row.notes.append(f"seconds per {size[0]}x{size[1]} LR image: {per_image}" if size else "no costs recorded")
    row.notes.append(
        "attention (+fa, +spsa, spsagan) grows with the square of an image's pixels, so scaling by "
        "megapixels from smaller images underestimates the largest test images (Urban100)"
    )
    missing = [s["method"] for s in summary.get("skipped", [])]
    if missing:
        row.notes.append(f"not included: {', '.join(missing)} (weights not found)")
    return row


def _render(result, reh: Rehearsal, facts: Facts, gpu: bool) -> Row:
    return Row(
        **_base(result, gpu),
        measured=f"{result.seconds:.0f} s",
        workload="figures, tables, bootstrap",
        projected_s=result.seconds,
        notes=["taken as a fixed cost"],
    )


PROJECTIONS = {
    "download_data": _download,
    "make_lr": _make_lr,
    "make_seg_maps": _make_seg_maps,
    "pretrain_psnr": _training,
    "prune": _prune,
    "train_gan": _training,
    "evaluate": _evaluate,
    "study_report": _render,
    "render_reports": _render,
}


def project(reh: Rehearsal, results: list[StepResult], root: Path, gpu_stages: set[str]) -> list[Row]:
    """One row per job that ran; a failed job gets its measurements without a projection."""
    facts = Facts.read(root)
    rows = []
    for result in results:
        gpu = result.stage in gpu_stages
        if not result.ok:
            rows.append(
                Row(
                    **_base(result, gpu),
                    measured="failed",
                    workload="",
                    projected_s=None,
                    notes=[f"exit {result.exit}: see {result.log}"],
                )
            )
            continue
        try:
            rows.append(PROJECTIONS[result.stage](result, reh, facts, gpu))
            if result.processes > 1:
                rows[-1].notes.append(f"ran as {result.processes} processes under torchrun (its world size)")
        except (KeyError, ValueError, TypeError, ZeroDivisionError, SyntaxError, OSError) as exc:
            rows.append(
                Row(
                    **_base(result, gpu),
                    measured=f"{result.seconds:.0f} s",
                    workload="",
                    projected_s=None,
                    notes=[f"no projection: {type(exc).__name__}: {exc}"],
                )
            )
    return rows
