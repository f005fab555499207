"""Table 1 in the paper's layout: methods as columns; PSNR, SSIM, NIQE and PI rows per dataset.

Every cell says where its number comes from: `r` reproduced by this pipeline (straight from the
results frame, only rounded for display), `p` reported in the paper (`spsagan.reports.paper`).
Where both exist the cell shows both and the difference reproduced - paper. Writes `table1.md`,
`table1.csv` (long form, one row per method, dataset and source) and `table1.tex` (booktabs).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from spsagan.atomic import write_text
from spsagan.reports import output_paths, provenance
from spsagan.reports.paper import TABLE1_METHODS, canonical_dataset, table1_unplaced, table1_values

METRICS = [("psnr", "PSNR (dB) ↑", 2), ("ssim", "SSIM ↑", 4), ("niqe", "NIQE ↓", 3), ("pi", "PI ↓", 3)]
CSV_COLUMNS = ["method", "dataset", "psnr", "ssim", "niqe", "pi", "source", "results_method", "note"]
# table1.csv adds `profile` and `standins` columns (filled on reproduced rows).
REQUIRED = ["method", "dataset", "psnr", "ssim", "niqe", "pi"]
LEGEND = "r: reproduced by this pipeline; p: reported in the paper; Δ: reproduced − paper."


def display_method(name: str) -> str:
    """The paper's column name for a results method (`bicubic` -> `Bicubic`, `spsagan` -> `SPSAGAN`)."""
    for method in TABLE1_METHODS:
        if str(name).lower() == method.lower():
            return method
    return str(name)


def _check_results(results: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in results.columns]
    if missing:
        raise ValueError(f"results frame lacks column(s) {', '.join(missing)}; it needs {', '.join(REQUIRED)} "
                         "(one row of set means per method and dataset)")
    df = results.copy()
    df["results_method"] = df["method"].astype(str)
    df["method"] = df["method"].map(display_method)
    df["dataset"] = df["dataset"].map(canonical_dataset)
    dup = df[df.duplicated(["method", "dataset"], keep=False)]
    if len(dup):
        pairs = sorted({f"{m}/{d}" for m, d in zip(dup["method"], dup["dataset"])})
        raise ValueError(f"results frame has several rows for {', '.join(pairs)}; give one row per method and dataset")
    if "pi_reason" not in df.columns:
        df["pi_reason"] = ""
    df["pi_reason"] = df["pi_reason"].fillna("").astype(str)
    return df


def table1_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Long form of Table 1: reproduced rows from `results`, then the paper's rows (CSV_COLUMNS)."""
    df = _check_results(results)
    reproduced = pd.DataFrame({
        "method": df["method"], "dataset": df["dataset"],
        **{m: pd.to_numeric(df[m], errors="raise").astype(float) for m, _, _ in METRICS},
        "source": "reproduced", "results_method": df["results_method"],
        "note": df["pi_reason"].map(lambda r: f"PI not available: {r}" if r else ""),
    })
    paper = pd.concat([table1_values(), table1_unplaced()], ignore_index=True)
    paper = paper.assign(niqe=math.nan, source="paper", results_method="", method=paper["method"].fillna(""))
    return pd.concat([reproduced[CSV_COLUMNS], paper[CSV_COLUMNS]], ignore_index=True)


def _fmt(value: float, digits: int, tex: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return r"$\infty$" if tex else "∞"
    return f"{value:.{digits}f}"


def _cell(rep: float | None, pap: float | None, digits: int, tex: bool) -> str:
    """`rep r / pap p (Δ d)`, or one of the two, or '' when neither source has the number."""
    has_rep, has_pap = rep is not None, pap is not None and not math.isnan(pap)
    mark = (lambda s: rf"\textsuperscript{{{s}}}") if tex else (lambda s: f" {s}")
    delta = r"$\Delta$" if tex else "Δ"
    parts = []
    if has_rep:
        parts.append(_fmt(rep, digits, tex) + mark("r"))
    if has_pap:
        parts.append(_fmt(pap, digits, tex) + mark("p"))
    text = " / ".join(parts)
    if has_rep and has_pap and math.isfinite(rep) and math.isfinite(pap):
        text += f" ({delta} {rep - pap:+.{digits}f})"
    return text


def _layout(long: pd.DataFrame, datasets: list[str] | None):
    """Datasets (rows) and methods (columns) to show, paper's first, then the reproduced ones."""
    rep = long[long["source"] == "reproduced"]
    pap = long[(long["source"] == "paper") & (long["method"] != "")]
    if datasets is None:
        datasets = list(dict.fromkeys([*rep["dataset"], *[d for d in pap["dataset"] if d in ("BSD100", "OST300")]]))
    else:
        datasets = [canonical_dataset(d) for d in datasets]
    shown = long[long["dataset"].isin(datasets) & (long["method"] != "")]
    used = set(shown["method"])
    methods = [m for m in TABLE1_METHODS if m in used] + [m for m in dict.fromkeys(rep["method"]) if m not in
                                                          TABLE1_METHODS and m in used]
    return datasets, methods


def _grid(long: pd.DataFrame, datasets: list[str], methods: list[str], tex: bool) -> list[list[str]]:
    def lookup(source, method, dataset, metric):
        rows = long[(long["source"] == source) & (long["method"] == method) & (long["dataset"] == dataset)]
        return None if rows.empty else float(rows.iloc[0][metric])

    grid = []
    for dataset in datasets:
        for metric, label, digits in METRICS:
            row = [dataset, label]
            for method in methods:
                rep = lookup("reproduced", method, dataset, metric)
                pap = lookup("paper", method, dataset, metric)
                row.append(_cell(rep, pap, digits, tex))
            grid.append(row)
    return grid


def _notes(long: pd.DataFrame) -> list[str]:
    notes = []
    reasons = sorted({n for n in long.loc[long["source"] == "reproduced", "note"] if n})
    notes += reasons
    unplaced = long[(long["source"] == "paper") & (long["method"] == "")]
    for _, row in unplaced.iterrows():
        notes.append(f"Paper {row['dataset']}: {row['psnr']:.2f} / {row['ssim']:.4f} / PI {row['pi']:.3f}, "
                     f"{row['note']}.")
    notes.append("The paper's Table 1 is partly garbled in the available text; cells without a p value "
                 "were lost, not zero. See spsagan/reports/paper.py for every reported number and its source.")
    return notes


def _markdown(grid, methods, profile, standins, notes, settings=()) -> str:
    head = ["Dataset", "Metric", *methods]
    lines = ["# Table 1: x4 super-resolution, PSNR/SSIM on Y (4-pixel border), NIQE, PI", "",
             provenance(profile, standins, settings), "", LEGEND, "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + [":-:"] * len(methods)) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in grid]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                       ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                       ("^", r"\textasciicircum{}")):
        text = text.replace(char, repl)
    return text


def _latex(grid, methods, profile, standins) -> str:
    def label(text):  # metric labels: arrows as math
        return _tex_escape(text.replace(" ↑", "").replace(" ↓", "")) + (
            r" $\uparrow$" if "↑" in text else r" $\downarrow$" if "↓" in text else "")

    stand = "; ".join(_tex_escape(s) for s in standins) if standins else "none"
    lines = [r"% Requires \usepackage{booktabs}", r"\begin{table*}[t]", r"\centering", r"\scriptsize",
             rf"\caption{{x4 results (profile: {_tex_escape(profile)}; stand-ins: {stand}). "
             r"\textsuperscript{r} reproduced, \textsuperscript{p} paper, $\Delta$ = reproduced $-$ paper.}",
             r"\begin{tabular}{ll" + "c" * len(methods) + "}", r"\toprule",
             " & ".join(["Dataset", "Metric", *(_tex_escape(m) for m in methods)]) + r" \\", r"\midrule"]
    previous = None
    for row in grid:
        if previous is not None and row[0] != previous:
            lines.append(r"\midrule")
        cells = [_tex_escape(row[0]) if row[0] != previous else "", label(row[1]), *row[2:]]
        previous = row[0]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


def render_table1(results: pd.DataFrame, profile: str, standins: list[str], out_dir: str | os.PathLike | list,
                  datasets: list[str] | None = None, settings: list[str] = ()) -> dict[str, Path]:
    """Write table1.md, table1.csv and table1.tex to `out_dir` (or the three paths given as a list);
    returns {"md", "csv", "tex"} paths.

    results: one row per method and dataset with set means: columns method, dataset, psnr, ssim,
        niqe, pi (NaN where not computed) and optionally pi_reason. Method names matching a paper
        column (case-insensitive: bicubic, esrgan, spsagan, hr, ...) share that column.
    profile, standins, settings: named in every file's header.
    datasets: rows to show (default: the reproduced datasets, then BSD100 and OST300).
    """
    long = table1_frame(results)
    datasets, methods = _layout(long, datasets)
    paths = output_paths(out_dir, "table1", ("md", "csv", "tex"))
    notes = _notes(long)
    csv = long.copy()
    reproduced = csv["source"] == "reproduced"
    csv["profile"] = np.where(reproduced, profile, "")
    csv["standins"] = np.where(reproduced, "; ".join(standins), "")
    write_text(paths["csv"], csv.to_csv(index=False))  # full precision: the numbers as computed
    write_text(paths["md"], _markdown(_grid(long, datasets, methods, tex=False), methods, profile, standins, notes,
                                      settings))
    write_text(paths["tex"], _latex(_grid(long, datasets, methods, tex=True), methods, profile, standins))
    return paths
