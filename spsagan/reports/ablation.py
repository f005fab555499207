"""The ablation of paper Fig. 11: esrgan, +fa, +spsa, spsagan on the same test images.

Writes `ablation.md` (set means, cost per preset, paired comparisons of spsagan against each other
preset with bootstrap confidence intervals) and `ablation.csv` (the comparisons, one row per
dataset, metric and preset pair). Numbers come straight from the frames given; nothing is
re-scored here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from spsagan.atomic import write_text
from spsagan.models.presets import PRESETS
from spsagan.reports import output_paths, provenance
from spsagan.reports.stats import compare_methods

PRESET_ORDER = list(PRESETS)  # the Fig. 11 presets, in the paper's order
METRICS = [("psnr", "PSNR (dB)", 2, "higher"), ("ssim", "SSIM", 4, "higher"), ("niqe", "NIQE", 3, "lower"),
           ("pi", "PI", 3, "lower")]
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


def _table(head: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A Markdown table; `align` has one letter per column: l (text) or r (numbers)."""
    rule = "|" + "|".join("---" if a == "l" else "--:" for a in align) + "|"
    return ["| " + " | ".join(head) + " |", rule, *["| " + " | ".join(r) + " |" for r in rows]]


def ablation_comparisons(per_image: pd.DataFrame, seed: int, baseline: str = "spsagan",
                         n_resamples: int = 10000, confidence: float = 0.95) -> pd.DataFrame:
    """Paired bootstrap of baseline - other for every other preset, dataset and metric.

    Metrics missing for any image of either method (e.g. PI offline) get NaN and a note.
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
                row = {"dataset": dataset, "metric": metric, "method_a": baseline, "method_b": other,
                       "mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                       "n": int((sub["method"] == baseline).sum()),
                       "better": better, "note": ""}
                if sub[metric].isna().any():
                    row["note"] = f"{metric} not available for every image"
                elif row["n"] < 2:
                    row["note"] = "a confidence interval needs at least 2 images"
                else:
                    res = compare_methods(sub, baseline, other, metric, seed=seed, dataset=dataset,
                                          n_resamples=n_resamples, confidence=confidence)
                    row.update({k: res[k] for k in ("mean_diff", "ci_low", "ci_high", "n")})
                rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", "metric", "method_a", "method_b", "mean_diff", "ci_low",
                                       "ci_high", "n", "better", "note"])


def render_ablation(per_image: pd.DataFrame, costs: pd.DataFrame, profile: str, standins: list[str],
                    out_dir: str | os.PathLike | list, seed: int, baseline: str = "spsagan",
                    n_resamples: int = 10000, confidence: float = 0.95, settings: list[str] = ()) -> dict[str, Path]:
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
            rows.append([m, *(_fmt(float(scores[k].mean(skipna=False)), d) for k, _, d, _ in METRICS),
                         str(len(scores))])
        head = ["preset", *(label for _, label, _, _ in METRICS), "images"]
        lines += [f"### {dataset}", "", *_table(head, rows, "lrrrrr"), ""]

    lines += ["## Cost", "", "Parameters and multiply-accumulates (MACs) of the generator; inference time is the "
              "median over timed repeats after warm-up, on the device and dtype given.", ""]
    rows = []
    for m in methods:
        c = costs[costs["method"] == m]
        if c.empty:
            rows.append([m, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"])
            continue
        c = c.iloc[0]
        rows.append([m, f"{int(c['params']):,}", f"{float(c['flops']) / 1e9:.3f}", _fmt(float(c["median_s"]), 4),
                     str(c["device"]), str(c["dtype"]), str(c["size"])])
    lines += _table(["preset", "params", "GMACs", "time (s)", "device", "dtype", "input size"], rows, "lrrrlll") + [""]

    level = f"{confidence:.0%}"
    lines += [f"## Paired comparisons: {baseline} − other preset", "",
              f"Mean per-image difference ({baseline} minus the other preset) with a {level} percentile bootstrap "
              f"interval over images ({n_resamples} resamples, seed {seed}). For PSNR/SSIM a positive difference "
              f"favours {baseline}; for NIQE/PI a negative one does. An interval that excludes 0 marks a "
              "difference larger than the image-to-image noise of this test set.", ""]
    for dataset in dict.fromkeys(comparisons["dataset"]):
        rows = []
        for _, r in comparisons[comparisons["dataset"] == dataset].iterrows():
            digits = next(d for k, _, d, _ in METRICS if k == r["metric"])
            if r["note"]:
                rows.append([r["method_b"], r["metric"], "n/a", "n/a", str(r["n"]), r["note"]])
            else:
                rows.append([r["method_b"], r["metric"], f"{r['mean_diff']:+.{digits}f}",
                             f"[{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}]", str(r["n"]),
                             f"{r['better']} is better"])
        head = ["vs", "metric", "mean diff", f"{level} CI", "images", "note"]
        lines += [f"### {dataset}", "", *_table(head, rows, "llrrrl"), ""]

    paths = output_paths(out_dir, "ablation", ("md", "csv"))
    write_text(paths["csv"], comparisons.assign(profile=profile, seed=seed).to_csv(index=False))
    write_text(paths["md"], "\n".join(lines).rstrip() + "\n")
    return paths
