"""Table 1 in the paper's layout: methods as columns; PSNR, SSIM, NIQE and PI rows per dataset.

Every cell says where its number comes from: `r` reproduced by this pipeline (straight from the
results frame, only rounded for display), `p` reported in the paper (`spsagan.reports.paper`).
Where both exist the cell shows both, the difference reproduced - paper and, in the Markdown and HTML,
a reproduction verdict: where the paper value lies against the bootstrap interval of the reproduced
set mean over the test images (`reproduction_verdicts`). Writes `table1.md`, `table1.csv` (long form,
one row per method, dataset and source), `table1.tex` (booktabs) and, when asked, `table1.html` (the
same grid, self-contained, for Snakemake's HTML report).
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from spsagan.atomic import write_text
from spsagan.reports import output_paths, provenance
from spsagan.tables import markdown
from spsagan.reports.paper import TABLE1_METHODS, canonical_dataset, table1_unplaced, table1_values
from spsagan.reports.stats import (
    MIN_IMAGES,
    NO_INTERVAL,
    NO_PER_IMAGE,
    NOT_COMPARABLE,
    bootstrap_mean,
    reproduction_verdict,
)

METRICS = [("psnr", "PSNR (dB) ↑", 2), ("ssim", "SSIM ↑", 4), ("niqe", "NIQE ↓", 3), ("pi", "PI ↓", 3)]
CSV_COLUMNS = ["method", "dataset", "psnr", "ssim", "niqe", "pi", "source", "results_method", "note"]
# table1.csv adds `profile` and `standins` columns, then `n` and `<metric>_ci_low`, `<metric>_ci_high`,
# `<metric>_verdict` for every metric (filled on reproduced rows).
REQUIRED = ["method", "dataset", "psnr", "ssim", "niqe", "pi"]
LEGEND = "r: reproduced by this pipeline; p: reported in the paper; Δ: reproduced − paper."
VERDICT_COLUMNS = ["method", "dataset", "metric", "reproduced", "paper", "n", "ci_low", "ci_high", "verdict"]
# The per-image mean may differ from the set mean by the rounding of the per-image CSV (6 decimals);
# a larger gap means the two frames come from different evaluations.
MEAN_TOLERANCE = 1e-4
MARKERS = {
    "inside": "p in CI",
    "above": "p > CI",
    "below": "p < CI",
    NOT_COMPARABLE: "n.c.",
    NO_INTERVAL: f"n<{MIN_IMAGES}",
    NO_PER_IMAGE: "no img",
}
MARKER_LEGEND = (
    f"Verdict markers, on cells with both r and p (details under Reproduction verdicts): "
    f"[p in CI] the paper value lies inside the bootstrap interval of the reproduced set mean; "
    f"[p > CI] / [p < CI] it lies above / below that interval; [n.c.] not comparable, the run uses "
    f"stand-ins; [n<{MIN_IMAGES}] fewer than {MIN_IMAGES} test images, no interval; "
    f"[no img] no per-image scores given, no interval."
)


# Results methods that must never take a paper column: the `esrgan` preset is this pipeline's
# retraining of ESRGAN, not the published ESRGAN weights (evaluate those as `ESRGAN` via `published`).
OWN_COLUMNS = {"esrgan": "ESRGAN (retrained)"}


def display_method(name: str) -> str:
    """The column name of a results method: `esrgan` (the retrained preset) -> `ESRGAN (retrained)`;
    a paper column's name in any case (`bicubic` -> `Bicubic`, `spsagan` -> `SPSAGAN`, `ESRGAN` for the
    published weights); anything else as given."""
    if str(name) in OWN_COLUMNS:
        return OWN_COLUMNS[str(name)]
    for method in TABLE1_METHODS:
        if str(name).lower() == method.lower():
            return method
    return str(name)


def _check_results(results: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in results.columns]
    if missing:
        raise ValueError(
            f"results frame lacks column(s) {', '.join(missing)}; it needs {', '.join(REQUIRED)} "
            "(one row of set means per method and dataset)"
        )
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
    reproduced = pd.DataFrame(
        {
            "method": df["method"],
            "dataset": df["dataset"],
            **{m: pd.to_numeric(df[m], errors="raise").astype(float) for m, _, _ in METRICS},
            "source": "reproduced",
            "results_method": df["results_method"],
            "note": df["pi_reason"].map(lambda r: f"PI not available: {r}" if r else ""),
        }
    )
    paper = pd.concat([table1_values(), table1_unplaced()], ignore_index=True)
    paper = paper.assign(niqe=math.nan, source="paper", results_method="", method=paper["method"].fillna(""))
    return pd.concat([reproduced[CSV_COLUMNS], paper[CSV_COLUMNS]], ignore_index=True)


def _per_image_groups(per_image: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """{(paper column name, canonical dataset): that method's per-image rows}."""
    missing = [c for c in [*REQUIRED, "name"] if c not in per_image.columns]
    if missing:
        raise ValueError(
            f"per-image frame lacks column(s) {', '.join(missing)}; it needs "
            f"{', '.join([*REQUIRED, 'name'])} (one row per method, dataset and image)"
        )
    df = per_image.assign(
        method=per_image["method"].map(display_method), dataset=per_image["dataset"].map(canonical_dataset)
    )
    dup = df[df.duplicated(["method", "dataset", "name"], keep=False)]
    if len(dup):
        where = sorted({f"{m}/{d}/{n}" for m, d, n in zip(dup["method"], dup["dataset"], dup["name"])})
        raise ValueError(f"per-image frame has several rows for {', '.join(where)}")
    return {key: group for key, group in df.groupby(["method", "dataset"], sort=False)}


def _interval(
    scores: pd.Series | None, reproduced: float, where: str, seed: int, n_resamples: int, confidence: float
) -> dict:
    """{n, ci_low, ci_high} of one reproduced cell; n is None without per-image scores, the interval
    NaN below MIN_IMAGES images or when an image lacks the score."""
    if scores is None:
        return {"n": None, "ci_low": math.nan, "ci_high": math.nan}
    values = pd.to_numeric(scores, errors="raise").to_numpy(dtype=np.float64)
    complete = bool(np.isfinite(values).all())
    if math.isfinite(reproduced) and (not complete or abs(values.mean() - reproduced) > MEAN_TOLERANCE):
        raise ValueError(
            f"{where}: the per-image scores (mean {values.mean()!r} over {len(values)} images) do not "
            f"match the set mean {reproduced!r}; pass the per-image frame of the same evaluation"
        )
    out = {"n": len(values), "ci_low": math.nan, "ci_high": math.nan}
    if complete and len(values) >= MIN_IMAGES:
        res = bootstrap_mean(values, seed, n_resamples, confidence)
        out.update(ci_low=res["ci_low"], ci_high=res["ci_high"])
    return out


def reproduction_verdicts(
    results: pd.DataFrame,
    standins: list[str],
    per_image: pd.DataFrame | None = None,
    seed: int | None = None,
    n_resamples: int = 10000,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per reproduced cell (method, dataset, metric): VERDICT_COLUMNS.

    results: set means, as for `render_table1`. per_image: one row per method, dataset and image
        (method, dataset, name, psnr, ssim, niqe, pi); its means must match `results`.
    n: images behind the cell (<NA> without per_image). ci_low, ci_high: percentile bootstrap interval
        of the set mean over images (seeded; NaN below stats.MIN_IMAGES images). verdict: for cells
        with a finite reproduced and paper value, `stats.reproduction_verdict` ("inside", "above",
        "below", "not comparable", ...); "" elsewhere.
    """
    df = _check_results(results)
    groups = None
    if per_image is not None:
        if seed is None:
            raise ValueError("reproduction intervals are seeded: pass seed with per_image")
        groups = _per_image_groups(per_image)
    paper = table1_values().set_index(["method", "dataset"])
    rows = []
    for _, r in df.iterrows():
        key = (r["method"], r["dataset"])
        for metric, _, _ in METRICS:
            rep = float(r[metric])
            pap = float(paper.loc[key, metric]) if key in paper.index and metric in paper.columns else math.nan
            scores = None if groups is None or key not in groups else groups[key][metric]
            iv = _interval(scores, rep, f"{r['results_method']}/{r['dataset']} {metric}", seed, n_resamples, confidence)
            verdict = ""
            if math.isfinite(rep) and math.isfinite(pap):
                verdict = reproduction_verdict(pap, iv["n"], iv["ci_low"], iv["ci_high"], standins)
            rows.append(
                {
                    "method": r["method"],
                    "dataset": r["dataset"],
                    "metric": metric,
                    "reproduced": rep,
                    "paper": pap,
                    **iv,
                    "verdict": verdict,
                }
            )
    out = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    out["n"] = pd.array([pd.NA if v is None else v for v in out["n"]], dtype="Int64")
    return out


def marker(verdict: str) -> str:
    """The compact grid marker of a verdict ('p in CI', 'n.c.', ...); '' for no verdict."""
    if not verdict:
        return ""
    if verdict.startswith(NOT_COMPARABLE):
        return MARKERS[NOT_COMPARABLE]
    return MARKERS.get(verdict, "no CI")


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
    methods = [m for m in TABLE1_METHODS if m in used] + [
        m for m in dict.fromkeys(rep["method"]) if m not in TABLE1_METHODS and m in used
    ]
    return datasets, methods


def _grid(
    long: pd.DataFrame, datasets: list[str], methods: list[str], tex: bool, markers: dict | None = None
) -> list[list[str]]:
    """Rows [dataset, metric label, one cell per method]; `markers` {(method, dataset, metric): text}
    are appended to their cells as ` [text]`."""
    markers = markers or {}

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
                mark = markers.get((method, dataset, metric), "")
                row.append(_cell(rep, pap, digits, tex) + (f" [{mark}]" if mark else ""))
            grid.append(row)
    return grid


def _notes(long: pd.DataFrame) -> list[str]:
    notes = []
    reasons = sorted({n for n in long.loc[long["source"] == "reproduced", "note"] if n})
    notes += reasons
    unplaced = long[(long["source"] == "paper") & (long["method"] == "")]
    for _, row in unplaced.iterrows():
        notes.append(
            f"Paper {row['dataset']}: {row['psnr']:.2f} / {row['ssim']:.4f} / PI {row['pi']:.3f}, {row['note']}."
        )
    notes.append(
        "The paper's Table 1 is partly garbled in the available text; cells without a p value "
        "were lost, not zero. See spsagan/reports/paper.py for every reported number and its source."
    )
    return notes


def _verdict_section(
    verdicts: pd.DataFrame,
    datasets: list[str],
    methods: list[str],
    have_per_image: bool,
    seed,
    n_resamples: int,
    confidence: float,
) -> tuple[str, list[str], list[list[str]]]:
    """(explanation, table head, table rows) of the cells with a verdict, in the grid's order."""
    level = f"{confidence:.0%}"
    text = (
        f"For each cell with both a reproduced (r) and a paper (p) value: n test images, the {level} "
        f"percentile bootstrap interval of the reproduced set mean over those images "
    )
    text += (
        f"({n_resamples} resamples, seed {seed}; shown from n >= {MIN_IMAGES} on), "
        if have_per_image
        else "(none here: no per-image scores were given), "
    )
    text += (
        "and where the paper value lies against it: inside, above or below. The interval covers the "
        "choice of test images only, not the variation between training runs, so inside means "
        "consistent with this test set, not a proven reproduction."
    )
    shown = verdicts[(verdicts["verdict"] != "") & verdicts["dataset"].isin(datasets)]
    if shown.empty:
        reported = ", ".join(sorted(set(table1_values()["dataset"])))
        return (
            (
                text + f" No cell has both: the paper's Table 1 reports {reported}; reproduced here: "
                f"{', '.join(dict.fromkeys(verdicts['dataset'])) or 'nothing'}."
            ),
            [],
            [],
        )
    digits = {m: d for m, _, d in METRICS}
    labels = {m: label for m, label, _ in METRICS}
    rank = {
        "dataset": {d: i for i, d in enumerate(datasets)},
        "metric": {m: i for i, (m, _, _) in enumerate(METRICS)},
        "method": {m: i for i, m in enumerate(methods)},
    }
    shown = shown.sort_values(list(rank), key=lambda col: col.map(rank[col.name]), kind="stable")
    rows = []
    for _, v in shown.iterrows():
        d = digits[v["metric"]]
        interval = (
            f"[{v['ci_low']:.{d}f}, {v['ci_high']:.{d}f}]"
            if math.isfinite(v["ci_low"])
            else NO_INTERVAL
            if not pd.isna(v["n"]) and v["n"] < MIN_IMAGES
            else "n/a"
        )
        rows.append(
            [
                v["dataset"],
                labels[v["metric"]],
                v["method"],
                f"{v['reproduced']:.{d}f}",
                "n/a" if pd.isna(v["n"]) else str(int(v["n"])),
                interval,
                f"{v['paper']:.{d}f}",
                v["verdict"],
            ]
        )
    head = ["Dataset", "Metric", "Method", "r", "n", f"{level} interval of r", "p", "verdict"]
    return text, head, rows


def _markdown(grid, methods, profile, standins, notes, settings=(), verdict=None) -> str:
    """verdict: `_verdict_section`'s (text, head, rows), or None to leave the section out."""
    lines = [
        "# Table 1: x4 super-resolution, PSNR/SSIM on Y (4-pixel border), NIQE, PI",
        "",
        provenance(profile, standins, settings),
        "",
        LEGEND,
        "",
        MARKER_LEGEND,
        "",
    ]
    lines += markdown(["Dataset", "Metric", *methods], grid, "ll" + "c" * len(methods))
    if verdict is not None:
        text, head, rows = verdict
        lines += ["", "## Reproduction verdicts", "", text]
        if rows:
            lines += ["", *markdown(head, rows, "lllrrrrl")]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


_CSS = (
    "body{font-family:sans-serif;font-size:14px;margin:1em}table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #bbb;padding:3px 7px}td{text-align:center;white-space:nowrap}"
    "thead th{background:#eee}tbody th{text-align:left;font-weight:normal}tbody th.dataset{font-weight:bold}"
)


def _html_text(text: str) -> str:
    """Escaped text with Markdown **bold** as <strong>."""
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _html_table(head: list[str], rows: list[list[str]], row_headers: int, group_first: bool) -> list[str]:
    """<table> with `row_headers` leading <th> cells per row; group_first: the first column spans its
    run of equal values (the dataset of the paper-layout grid)."""
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>", "<tbody>"]
    for i, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row):
            if j == 0 and group_first:
                if i and rows[i - 1][0] == cell:
                    continue
                span = next((k for k in range(i, len(rows)) if rows[k][0] != cell), len(rows)) - i
                cells.append(f'<th class="dataset" rowspan="{span}">{html.escape(cell)}</th>')
            else:
                tag = "th" if j < row_headers else "td"
                cells.append(f"<{tag}>{html.escape(cell)}</{tag}>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return out + ["</tbody>", "</table>"]


def _html(grid, methods, profile, standins, notes, settings=(), verdict=None) -> str:
    """The Markdown's content as one self-contained HTML page (inline style, no scripts or links)."""
    title = "Table 1: x4 super-resolution, PSNR/SSIM on Y (4-pixel border), NIQE, PI"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{_html_text(provenance(profile, standins, settings))}</p>",
        f"<p>{html.escape(LEGEND)}</p>",
        f"<p>{html.escape(MARKER_LEGEND)}</p>",
        *_html_table(["Dataset", "Metric", *methods], grid, 2, True),
    ]
    if verdict is not None:
        text, head, rows = verdict
        lines += ["<h2>Reproduction verdicts</h2>", f"<p>{html.escape(text)}</p>"]
        lines += _html_table(head, rows, 3, False) if rows else []
    lines += ["<h2>Notes</h2>", "<ul>", *[f"<li>{html.escape(n)}</li>" for n in notes], "</ul>", "</body>", "</html>"]
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    for char, repl in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("$", r"\$"),
        ("#", r"\#"),
        ("_", r"\_"),
        ("{", r"\{"),
        ("}", r"\}"),
        ("~", r"\textasciitilde{}"),
        ("^", r"\textasciicircum{}"),
    ):
        text = text.replace(char, repl)
    return text


def _latex(grid, methods, profile, standins) -> str:
    def label(text):  # metric labels: arrows as math
        return _tex_escape(text.replace(" ↑", "").replace(" ↓", "")) + (
            r" $\uparrow$" if "↑" in text else r" $\downarrow$" if "↓" in text else ""
        )

    stand = "; ".join(_tex_escape(s) for s in standins) if standins else "none"
    lines = [
        r"% Requires \usepackage{booktabs}",
        r"\begin{table*}[t]",
        r"\centering",
        r"\scriptsize",
        rf"\caption{{x4 results (profile: {_tex_escape(profile)}; stand-ins: {stand}). "
        r"\textsuperscript{r} reproduced, \textsuperscript{p} paper, $\Delta$ = reproduced $-$ paper.}",
        r"\begin{tabular}{ll" + "c" * len(methods) + "}",
        r"\toprule",
        " & ".join(["Dataset", "Metric", *(_tex_escape(m) for m in methods)]) + r" \\",
        r"\midrule",
    ]
    previous = None
    for row in grid:
        if previous is not None and row[0] != previous:
            lines.append(r"\midrule")
        cells = [_tex_escape(row[0]) if row[0] != previous else "", label(row[1]), *row[2:]]
        previous = row[0]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


def _csv(long: pd.DataFrame, verdicts: pd.DataFrame, profile: str, standins: list[str]) -> pd.DataFrame:
    """The long form plus provenance and, on reproduced rows, n and each metric's interval and verdict."""
    csv = long.copy()
    reproduced = csv["source"] == "reproduced"
    csv["profile"] = np.where(reproduced, profile, "")
    csv["standins"] = np.where(reproduced, "; ".join(standins), "")
    cells = verdicts.set_index(["method", "dataset", "metric"])
    keys = list(zip(csv["method"], csv["dataset"]))
    n = verdicts.drop_duplicates(["method", "dataset"]).set_index(["method", "dataset"])["n"]
    csv["n"] = pd.array([n.get(k, pd.NA) if rep else pd.NA for k, rep in zip(keys, reproduced)], dtype="Int64")
    for metric, _, _ in METRICS:
        for col, empty in (("ci_low", math.nan), ("ci_high", math.nan), ("verdict", "")):
            csv[f"{metric}_{col}"] = [cells.at[(*k, metric), col] if rep else empty for k, rep in zip(keys, reproduced)]
    return csv


def render_table1(
    results: pd.DataFrame,
    profile: str,
    standins: list[str],
    out_dir: str | os.PathLike | list,
    datasets: list[str] | None = None,
    settings: list[str] = (),
    per_image: pd.DataFrame | None = None,
    seed: int | None = None,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    extra_notes: list[str] = (),
) -> dict[str, Path]:
    """Write table1.md, table1.csv and table1.tex to `out_dir` (or the paths given as a list: one per
    suffix md, csv, tex, plus an optional .html path for a self-contained table1.html); returns
    {suffix: path} of the files written.

    results: one row per method and dataset with set means: columns method, dataset, psnr, ssim,
        niqe, pi (NaN where not computed) and optionally pi_reason. Method names matching a paper
        column (case-insensitive: bicubic, esrgan, spsagan, hr, ...) share that column.
    profile, standins, settings: named in every file's header; non-empty standins make every
        reproduction verdict "not comparable".
    datasets: rows to show (default: the reproduced datasets, then BSD100 and OST300).
    per_image: optional, one row per method, dataset and image (method, dataset, name, psnr, ssim,
        niqe, pi), the scores behind `results`: gives each reproduced cell a bootstrap interval and
        each cell with a paper value a verdict (`reproduction_verdicts`; without it the verdicts say
        "no per-image data"). seed (required with per_image), n_resamples, confidence: the bootstrap's.
    """
    long = table1_frame(results)
    verdicts = reproduction_verdicts(results, standins, per_image, seed, n_resamples, confidence)
    datasets, methods = _layout(long, datasets)
    paths = output_paths(out_dir, "table1", ("md", "csv", "tex"), optional=("html",))
    notes = [*_notes(long), *extra_notes]
    markers = {(v.method, v.dataset, v.metric): marker(v.verdict) for v in verdicts.itertuples() if v.verdict}
    grid = _grid(long, datasets, methods, tex=False, markers=markers)
    section = _verdict_section(verdicts, datasets, methods, per_image is not None, seed, n_resamples, confidence)
    # full precision: the numbers as computed
    write_text(paths["csv"], _csv(long, verdicts, profile, standins).to_csv(index=False))
    write_text(paths["md"], _markdown(grid, methods, profile, standins, notes, settings, section))
    write_text(paths["tex"], _latex(_grid(long, datasets, methods, tex=True), methods, profile, standins))
    if "html" in paths:
        write_text(paths["html"], _html(grid, methods, profile, standins, notes, settings, section))
    return paths
