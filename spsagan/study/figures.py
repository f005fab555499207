"""The user study's figures (paper Fig. 9 and 10) as PNGs, matplotlib's Agg renderer, no pyplot state.

Methods are shown by their report names (`spsagan.reports.names.display_name`). Both take the
statistics of `spsagan.study.stats` and a title prefix: "Simulated raters" when the
votes came from `spsagan-study simulate`, so a simulated figure is never mistaken for a real study.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from spsagan.atomic import atomic_path
from spsagan.reports.names import display_name
from spsagan.study.design import GROUP_LABELS

DPI = 120
RANK_COLORS = ["#1a9850", "#91cf60", "#fee08b", "#fc8d59", "#d73027", "#a50026"]


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    return Path(path)


def rank_figure(freqs: dict[str, pd.DataFrame], means: dict[str, dict[str, dict]], title: str, path: Path) -> Path:
    """Fig. 9: per group, a stacked bar of each method's rank shares (rank 1 = best, left).

    freqs: group -> stats.rank_frequencies table (methods x ranks); means: group -> method ->
    stats.mean_rank result. Each bar is labelled with its mean rank and interval.
    """
    groups = [g for g in GROUP_LABELS if g in freqs]
    height = max(2.2, 0.55 * max(len(freqs[g]) for g in groups) + 1.2)
    fig = Figure(figsize=(7.5, height * len(groups)), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    for ax, group in zip(axes, groups):
        table = freqs[group]
        order = sorted(table.index, key=lambda m: means[group][m]["mean"], reverse=True)
        shares = table.loc[order].div(table.loc[order].sum(axis=1), axis=0)
        left = pd.Series(0.0, index=order)
        for i, rank in enumerate(shares.columns):
            label = f"rank {rank}" + (" (best)" if rank == 1 else "")
            ax.barh(order, shares[rank], left=left, color=RANK_COLORS[i % len(RANK_COLORS)], label=label)
            left += shares[rank]
        labels = []
        for m in order:
            r = means[group][m]
            ci = f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if math.isfinite(r["ci_low"]) else ""
            labels.append(f"{display_name(m)}\nmean {r['mean']:.2f}{ci}")
        ax.set_yticks(range(len(order)), labels, fontsize=8)
        ax.set_xlim(0, 1)
        n = int(table.sum(axis=1).iloc[0])
        ax.set_title(f"{GROUP_LABELS[group]} ({n} votes per method)", fontsize=9)
        ax.set_xlabel("share of votes")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=len(handles), fontsize=8, loc="outside lower center")
    fig.suptitle(f"{title}: rank frequencies (Fig. 9); mean rank with 95% bootstrap interval over raters", fontsize=10)
    return _save(fig, path)


def preference_figure(prefs: pd.DataFrame, title: str, path: Path) -> Path:
    """Fig. 10: per group, the share of votes for the target against each method, Wilson 95% intervals
    as error bars, the two-sided binomial p-value beside each bar; 0.5 (no preference) dashed."""
    groups = [g for g in GROUP_LABELS if g in set(prefs["group"])]
    fig = Figure(figsize=(7.5, 2.4 * len(groups) + 0.6), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    for ax, group in zip(axes, groups):
        rows = prefs[prefs["group"] == group].reset_index(drop=True)
        y = range(len(rows))
        err = [rows["share"] - rows["ci_low"], rows["ci_high"] - rows["share"]]
        ax.barh(y, rows["share"], xerr=err, color="#4575b4", capsize=4)
        ax.axvline(0.5, color="#555", linestyle="--", linewidth=1)
        pairs = [f"{display_name(r.target)} vs {display_name(r.other)}" for r in rows.itertuples()]
        ax.set_yticks(list(y), pairs, fontsize=8)
        for i, r in rows.iterrows():
            ax.text(
                1.02,
                i,
                f"{r.wins}/{r.n}, p = {r.p_value:.3g}",
                va="center",
                fontsize=8,
                transform=ax.get_yaxis_transform(),
            )
        ax.set_xlim(0, 1)
        ax.set_title(GROUP_LABELS[group], fontsize=9)
        ax.set_xlabel(f"share of votes for {display_name(rows['target'].iloc[0])}")
    fig.suptitle(f"{title}: pairwise preference (Fig. 10), Wilson 95% intervals, two-sided binomial test", fontsize=10)
    return _save(fig, path)
