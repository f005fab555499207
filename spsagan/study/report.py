"""The study section of the reports: `reports/study.md` and its figures, from the exported votes.

`render_study(votes_csv, out_dir)` writes `<out_dir>/study.md` and the folder `<out_dir>/study/`
(`fig9_user_study.png`, `fig10_user_study.png`, `stats.json`). Without votes (no file, or one with
only the header, as git keeps `study/votes.csv` before a study) the section says how to run the
study and the folder holds only `stats.json` ({"votes": 0}).
Votes from scripted raters are labelled "simulated" in every title, heading and number, and never
reach the claims (the vote summary counts people only).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from spsagan.atomic import atomic_dir, atomic_path, write_text
from spsagan.reports.claims import VOTE_COLUMNS
from spsagan.reports.names import display_name
from spsagan.study.design import GROUP_LABELS
from spsagan.study.figures import preference_figure, rank_figure
from spsagan.study.stats import mean_rank, preferences, rank_frequencies, rankings, vote_summary

HOW_TO = """\
No votes yet (`{votes}` holds none). To run the paper's user study (Sec. 4.3; docs/study.md):

```bash
spsagan-study create     # the study from this run's results/evaluate/sr and results/make_lr (results/study/)
spsagan-study serve      # participants open http://127.0.0.1:8000/
spsagan-study export     # writes study/votes.csv
snakemake reports/study.md            # or: dvc repro study_report
```

On a lab server: `spsagan-study serve --host 0.0.0.0 --token <secret>` and give each participant the
printed link. For the demo run, docs/study.md ("The demo") gives the options that name its methods
and test set; `spsagan-study simulate` draws scripted votes, labelled simulated everywhere.
"""


def _label(votes: pd.DataFrame) -> tuple[str, str]:
    """(figure title prefix, sentence) saying who cast the votes."""
    sim = votes.drop_duplicates("participant")["simulated"].astype(int)
    people, scripted = int((sim == 0).sum()), int((sim == 1).sum())
    if scripted and not people:
        return (
            "SIMULATED raters",
            f"**Simulated votes**: {scripted} scripted raters (`spsagan-study simulate`), no people.",
        )
    if scripted:
        return (
            f"Includes {scripted} SIMULATED raters",
            f"**Includes simulated votes**: {people} people and {scripted} scripted raters.",
        )
    return "User study", f"{people} raters."


def render_study(
    votes_csv: Path | None,
    out_dir: Path,
    seed: int = 0,
    n_resamples: int = 10000,
    md_path: Path | None = None,
    figures_dir: Path | None = None,
    summary_path: Path | None = None,
) -> dict:
    """Write the study section and figures under `out_dir`; returns the statistics written to stats.json.

    md_path and figures_dir (default `<out_dir>/study.md` and `<out_dir>/study/`) place them elsewhere;
    the section links the figures relative to itself. summary_path: also write `stats.vote_summary`
    there (people's votes only), the CSV the claims report reads (`steps/render_reports.py --votes`).
    """
    md_path = Path(md_path or Path(out_dir) / "study.md")
    figures_dir = Path(figures_dir or Path(out_dir) / "study")
    link = Path(os.path.relpath(figures_dir, md_path.parent)).as_posix()
    votes_path = Path(votes_csv) if votes_csv else Path("study/votes.csv")
    votes = pd.read_csv(votes_path, dtype={"participant": str}) if votes_path.is_file() else pd.DataFrame()
    with atomic_dir(figures_dir) as figures:
        if votes.empty:
            result = {"votes": 0}
            text = "# User study (paper Sec. 4.3)\n\n" + HOW_TO.format(votes=votes_path)
        else:
            result, text = _render(votes, figures, link, seed, n_resamples)
        (figures / "stats.json").write_text(json.dumps(result, indent=2) + "\n")
    write_text(md_path, text)
    if summary_path is not None:
        summary = vote_summary(votes) if not votes.empty else pd.DataFrame(columns=VOTE_COLUMNS)
        with atomic_path(summary_path) as tmp:
            summary.to_csv(tmp, index=False)
    return result


def _render(votes: pd.DataFrame, figures: Path, link: str, seed: int, n_resamples: int) -> tuple[dict, str]:
    title, who = _label(votes)
    lines = [f"# User study (paper Sec. 4.3){' — SIMULATED' if 'SIMULATED' in title else ''}", "", who, ""]
    result = {"votes": int(len(votes)), "label": title, "task1": {}, "task2": []}
    ranks = rankings(votes)
    if not ranks.empty:
        freqs, means = {}, {}
        for group, g in ranks.groupby("group"):
            freqs[group] = rank_frequencies(g)
            means[group] = {m: mean_rank(g, m, seed=seed, n_resamples=n_resamples) for m in freqs[group].index}
        rank_figure(freqs, means, title, figures / "fig9_user_study.png")
        lines += ["## Task 1: ranking (Fig. 9)", "", f"![Fig. 9]({link}/fig9_user_study.png)", ""]
        for group in [g for g in GROUP_LABELS if g in freqs]:
            table = freqs[group]
            ranks_hdr = " | ".join(f"rank {r}" for r in table.columns)
            lines += [f"{GROUP_LABELS[group]}:", "", f"| method | {ranks_hdr} | mean rank [95% CI] | raters |"]
            lines.append("|---|" + "---|" * len(table.columns) + "---|---|")
            for m in sorted(table.index, key=lambda m: means[group][m]["mean"]):
                r = means[group][m]
                ci = (
                    f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
                    if math.isfinite(r["ci_low"])
                    else " (one rater: no interval)"
                )
                counts = " | ".join(str(int(c)) for c in table.loc[m])
                lines.append(f"| {display_name(m)} | {counts} | {r['mean']:.2f}{ci} | {r['n_participants']} |")
            lines.append("")
            result["task1"][group] = {
                "frequencies": {m: table.loc[m].tolist() for m in table.index},
                "mean_rank": means[group],
            }
    prefs = preferences(votes)
    if not prefs.empty:
        preference_figure(prefs, title, figures / "fig10_user_study.png")
        lines += ["## Task 2: pairwise preference (Fig. 10)", "", f"![Fig. 10]({link}/fig10_user_study.png)", ""]
        lines += [
            "| images | pair | votes for target | share [Wilson 95%] | p (two-sided binomial) |",
            "|---|---|---|---|---|",
        ]
        for r in prefs.itertuples():
            lines.append(
                f"| {GROUP_LABELS.get(r.group, r.group)} | {display_name(r.target)} vs {display_name(r.other)} "
                f"| {r.wins}/{r.n} "
                f"| {r.share:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] | {r.p_value:.3g} |"
            )
        lines.append("")
        result["task2"] = prefs.to_dict(orient="records")
    lines += [
        "Mean ranks: 1 is best; the interval is a percentile bootstrap over raters "
        f"({n_resamples} resamples, seed {seed}). Shares: Wilson score intervals; p: exact binomial test of 1/2.",
        "",
    ]
    if "SIMULATED" in title:
        lines += ["The claims (`reports/claims.md`) count people's votes only: simulated votes decide no claim.", ""]
    return result, "\n".join(lines)
