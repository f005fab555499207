"""The ablation of paper Fig. 11: esrgan, +fa, +spsa, spsagan on the same test images.

Writes `ablation.md` (set means, cost per preset, reproduction verdicts where the paper's Table 1
has the preset's number, paired comparisons of spsagan against each other preset with bootstrap
confidence intervals from stats.MIN_IMAGES images on) and `ablation.csv` (the comparisons, one row
per dataset, metric and preset pair). Numbers come straight from the frames given; nothing is
re-scored here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from spsagan.atomic import write_text
from spsagan.models.presets import PRESETS
from spsagan.tables import markdown
from spsagan.reports import output_paths, provenance
from spsagan.reports.stats import MIN_IMAGES, NO_INTERVAL, compare_methods
from spsagan.reports.table1 import reproduction_verdicts

PRESET_ORDER = list(PRESETS)  # the Fig. 11 presets, in the paper's order
METRICS = [
    ("psnr", "PSNR (dB)", 2, "higher"),
    ("ssim", "SSIM", 4, "higher"),
    ("niqe", "NIQE", 3, "lower"),
    ("pi", "PI", 3, "lower"),
]
PER_IMAGE_COLUMNS = ["method", "dataset", "name", "psnr", "ssim", "niqe", "pi"]
COST_COLUMNS = ["method", "params", "flops", "median_s", "device", "dtype", "size"]


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}; it needs {', '.join(columns)}")


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _mean_diff(sub: pd.DataFrame, baseline: str, other: str, metric: str) -> float:
    """Mean per-image difference baseline - other, images paired by name (both scored on the same ones)."""
    a = sub[sub["method"] == baseline].set_index("name")[metric]
    b = sub[sub["method"] == other].set_index("name")[metric]
    if a.index.duplicated().any() or b.index.duplicated().any():
        raise ValueError(f"{baseline!r} or {other!r} has several rows for one image")
    if sorted(a.index) != sorted(b.index):
        raise ValueError(
            f"{baseline!r} and {other!r} were scored on different images "
            f"(only one has: {', '.join(map(str, sorted(set(a.index) ^ set(b.index))))})"
        )
    return float((a - b[a.index]).mean())


def ablation_comparisons(
    per_image: pd.DataFrame, seed: int, baseline: str = "spsagan", n_resamples: int = 10000, confidence: float = 0.95
) -> pd.DataFrame:
    """Paired bootstrap of baseline - other for every other preset, dataset and metric.

    Metrics missing for any image of either method (e.g. PI offline) get NaN and a note. Below
    stats.MIN_IMAGES images the mean difference is given without an interval (note "n < 10: no
    interval"): a bootstrap over a handful of images understates the uncertainty.
    Columns: dataset, metric, method_a, method_b, mean_diff, ci_low, ci_high, n, better, note.
    """
    _require(per_image, PER_IMAGE_COLUMNS, "per-image results frame")
    methods = [m for m in PRESET_ORDER if m in set(per_image["method"])]
    if baseline not in methods:
        raise ValueError(f"per-image results have no rows for {baseline!r}; presets present: {methods or 'none'}")
    rows = []
    for dataset in dict.fromkeys(per_image["dataset"]):
        for other in (m for m in methods if m != baseline):
            for metric, _, _, better in METRICS:
                sub = per_image[(per_image["dataset"] == dataset) & per_image["method"].isin([baseline, other])]
                row = {
                    "dataset": dataset,
                    "metric": metric,
                    "method_a": baseline,
                    "method_b": other,
                    "mean_diff": math.nan,
                    "ci_low": math.nan,
                    "ci_high": math.nan,
                    "n": int((sub["method"] == baseline).sum()),
                    "better": better,
                    "note": "",
                }
                if sub[metric].isna().any():
                    row["note"] = f"{metric} not available for every image"
                elif row["n"] < MIN_IMAGES:
                    row["note"] = NO_INTERVAL
                    row["mean_diff"] = _mean_diff(sub, baseline, other, metric)
                else:
                    res = compare_methods(
                        sub,
                        baseline,
                        other,
                        metric,
                        seed=seed,
                        dataset=dataset,
                        n_resamples=n_resamples,
                        confidence=confidence,
                    )
                    row.update({k: res[k] for k in ("mean_diff", "ci_low", "ci_high", "n")})
                rows.append(row)
    return pd.DataFrame(
        rows,
        columns=["dataset", "metric", "method_a", "method_b", "mean_diff", "ci_low", "ci_high", "n", "better", "note"],
    )


def _verdict_lines(
    per_image: pd.DataFrame, standins: list[str], seed: int, n_resamples: int, confidence: float
) -> list[str]:
    """Markdown: the presets' set means against the paper's Table 1 (esrgan, spsagan on BSD100/OST300)."""
    metrics = [k for k, _, _, _ in METRICS]
    # a set mean is NaN when any image lacks the score, as in the evaluation's summary
    means = per_image.groupby(["method", "dataset"], sort=False)[metrics].agg(lambda c: c.mean(skipna=False))
    means = means.reset_index()
    verdicts = reproduction_verdicts(means, standins, per_image, seed, n_resamples, confidence)
    verdicts = verdicts[verdicts["verdict"] != ""]
    lines = ["## Against the paper's Table 1", ""]
    if verdicts.empty:
        return lines + [
            "No preset and test set here has a number in the paper's Table 1 (it reports ESRGAN and "
            "SPSAGAN on BSD100 and OST300 only).",
            "",
        ]
    level = f"{confidence:.0%}"
    lines += [
        f"The preset's set mean, its {level} percentile bootstrap interval over the n test images "
        f"({n_resamples} resamples, seed {seed}; shown from n >= {MIN_IMAGES} on) and where the paper's "
        "value lies against it (see Table 1's reproduction verdicts).",
        "",
    ]
    rows = []
    for _, v in verdicts.iterrows():
        d = next(d for k, _, d, _ in METRICS if k == v["metric"])
        interval = f"[{v['ci_low']:.{d}f}, {v['ci_high']:.{d}f}]" if math.isfinite(v["ci_low"]) else "n/a"
        rows.append(
            [
                v["method"],
                v["dataset"],
                v["metric"],
                _fmt(v["reproduced"], d),
                str(v["n"]),
                interval,
                _fmt(v["paper"], d),
                v["verdict"],
            ]
        )
    head = ["preset", "dataset", "metric", "reproduced", "images", f"{level} interval", "paper", "verdict"]
    return lines + markdown(head, rows, "lllrrrrl") + [""]


def _comparison_lines(
    comparisons: pd.DataFrame, baseline: str, seed: int, n_resamples: int, confidence: float
) -> list[str]:
    """Markdown: mean per-image differences baseline - other, with intervals from MIN_IMAGES images on."""
    level = f"{confidence:.0%}"
    lines = [
        f"## Paired comparisons: {baseline} − other preset",
        "",
        f"Mean per-image difference ({baseline} minus the other preset) on the same test images. For PSNR/SSIM "
        f"a positive difference favours {baseline}; for NIQE/PI a negative one does. Method: paired percentile "
        f"bootstrap over images: {n_resamples} resamples of the n images with replacement (seed {seed}); the "
        f"{level} interval spans the central {level} of the resampled mean differences. It is shown only from "
        f"n >= {MIN_IMAGES} images: with fewer, a percentile bootstrap is too narrow (it only reshuffles the "
        "few images seen), so the table gives n and the mean difference alone. "
        "An interval that excludes 0 marks a difference larger than the image-to-image noise of this test "
        "set (it does not cover the variation between training runs).",
        "",
    ]
    for dataset in dict.fromkeys(comparisons["dataset"]):
        rows = []
        for _, r in comparisons[comparisons["dataset"] == dataset].iterrows():
            digits = next(d for k, _, d, _ in METRICS if k == r["metric"])
            diff = f"{r['mean_diff']:+.{digits}f}" if math.isfinite(r["mean_diff"]) else "n/a"
            interval = (
                f"[{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}]" if math.isfinite(r["ci_low"]) else "none"
            )
            rows.append(
                [r["method_b"], r["metric"], diff, interval, str(r["n"]), r["note"] or f"{r['better']} is better"]
            )
        head = ["vs", "metric", "mean diff", f"{level} interval", "n", "note"]
        lines += [f"### {dataset}", "", *markdown(head, rows, "llrrrl"), ""]
    return lines


# RRDB versus RRSB as the paper compares them (Sec. 4: +SPSA 0.368 s -> SPSAGAN 0.296 s per OST image
# on a GTX 1080Ti), and the attention-free PSNR models as an extra row.
TIMING_PAIRS = [
    ("+SPSA vs SPSAGAN (the paper's comparison)", "+spsa", "spsagan"),
    ("PSNR models (no attention)", "rrdb_psnr", "rrsb_psnr"),
]


def timing_lines(costs: pd.DataFrame) -> list[str]:
    """Markdown: RRDB-body vs RRSB-body inference time per image, with device, dtype, images and sizes.

    costs: one row per method with median_s (mean over the timing images of each image's median),
    images (count) and sizes ([h, w] per image, LR pixels) where known.
    """
    from spsagan.reports.paper import INFERENCE_TIME

    rows = []
    for label, rrdb, rrsb in TIMING_PAIRS:
        a, b = costs[costs["method"] == rrdb], costs[costs["method"] == rrsb]
        if a.empty or b.empty:
            continue
        a, b = a.iloc[0], b.iloc[0]
        sizes = b.get("sizes") if isinstance(b.get("sizes"), list) else [b["size"]]
        pixels = [int(s[-2]) * int(s[-1]) for s in sizes if isinstance(s, (list, tuple)) and len(s) >= 2]
        span = "" if not pixels else f"{min(pixels):,}-{max(pixels):,}" if len(set(pixels)) > 1 else f"{pixels[0]:,}"
        rows.append(
            [
                label,
                _fmt(float(a["median_s"]), 4),
                _fmt(float(b["median_s"]), 4),
                f"{float(a['median_s']) / float(b['median_s']):.2f}x",
                str(b.get("images", 1)),
                span,
                str(b["device"]),
                str(b["dtype"]),
            ]
        )
    if not rows:
        return []
    paper = {r["network"]: r["median_s"] for r in INFERENCE_TIME}
    rows.append(
        [
            "paper, +SPSA vs SPSAGAN",
            f"{paper['RRDB+SPSA']:.3f}",
            f"{paper['RRSB+SPSA']:.3f}",
            f"{paper['RRDB+SPSA'] / paper['RRSB+SPSA']:.2f}x",
            "OST300",
            "",
            INFERENCE_TIME[0]["device"],
            "",
        ]
    )
    return [
        "## Inference time: RRDB vs RRSB body",
        "",
        "Per image: the median of the timed repeats after warm-up, averaged over the timing images "
        "(`evaluate.timing_set`, `timing_images`); input size in LR pixels.",
        "",
        *markdown(
            ["comparison", "RRDB (s)", "RRSB (s)", "speed-up", "images", "LR pixels", "device", "dtype"],
            rows,
            "lrrrrrll",
        ),
        "",
    ]


def render_ablation(
    per_image: pd.DataFrame,
    costs: pd.DataFrame,
    profile: str,
    standins: list[str],
    out_dir: str | os.PathLike | list,
    seed: int,
    baseline: str = "spsagan",
    n_resamples: int = 10000,
    confidence: float = 0.95,
    settings: list[str] = (),
) -> dict[str, Path]:
    """Write ablation.md and ablation.csv to `out_dir` (or the two paths given as a list); returns
    {"md", "csv"} paths.

    per_image: one row per method, dataset and image: method (preset name), dataset, name, psnr,
        ssim, niqe, pi (NaN where unavailable).
    costs: one row per method: method, params, flops (multiply-accumulates at `size`), median_s
        (inference seconds per image), device, dtype, size.
    seed: for the bootstrap (reports are reproducible bit for bit).
    """
    _require(costs, COST_COLUMNS, "cost frame")
    comparisons = ablation_comparisons(per_image, seed, baseline, n_resamples, confidence)
    methods = [m for m in PRESET_ORDER if m in set(per_image["method"])]
    absent = [m for m in PRESET_ORDER if m not in methods]

    lines = ["# Ablation (paper Fig. 11): ESRGAN, +FA, +SPSA, SPSAGAN", "", provenance(profile, standins, settings), ""]
    if absent:
        lines += [f"Presets without results (not run): {', '.join(absent)}.", ""]
    lines += ["## Set means", ""]
    for dataset in dict.fromkeys(per_image["dataset"]):
        sub = per_image[per_image["dataset"] == dataset]
        rows = []
        for m in methods:
            scores = sub[sub["method"] == m]
            rows.append(
                [m, *(_fmt(float(scores[k].mean(skipna=False)), d) for k, _, d, _ in METRICS), str(len(scores))]
            )
        head = ["preset", *(label for _, label, _, _ in METRICS), "images"]
        lines += [f"### {dataset}", "", *markdown(head, rows, "lrrrrr"), ""]

    lines += [
        "## Cost",
        "",
        "Parameters and multiply-accumulates (MACs) of the generator; inference time is the "
        "median over timed repeats after warm-up, on the device and dtype given.",
        "",
    ]
    rows = []
    for m in methods:
        c = costs[costs["method"] == m]
        if c.empty:
            rows.append([m, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"])
            continue
        c = c.iloc[0]
        rows.append(
            [
                m,
                f"{int(c['params']):,}",
                f"{float(c['flops']) / 1e9:.3f}",
                _fmt(float(c["median_s"]), 4),
                str(c["device"]),
                str(c["dtype"]),
                str(c["size"]),
            ]
        )
    lines += markdown(["preset", "params", "GMACs", "time (s)", "device", "dtype", "input size"], rows, "lrrrlll") + [""]
    lines += timing_lines(costs)

    lines += _verdict_lines(per_image, standins, seed, n_resamples, confidence)
    lines += _comparison_lines(comparisons, baseline, seed, n_resamples, confidence)

    paths = output_paths(out_dir, "ablation", ("md", "csv"))
    write_text(
        paths["csv"],
        comparisons.assign(profile=profile, seed=seed, n_resamples=n_resamples, confidence=confidence).to_csv(
            index=False
        ),
    )
    write_text(paths["md"], "\n".join(lines).rstrip() + "\n")
    return paths
